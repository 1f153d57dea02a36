"""The scheduled jobs against the real stack: the drift check and the stalled-grant sweeper."""

from __future__ import annotations

from datetime import timedelta

import pytest
import requests

from chalicelib.domain.events import DriftFound
from chalicelib.domain.models import utc_now
from chalicelib.domain.sweeper import sweep_stalled_grants
from chalicelib.events import EventBridgePublisher
from chalicelib.store.repository import DynamoStore
from chalicelib.workflows.starter import StepFunctionsStarter
from chalicelib.workflows.tasks import drift
from local.stack import LocalStack
from tests.helpers import ACME_PM, Api, Seeder, active_grant, activity_actions

pytestmark = pytest.mark.slow


def test_drift_check_reports_jsm_changes_made_behind_our_back(
    stack: LocalStack, api: Api, seed: Seeder, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an activated grant, then an agent removes the account from the organization in JSM
    project = seed.demo()
    assert api.post("/projects/demo/grants", {"contact_id": "dev-1"}, ACME_PM).status == 202
    account = active_grant(api, "demo", "dev-1")["jira_account_id"]
    assert drift() == {"projects_with_drift": 0, "found": 0}
    requests.delete(
        f"{stack.jira_url}/rest/servicedeskapi/organization/{project['organization_id']}/user",
        json={"accountIds": [account]},
        auth=("helpdesk-bot@example.com", "local-token"),
        timeout=5,
    ).raise_for_status()

    # When the daily check runs / Then it reports the one missing membership, with a
    # DriftFound event for the project
    published: list[object] = []
    monkeypatch.setattr(EventBridgePublisher, "publish", lambda self, e: published.append(e))
    assert drift() == {"projects_with_drift": 1, "found": 1}
    [event] = published
    assert isinstance(event, DriftFound)
    assert (event.project_id, event.missing_in_jsm, event.found) == ("demo", [account], 1)


def test_sweeper_starts_a_lifecycle_whose_start_was_lost(
    stack: LocalStack, api: Api, seed: Seeder, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a grant written as pending whose execution never started (the API died in between)
    seed.demo()
    monkeypatch.setattr(StepFunctionsStarter, "start_activation", lambda self, grant: None)
    assert api.post("/projects/demo/grants", {"contact_id": "dev-1"}, ACME_PM).status == 202
    monkeypatch.undo()

    # When the sweeper runs after the stall delay
    later = utc_now() + timedelta(minutes=15)
    report = sweep_stalled_grants(
        DynamoStore(), StepFunctionsStarter(), EventBridgePublisher(), now=later
    )

    # Then it started the lifecycle under its own name, and the grant got activated once
    assert report.restarted == 1
    assert active_grant(api, "demo", "dev-1")["status"] == "activated"
    assert activity_actions(api, "demo", "dev-1") == ["grant.requested", "grant.activated"]
