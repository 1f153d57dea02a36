"""`POST /projects/{id}/reconcile` on the local stack: JSM emulator behind, real store."""

from __future__ import annotations

import requests

from local.stack import LocalStack
from tests.api.expect import assert_problem
from tests.helpers import ACME_PM, PLATFORM_ADMIN, Api, Seeder, active_grant, activity_actions

RECONCILE = "/projects/demo/reconcile"


def test_reconcile_reports_then_repairs_and_removes(
    api: Api, seed: Seeder, stack: LocalStack
) -> None:
    # Given dev-1 activated, then taken out of the organization behind the service's back,
    # and a stranger added to it
    seed.demo()
    assert api.post("/projects/demo/grants", {"contact_id": "dev-1"}, ACME_PM).status == 202
    account = active_grant(api, "demo", "dev-1")["jira_account_id"]
    jira = stack.jira
    assert jira is not None
    organization = jira.state()["organizations"][0]["id"]
    jira.add_members(organization, 1)
    stranger = jira.state()["organizations"][0]["users"][-1]
    # (through the emulated JSM API, as an agent would)
    requests.delete(
        f"{jira.url}/rest/servicedeskapi/organization/{organization}/user",
        json={"accountIds": [account]},
        auth=("helpdesk-bot@example.com", "local-token"),
        timeout=5,
    ).raise_for_status()

    # When reconciled without repairing / Then reported only
    report = api.post(RECONCILE, {}, PLATFORM_ADMIN)
    assert report.status == 200, report.body
    assert report.body["missing"] == [
        {
            "contact_id": "dev-1",
            "email": "dana.dev@acme.example",
            "jira_account_id": account,
            "where": ["organization"],
        }
    ]
    assert [e["jira_account_id"] for e in report.body["extra"]] == [stranger]
    assert report.body["repaired"] == []
    assert report.body["removed"] == []

    # When repaired and cleaned / Then JSM matches and the log says so
    fixed = api.post(RECONCILE, {"repair": True, "remove_extra": True}, PLATFORM_ADMIN)
    assert fixed.status == 200, fixed.body
    assert fixed.body["repaired"] == ["dev-1"]
    assert fixed.body["removed"] == [stranger]
    assert jira.state()["organizations"][0]["users"] == [account]
    assert {"drift.repaired", "drift.extra_removed"} <= set(activity_actions(api, "demo"))
    again = api.post(RECONCILE, {}, PLATFORM_ADMIN).body
    assert (again["missing"], again["extra"]) == ([], [])


def test_reconcile_refuses_unknown_fields_and_projects(api: Api, seed: Seeder) -> None:
    seed.demo()
    assert_problem(api.post(RECONCILE, {"repair": "yes"}, PLATFORM_ADMIN), 422, field="repair")
    assert_problem(api.post("/projects/nope/reconcile", {}, PLATFORM_ADMIN), 404)
