"""Domain rules of helpdesk access: no Chalice, no boto3, only the ports in `ports.py`."""
