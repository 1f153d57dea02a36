"""Grant lifecycles end to end: the API starts the real ASL in moto, whose Lambda tasks call the
JSM emulator, write DynamoDB and send through SES. Each path asserts the grants table, JSM's
state, the mailbox and the activity log; waits run on the fast clock."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
import requests

from chalicelib.config import get_settings
from local.stack import LocalStack
from tests.helpers import (
    ACME_PM,
    INTEGRATOR_PM,
    PLATFORM_ADMIN,
    Api,
    Seeder,
    active_grant,
    activity_actions,
    settled_grant,
)

pytestmark = pytest.mark.slow

DEV = "dana.dev@acme.example"


# --- what the world looks like --------------------------------------------------------------


def grants_table(stack: LocalStack) -> list[dict[str, Any]]:
    """Every item of the grants table, read straight from DynamoDB."""
    table = boto3.resource(
        "dynamodb", endpoint_url=stack.aws_url, region_name=get_settings().region
    ).Table(get_settings().grants_table)
    return list(table.scan()["Items"])


def jsm_account(stack: LocalStack, email: str) -> str | None:
    assert stack.jira is not None
    return next(
        (c["accountId"] for c in stack.jira.state()["customers"] if c["emailAddress"] == email),
        None,
    )


def desk_members(stack: LocalStack, desk_id: str = "1") -> set[str]:
    assert stack.jira is not None
    desk = next(d for d in stack.jira.state()["service_desks"] if d["id"] == desk_id)
    return set(desk["customers"])


def org_members(stack: LocalStack, organization_id: str) -> set[str]:
    assert stack.jira is not None
    org = next(o for o in stack.jira.state()["organizations"] if o["id"] == organization_id)
    return set(org["users"])


def jira_calls(stack: LocalStack) -> list[dict[str, Any]]:
    assert stack.jira is not None
    return list(stack.jira.calls())


def mails_to(stack: LocalStack, email: str) -> list[dict[str, Any]]:
    assert stack.mailbox is not None
    return [m for m in stack.mailbox.messages() if email in m["to"]]


def create_jsm_customer(stack: LocalStack, email: str, name: str) -> str:
    """A customer that already has a JSM account (e.g. from another helpdesk)."""
    answer = requests.post(
        f"{stack.jira_url}/rest/servicedeskapi/customer",
        json={"email": email, "displayName": name},
        auth=("helpdesk-bot@example.com", "local-token"),
        timeout=5,
    )
    assert answer.status_code == 201, answer.text
    return str(answer.json()["accountId"])


def faults(stack: LocalStack, *rules: dict[str, Any]) -> None:
    assert stack.jira is not None
    stack.jira.set_faults([{"method": None, "times": None, **rule} for rule in rules])


def grant(api: Api, body: dict[str, Any], headers: dict[str, str] = ACME_PM) -> Any:
    answer = api.post("/projects/demo/grants", body, headers)
    assert answer.status == 202, answer.body
    assert answer.body["status"] == "activation_pending"
    return answer


# --- activation -----------------------------------------------------------------------------


def test_new_account_is_created_added_and_welcomed(
    stack: LocalStack, api: Api, seed: Seeder
) -> None:
    # Given a project and a developer with no JSM account
    project = seed.demo()
    before = len(jira_calls(stack))

    # When the project manager grants access
    grant(api, {"contact_id": "dev-1"})
    settled = active_grant(api, "demo", "dev-1")

    # Then the grant is activated with a new JSM account in the desk and the organization
    assert settled is not None
    assert settled["status"] == "activated"
    assert settled["account_created"] is True
    account = jsm_account(stack, DEV)
    assert settled["jira_account_id"] == account
    assert account in desk_members(stack)
    assert account in org_members(stack, project["organization_id"])
    # And it took 4 Jira calls: search, create, add to desk, add to organization
    calls = jira_calls(stack)[before:]
    assert [(c["method"], c["status"]) for c in calls] == [
        ("GET", 200),
        ("POST", 201),
        ("POST", 204),
        ("POST", 204),
    ]
    # And one welcome email, and the activity log tells it once
    [mail] = mails_to(stack, DEV)
    assert "helpdesk" in mail["subject"].lower()
    assert "Forgot your password" in mail["text"]
    assert activity_actions(api, "demo", "dev-1") == ["grant.requested", "grant.activated"]
    [item] = grants_table(stack)
    assert item["status"] == "activated"


def test_existing_account_is_reused_without_email(
    stack: LocalStack, api: Api, seed: Seeder
) -> None:
    # Given the developer already has a JSM account
    project = seed.demo()
    account = create_jsm_customer(stack, DEV, "Dana Dev")
    before = len(jira_calls(stack))

    # When access is granted
    grant(api, {"contact_id": "dev-1"})
    settled = active_grant(api, "demo", "dev-1")

    # Then the existing account is added (3 Jira calls) and no activation email is sent
    assert settled is not None
    assert settled["status"] == "activated"
    assert settled["account_created"] is False
    assert settled["jira_account_id"] == account
    assert len(jira_calls(stack)[before:]) == 3
    assert account in org_members(stack, project["organization_id"])
    assert mails_to(stack, DEV) == []
    assert activity_actions(api, "demo", "dev-1") == ["grant.requested", "grant.activated"]


def test_removal_keeps_a_service_desk_another_project_uses(
    stack: LocalStack, api: Api, seed: Seeder
) -> None:
    # Given two projects on the same service desk, the developer granted on both
    demo = seed.demo()
    other = seed.project("other", name="Other project")
    grant(api, {"contact_id": "dev-1"})
    assert api.post("/projects/other/grants", {"contact_id": "dev-1"}, ACME_PM).status == 202
    settled_grant(api, "demo", "dev-1")
    settled_grant(api, "other", "dev-1")
    account = jsm_account(stack, DEV)
    before = len(jira_calls(stack))

    # When access to `demo` is removed
    assert api.delete("/projects/demo/grants/dev-1", ACME_PM).status == 202
    assert settled_grant(api, "demo", "dev-1") is None

    # Then the account left demo's organization only: `other` still uses the desk, which the
    # removal re-ensures (an idempotent POST) instead of leaving it
    calls = [(c["method"], c["path"]) for c in jira_calls(stack)[before:]]
    assert calls == [
        ("DELETE", f"/rest/servicedeskapi/organization/{demo['organization_id']}/user"),
        ("POST", "/rest/servicedeskapi/servicedesk/1/customer"),
    ]
    assert account not in org_members(stack, demo["organization_id"])
    assert account in org_members(stack, other["organization_id"])
    assert account in desk_members(stack)
    assert activity_actions(api, "demo", "dev-1")[-2:] == [
        "grant.removal_requested",
        "grant.removed",
    ]

    # When the last grant goes too, the account leaves the desk (2 Jira calls)
    before = len(jira_calls(stack))
    assert api.delete("/projects/other/grants/dev-1", ACME_PM).status == 202
    assert settled_grant(api, "other", "dev-1") is None
    assert len(jira_calls(stack)[before:]) == 2
    assert account not in desk_members(stack)
    assert grants_table(stack) == []


def test_external_contact_is_unlinked_with_its_last_grant(
    stack: LocalStack, api: Api, seed: Seeder
) -> None:
    # Given a contact of another company, added by email by the integrator's supervisor
    seed.demo()
    seed.contact("ext-1", "erin@freelance.example", company="freelance", name="Erin")
    grant(api, {"email": "erin@freelance.example"}, INTEGRATOR_PM)
    assert active_grant(api, "demo", "ext-1", INTEGRATOR_PM)["status"] == "activated"
    linked = api.get("/contacts?email=erin@freelance.example", PLATFORM_ADMIN).body["contact"]
    assert linked["external_for"] == ["integrator"]

    # When the supervisor removes that access
    assert api.delete("/projects/demo/grants/ext-1", INTEGRATOR_PM).status == 202
    assert settled_grant(api, "demo", "ext-1", INTEGRATOR_PM) is None

    # Then the contact is no longer an external of the integrator
    unlinked = api.get("/contacts?email=erin@freelance.example", PLATFORM_ADMIN).body["contact"]
    assert unlinked["external_for"] == []
    assert activity_actions(api, "demo", "ext-1") == [
        "contact.external_linked",
        "grant.requested",
        "grant.activated",
        "grant.removal_requested",
        "grant.removed",
        "contact.external_unlinked",
    ]


# --- Jira faults ----------------------------------------------------------------------------


def test_429_waits_the_retry_after_jira_sent(stack: LocalStack, api: Api, seed: Seeder) -> None:
    assert stack.fast_clock is not None
    # Given JSM throttles the organization call twice, asking for 5 s
    seed.demo()
    faults(
        stack,
        {
            "method": "POST",
            "path_regex": r"/organization/\d+/user$",
            "status": 429,
            "times": 2,
            "retry_after": 5,
        },
    )

    # When access is granted
    grant(api, {"contact_id": "dev-1"})

    # Then the workflow waited 5 s twice (fast clock) and activated once
    assert active_grant(api, "demo", "dev-1")["status"] == "activated"
    assert [w for w in stack.fast_clock.waits if w[0] == "wait"] == [("wait", 5.0), ("wait", 5.0)]
    assert activity_actions(api, "demo", "dev-1") == ["grant.requested", "grant.activated"]
    assert len(mails_to(stack, DEV)) == 1


def test_429_without_retry_after_backs_off_with_jitter(
    stack: LocalStack, api: Api, seed: Seeder
) -> None:
    assert stack.fast_clock is not None
    # Given JSM throttles the service desk call three times without Retry-After
    seed.demo()
    faults(
        stack,
        {"method": "POST", "path_regex": r"/servicedesk/1/customer$", "status": 429, "times": 3},
    )

    # When access is granted
    grant(api, {"contact_id": "dev-1"})

    # Then the waits grow within the exponential ceiling (2·2ⁿ s) and the grant activates
    assert active_grant(api, "demo", "dev-1")["status"] == "activated"
    waits = [seconds for kind, seconds in stack.fast_clock.waits if kind == "wait"]
    assert len(waits) == 3
    for attempt, seconds in enumerate(waits):
        assert 1 <= seconds <= 2 * 2**attempt


def test_503_burst_is_retried_then_succeeds(stack: LocalStack, api: Api, seed: Seeder) -> None:
    assert stack.fast_clock is not None
    # Given JSM answers 503 three times on the user search
    seed.demo()
    faults(stack, {"method": "GET", "path_regex": "user/search", "status": 503, "times": 3})

    # When access is granted
    grant(api, {"contact_id": "dev-1"})

    # Then ASL retried with backoff and the grant activated, once
    assert active_grant(api, "demo", "dev-1")["status"] == "activated"
    assert len([w for w in stack.fast_clock.waits if w[0] == "retry"]) == 3
    assert activity_actions(api, "demo", "dev-1") == ["grant.requested", "grant.activated"]


@pytest.mark.parametrize(
    ("status", "error"), [(401, "JiraAuthError"), (400, "JiraRejected")], ids=["401", "400"]
)
def test_jira_refusal_fails_the_grant_visibly_without_retrying(
    stack: LocalStack, api: Api, seed: Seeder, status: int, error: str
) -> None:
    # Given JSM refuses to add customers to the desk
    seed.demo()
    faults(stack, {"method": "POST", "path_regex": r"/servicedesk/1/customer$", "status": status})

    # When access is granted
    grant(api, {"contact_id": "dev-1"})

    # Then the grant is activation_failed with the error, after exactly one attempt, and the run
    # took back what it may have added (rule 4: a failed activation leaves no access behind)
    settled = active_grant(api, "demo", "dev-1")
    assert settled["status"] == "activation_failed"
    assert settled["error"]["code"] == error
    desk_calls = [
        c["method"] for c in jira_calls(stack) if c["path"].endswith("/servicedesk/1/customer")
    ]
    assert desk_calls == ["POST", "DELETE"]
    assert jsm_account(stack, DEV) not in desk_members(stack)
    assert activity_actions(api, "demo", "dev-1") == ["grant.requested", "grant.activation_failed"]
    assert mails_to(stack, DEV) == []


def test_a_failed_grant_is_retried_to_activated(stack: LocalStack, api: Api, seed: Seeder) -> None:
    # Given a grant that failed because JSM refused the bot's credentials
    project = seed.demo()
    faults(stack, {"method": "POST", "path_regex": r"/organization/\d+/user$", "status": 401})
    grant(api, {"contact_id": "dev-1"})
    failed = active_grant(api, "demo", "dev-1")
    assert failed["status"] == "activation_failed"
    # (the account was created before the failure: its welcome email is still owed)
    assert mails_to(stack, DEV) == []

    # When the credentials are fixed and the manager retries
    faults(stack)
    retried = api.post("/projects/demo/grants/dev-1/retry", {}, ACME_PM)

    # Then the grant is activated, the welcome email sent once, the history complete
    assert retried.status == 202
    assert retried.body["status"] == "activation_pending"
    settled = active_grant(api, "demo", "dev-1")
    assert settled["status"] == "activated"
    assert settled["error"] is None
    assert jsm_account(stack, DEV) in org_members(stack, project["organization_id"])
    assert len(mails_to(stack, DEV)) == 1
    assert activity_actions(api, "demo", "dev-1") == [
        "grant.requested",
        "grant.activation_failed",
        "grant.requested",
        "grant.activated",
    ]


# --- duplicates and conflicts ----------------------------------------------------------------


def test_duplicate_post_without_key_is_a_conflict(
    stack: LocalStack, api: Api, seed: Seeder
) -> None:
    seed.demo()
    grant(api, {"contact_id": "dev-1"})

    again = api.post("/projects/demo/grants", {"contact_id": "dev-1"}, ACME_PM)

    assert again.status == 409
    assert again.headers["Content-Type"] == "application/problem+json"
    assert active_grant(api, "demo", "dev-1")["status"] == "activated"
    assert activity_actions(api, "demo", "dev-1") == ["grant.requested", "grant.activated"]
    assert len(grants_table(stack)) == 1


def test_duplicate_post_with_idempotency_key_returns_the_first_answer(
    stack: LocalStack, api: Api, seed: Seeder
) -> None:
    seed.demo()
    key = {"Idempotency-Key": "console-req-42", **ACME_PM}
    first = api.post("/projects/demo/grants", {"contact_id": "dev-1"}, key)

    again = api.post("/projects/demo/grants", {"contact_id": "dev-1"}, key)
    other_body = api.post("/projects/demo/grants", {"email": DEV}, key)

    assert first.status == again.status == 202
    assert again.body == first.body
    assert other_body.status == 422
    assert active_grant(api, "demo", "dev-1")["status"] == "activated"
    assert activity_actions(api, "demo", "dev-1") == ["grant.requested", "grant.activated"]
    assert len(mails_to(stack, DEV)) == 1


def test_delete_while_activation_is_pending_is_refused_with_retry_after(
    stack: LocalStack, api: Api, seed: Seeder
) -> None:
    # Given an activation held up by a slow JSM
    seed.demo()
    faults(
        stack,
        {
            "method": "GET",
            "path_regex": "user/search",
            "status": None,
            "delay_ms": 1500,
            "times": 1,
        },
    )
    grant(api, {"contact_id": "dev-1"})

    # When the manager removes it before it finished
    refused = api.delete("/projects/demo/grants/dev-1", ACME_PM)

    # Then 409 with Retry-After, and the activation completes untouched
    assert refused.status == 409
    assert int(refused.headers["Retry-After"]) > 0
    assert active_grant(api, "demo", "dev-1")["status"] == "activated"
    assert activity_actions(api, "demo", "dev-1") == ["grant.requested", "grant.activated"]

    # And once activated, the removal goes through
    assert api.delete("/projects/demo/grants/dev-1", ACME_PM).status == 202
    assert settled_grant(api, "demo", "dev-1") is None
    assert jsm_account(stack, DEV) not in desk_members(stack)


# --- cost per lifecycle -----------------------------------------------------------------------


def state_transitions(stack: LocalStack, state_machine_arn: str, prefix: str) -> list[int]:
    """States entered by each execution whose name starts with `prefix` (execution history)."""
    sfn = boto3.client("stepfunctions", endpoint_url=stack.aws_url, region_name="eu-west-1")
    executions = sfn.list_executions(stateMachineArn=state_machine_arn)["executions"]
    return [
        sum(
            e["type"].endswith("StateEntered")
            for e in sfn.get_execution_history(executionArn=x["executionArn"])["events"]
        )
        for x in executions
        if x["name"].startswith(prefix)
    ]


def test_lifecycles_stay_within_their_transition_budget(
    stack: LocalStack, api: Api, seed: Seeder
) -> None:
    # Given a full lifecycle of a grant on a project of its own (executions outlive resets)
    seed.demo()
    seed.project("budget", name="Budget project")
    assert api.post("/projects/budget/grants", {"contact_id": "dev-1"}, ACME_PM).status == 202
    settled_grant(api, "budget", "dev-1")
    assert api.delete("/projects/budget/grants/dev-1", ACME_PM).status == 202
    assert settled_grant(api, "budget", "dev-1") is None

    # Then activation entered ≤ 12 states and removal ≤ 8 (Standard workflows bill per transition)
    settings = get_settings()
    [activation] = state_transitions(stack, settings.activation_state_machine_arn, "budget-")
    [removal] = state_transitions(stack, settings.removal_state_machine_arn, "budget-")
    assert activation <= 12
    assert removal <= 8
