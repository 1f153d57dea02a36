"""Deployment as code: the CloudFormation resources beside the Chalice app (see docs)."""
