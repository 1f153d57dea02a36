"""SCIM conformance of the served `/scim/v2` (Users only), checked by an independent client:
`scim2-tester` over `scim2-client`, against the running local stack's HTTP server."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import pytest
import requests
from scim2_client.engines.wsgi import WSGISCIMClient
from scim2_tester import Status, check_server

from local.stack import LocalStack
from tests.helpers import PLATFORM_ADMIN

HOP_BY_HOP = {"connection", "transfer-encoding", "content-encoding", "keep-alive"}


def forward_to(base: str) -> Callable[..., Iterable[bytes]]:
    """A WSGI app that sends each request over HTTP to the served API (the client's transport)."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else None
        headers = {
            key[5:].replace("_", "-").title(): value
            for key, value in environ.items()
            if key.startswith("HTTP_")
        }
        if environ.get("CONTENT_TYPE"):
            headers["Content-Type"] = environ["CONTENT_TYPE"]
        query = environ.get("QUERY_STRING")
        url = base + environ["PATH_INFO"] + (f"?{query}" if query else "")
        answer = requests.request(
            environ["REQUEST_METHOD"], url, data=body, headers=headers, timeout=30
        )
        kept = [(k, v) for k, v in answer.headers.items() if k.lower() not in HOP_BY_HOP]
        start_response(f"{answer.status_code} {answer.reason}", kept)
        return [answer.content]

    return app


@pytest.fixture
def scim_client(stack: LocalStack) -> WSGISCIMClient:
    minted = requests.post(
        f"{stack.api_url}/companies/acme/scim-tokens", json={}, headers=PLATFORM_ADMIN, timeout=10
    )
    assert minted.status_code == 201, minted.text
    client = WSGISCIMClient(
        forward_to(stack.api_url),
        base_url="http://localhost/scim/v2",
        headers={"Authorization": f"Bearer {minted.json()['token']}"},
    )
    client.discover()
    return client


# The CRUD and PATCH checks generate random userNames that are not email addresses, which
# SPEC §4 (userName = the contact's email) refuses: they run in test_scim_api.py with the
# providers' own bodies instead (docs/decisions.md "SCIM 2.0").
TAGS = {"discovery", "service-provider-config", "resource-types", "schemas", "misc"}


def test_scim2_tester_finds_the_users_endpoint_conformant(scim_client: WSGISCIMClient) -> None:
    # When the independent checker runs its discovery and protocol checks on Users
    results = check_server(scim_client, resource_types=["User"], include_tags=TAGS)

    # Then none of them fails
    failures = [
        f"{r.title}: {r.reason}" for r in results if r.status in (Status.ERROR, Status.CRITICAL)
    ]
    assert results
    assert failures == [], "\n".join(failures)
