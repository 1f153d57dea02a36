"""The JSM Cloud adapter: a typed client whose failures are the `Jira*` errors in `errors.py`."""

from chalicelib.jira.client import (
    JsmAccount,
    JsmClient,
    JsmRequest,
    Organization,
    ServiceDesk,
    jsm_client,
)

__all__ = [
    "JsmAccount",
    "JsmClient",
    "JsmRequest",
    "Organization",
    "ServiceDesk",
    "jsm_client",
]
