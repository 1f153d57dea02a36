"""A grant batch on the running local stack over HTTP: API → Step Functions (real ASL in moto) →
JSM emulator. Three adds, the middle one bad: the other two are activated, the bad one changes
nothing anywhere, and the activity log tells exactly that."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import pytest
import requests

from local.stack import LocalStack
from tests.helpers import bearer, wait_for

pytestmark = pytest.mark.slow

SERVICE = bearer("console", "console@example.com", None, ["service"])
MANAGER = bearer("pm-1", "priya.pm@acme.example", "acme", ["project_manager"])
PROJECT = {"name": "Demo project", "customer_company_id": "acme", "service_desk_id": "1"}
CONTACTS = {
    "dev-1": ("dana.dev@acme.example", True),
    "dev-2": ("dave.dev@acme.example", True),
    "norm-1": ("norm@acme.example", False),  # no Console User profile: may not be added by id
}

Http = Callable[..., requests.Response]


@pytest.fixture
def http(stack: LocalStack) -> Iterator[Http]:
    with requests.Session() as session:

        def call(method: str, path: str, **kwargs: Any) -> requests.Response:
            return session.request(method, stack.api_url + path, timeout=30, **kwargs)

        yield call


def test_a_batch_with_one_bad_item_activates_the_others_and_changes_nothing_for_it(
    stack: LocalStack, http: Http
) -> None:
    assert stack.jira is not None
    # Given project demo and three acme contacts, one without the Console User profile
    project = http("PUT", "/projects/demo", json=PROJECT, headers=SERVICE).json()
    for contact_id, (email, console_user) in CONTACTS.items():
        body = {"email": email, "name": contact_id, "company_id": "acme"}
        synced = http(
            "PUT",
            f"/contacts/{contact_id}",
            json={**body, "console_user": console_user},
            headers=SERVICE,
        )
        assert synced.status_code == 201, synced.text

    # When acme's manager adds all three in one batch
    items = [{"contact_id": c} for c in CONTACTS]
    answer = http("POST", "/projects/demo/grant-batches", json={"add": items}, headers=MANAGER)

    # Then 207: the good ones accepted, the bad one its single call's 422
    assert answer.status_code == 207, answer.text
    results = answer.json()["results"]
    assert [(r["index"], r["contact_id"], r["status"]) for r in results] == [
        (0, "dev-1", 202),
        (1, "dev-2", 202),
        (2, "norm-1", 422),
    ]
    assert results[2]["problem"]["errors"][0]["field"] == "contact_id"

    # And the good ones are activated: customers in the project's organization and service desk
    def status(contact_id: str) -> str | None:
        got = http("GET", f"/projects/demo/grants/{contact_id}", headers=MANAGER)
        return None if got.json()["status"].endswith("_pending") else got.json()["status"]

    for contact_id in ("dev-1", "dev-2"):
        assert wait_for(partial(status, contact_id), what=contact_id) == "activated"
    state = stack.jira.state()
    organization = next(o for o in state["organizations"] if o["id"] == project["organization_id"])
    members = {
        c["emailAddress"] for c in state["customers"] if c["accountId"] in organization["users"]
    }
    assert members == {"dana.dev@acme.example", "dave.dev@acme.example"}
    desk = next(d for d in state["service_desks"] if d["id"] == "1")
    assert {c["accountId"] for c in state["customers"]} == set(desk["customers"])

    # And the bad one has no grant, no JSM account, no activity entry
    assert http("GET", "/projects/demo/grants/norm-1", headers=MANAGER).status_code == 404
    assert "norm@acme.example" not in {c["emailAddress"] for c in state["customers"]}
    activity = http("GET", "/projects/demo/activity?limit=100", headers=MANAGER).json()["items"]
    by_contact: dict[str | None, list[str]] = {}
    for entry in reversed(activity):
        contact = entry["contact"]["id"] if entry["contact"] else None
        by_contact.setdefault(contact, []).append(entry["action"])
    assert by_contact == {
        None: ["helpdesk.linked"],
        "dev-1": ["grant.requested", "grant.activated"],
        "dev-2": ["grant.requested", "grant.activated"],
    }
    requested = [e for e in activity if e["action"] == "grant.requested"]
    assert {e["actor"]["id"] for e in requested} == {"pm-1"}
