"""HR events end to end on the local stack: the signed webhook, the HR queue and its consumer
(Powertools batch + idempotency), the real removal ASL against the JSM emulator (SPEC §4)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chalicelib.api.hr_events import sign
from chalicelib.config import LOCAL_HR_SECRET
from local.stack import LocalStack
from tests.helpers import ACME_PM, Api, Seeder, active_grant, wait_for

pytestmark = pytest.mark.slow

EVENT_AT = "2026-01-01T00:00:00Z"


def post_event(api: Api, event: dict[str, Any]) -> None:
    body = json.dumps(event).encode()
    headers = {"X-Signature": sign(body, LOCAL_HR_SECRET), "Content-Type": "application/json"}
    answer = api.call("POST", "/hr/events", body, headers)
    assert answer.status == 202, answer.body


def grant_statuses(api: Api, projects: list[str], contact_id: str) -> dict[str, str]:
    found = {}
    for project_id in projects:
        answer = api.get(f"/projects/{project_id}/grants/{contact_id}", ACME_PM)
        found[project_id] = "gone" if answer.status == 404 else answer.body["status"]
    return found


def removal_entries(api: Api, project_id: str, contact_id: str) -> list[dict[str, Any]]:
    path = f"/projects/{project_id}/activity?contact_id={contact_id}&limit=100"
    items = api.get(path, ACME_PM).body["items"]
    return [e for e in items if e["action"] == "grant.removal_requested"]


def granted_on(api: Api, seed: Seeder, projects: list[str], contact_id: str) -> None:
    for project_id in projects:
        seed.project(project_id, name=f"Project {project_id}")
        answer = api.post(f"/projects/{project_id}/grants", {"contact_id": contact_id}, ACME_PM)
        assert answer.status == 202, answer.body
    for project_id in projects:
        active_grant(api, project_id, contact_id, timeout=120)


def test_an_offboarding_removes_grants_on_two_projects_sharing_a_desk(
    stack: LocalStack, api: Api, seed: Seeder
) -> None:
    # Given dev-1 with grants on two projects of the same service desk
    seed.demo()
    projects = ["demo", "demo2"]
    granted_on(api, seed, projects, "dev-1")

    # When HR offboards it, naming it by email in another case
    event = {"id": "evt-1", "type": "contact.offboarded", "email": "Dana.Dev@ACME.example"}
    post_event(api, {**event, "occurred_at": EVENT_AT})

    # Then both grants are removed, each with one removal_requested (actor hr, reason)
    wait_for(
        lambda: set(grant_statuses(api, projects, "dev-1").values()) == {"gone"},
        60,
        f"removal: {grant_statuses(api, projects, 'dev-1')}",
    )
    for project_id in projects:
        [entry] = removal_entries(api, project_id, "dev-1")
        assert entry["actor"]["type"] == "hr"
        assert entry["detail"]["reason"] == "offboarded"
    assert api.get("/contacts?email=dana.dev@acme.example", ACME_PM).body["contact"]["status"] == (
        "offboarded"
    )
