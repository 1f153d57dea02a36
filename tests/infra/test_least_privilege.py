"""Every AWS call each Lambda makes is one its role allows, as in AWS.

The replay runs the real flows (API over HTTP, the real ASL calling the task handlers, the
sweeper) while every botocore call is recorded with the function it was made for, and checks
them against the declared access (`infra/access.py`), both ways. The local stack itself refuses
any call a function's role in the template does not allow (local/iam.py); the tests at the end
show that removing one permission from one role fails the flow as it would in AWS.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from botocore.client import BaseClient
from botocore.exceptions import ClientError
from chalice.app import Chalice

from chalicelib.api.auth import issue_token
from chalicelib.config import get_settings
from chalicelib.domain.models import iso, utc_now
from infra import access, template
from infra.functions import API_HANDLER, app_functions
from infra.synth import synth
from local.aws import aws_client, invoke_handler
from local.stack import LocalStack
from tests.helpers import ACME_PM, Api, Seeder, jira_paced, settled_grant

pytestmark = pytest.mark.slow

SECRET = "local-dev-secret"


def bearer(sub: str, email: str, company: str | None, roles: list[str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(SECRET, sub, email, company, roles)}"}


SERVICE = bearer("console", "console@example.com", None, ["service"])
MANAGER = bearer("pm-1", "priya.pm@acme.example", "acme", ["project_manager"])
ADMIN = bearer("admin-1", "ada.admin@acme.example", "acme", ["company_admin"])


@dataclass(frozen=True)
class Call:
    function: str
    service: str
    operation: str
    params: dict[str, Any]


class Recorder:
    """Records botocore calls made while a Lambda handler (or the API) runs, per function."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self._current = threading.local()
        self._lock = threading.Lock()

    def running(self, function: str) -> Any:
        recorder = self

        class _Running:
            def __enter__(self) -> None:
                recorder._current.function = function

            def __exit__(self, *exc: object) -> None:
                recorder._current.function = None

        return _Running()

    def record(self, client: BaseClient, operation: str, params: dict[str, Any]) -> None:
        function = getattr(self._current, "function", None)
        if function is not None:
            service = client.meta.service_model.service_name
            with self._lock:
                self.calls.append(Call(function, service, operation, dict(params)))


@pytest.fixture(scope="module")
def recorded(running_stack: LocalStack) -> Iterator[tuple[Recorder, LocalStack]]:
    """The process's local stack (tests/conftest.py), reset, with every AWS call recorded."""
    stack = running_stack
    stack.reset()
    recorder = Recorder()
    patch = pytest.MonkeyPatch()
    original_call = BaseClient._make_api_call

    def make_api_call(self: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        recorder.record(self, operation, params)
        return original_call(self, operation, params)

    original_app_call = Chalice.__call__

    def api_call(self: Chalice, event: Any, context: Any) -> Any:
        with recorder.running(API_HANDLER):
            return original_app_call(self, event, context)

    patch.setattr(BaseClient, "_make_api_call", make_api_call)
    patch.setattr(Chalice, "__call__", api_call)
    handlers = dict(stack.app.handler_map)
    for name, handler in handlers.items():
        if name != API_HANDLER:
            stack.app.handler_map[name] = _attributed(recorder, name, handler)
    try:
        # Paced (fast enough never to wait), so the Jira steps use the limiter's item too.
        with jira_paced(1000):
            yield recorder, stack
    finally:
        stack.app.handler_map.update(handlers)
        patch.undo()
        stack.reset()


def _attributed(recorder: Recorder, name: str, handler: Callable[..., Any]) -> Callable[..., Any]:
    def run(*args: Any) -> Any:
        with recorder.running(name):
            return handler(*args)

    return run


def wait_for(check: Callable[[], Any], what: str, timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := check()):
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)
    return result


def _exercise(stack: LocalStack) -> None:
    """Every flow the deployed service runs, end to end."""
    assert stack.jira is not None
    session = requests.Session()

    def api(method: str, path: str, **kwargs: Any) -> requests.Response:
        return session.request(method, stack.api_url + path, timeout=10, **kwargs)

    def status(contact: str) -> Callable[[], str | None]:
        def read() -> str | None:
            response = api("GET", f"/projects/demo/grants/{contact}", headers=MANAGER)
            if response.status_code == 404:
                return "gone"
            value = str(response.json()["status"])
            return None if value.endswith("_pending") else value

        return read

    project = {
        "name": "Demo",
        "customer_company_id": "acme",
        "created_by": "admin-1",
        "service_desk_id": "1",
    }
    assert api("PUT", "/projects/demo", json=project, headers=SERVICE).status_code == 201
    # moved to another organization: the claim on the first one is released (deleted)
    other = session.post(
        f"{stack.jira_url}/rest/servicedeskapi/organization",
        json={"name": "Demo, moved"},
        auth=("helpdesk-bot@example.com", "local-token"),
        timeout=10,
    ).json()
    moved_project = {**project, "organization_id": other["id"]}
    assert api("PUT", "/projects/demo", json=moved_project, headers=SERVICE).status_code == 200
    for contact_id, email in (("pm-1", "priya.pm@acme.example"), ("dev-1", "dana@acme.example")):
        body = {"email": email, "name": contact_id, "company_id": "acme", "console_user": True}
        assert api("PUT", f"/contacts/{contact_id}", json=body, headers=SERVICE).status_code == 201
    moved = {
        "email": "dana.dev@acme.example",
        "name": "Dana",
        "company_id": "acme",
        "console_user": True,
    }
    assert api("PUT", "/contacts/dev-1", json=moved, headers=SERVICE).status_code == 200
    api("GET", "/contacts", params={"email": "dana.dev@acme.example"}, headers=MANAGER)
    api("GET", "/projects/demo/eligible-contacts", headers=MANAGER)

    # activation (new JSM account: welcome email), reads, password reset, support access
    added = api(
        "POST",
        "/projects/demo/grants",
        json={"contact_id": "dev-1"},
        headers={**MANAGER, "Idempotency-Key": "k-1"},
    )
    assert added.status_code == 202, added.text
    assert wait_for(status("dev-1"), "activation") == "activated"
    again = api(
        "POST",
        "/projects/demo/grants",
        json={"contact_id": "dev-1"},
        headers={**MANAGER, "Idempotency-Key": "k-1"},
    )
    assert again.status_code == 202, again.text
    api("GET", "/projects/demo/grants", headers=MANAGER)
    api("GET", "/projects/demo/activity", headers=MANAGER)
    api("GET", "/projects/demo/activity", params={"contact_id": "dev-1"}, headers=MANAGER)
    api("GET", "/projects/demo/helpdesk", headers=MANAGER)
    api("POST", "/projects/demo/grants/dev-1/password-reset", headers=MANAGER)
    support = {"enabled": True, "reason": "incident 42", "confirmation": "Support"}
    api("PUT", "/projects/demo/support-access", json=support, headers=ADMIN)

    # a contact of another company by email, then a new external: both linked to the company
    partner = {"email": "pat@partner.example", "name": "Pat", "company_id": "partner"}
    assert api("PUT", "/contacts/pat-1", json=partner, headers=SERVICE).status_code == 201
    by_email = {"email": "pat@partner.example"}
    assert api("POST", "/projects/demo/grants", json=by_email, headers=MANAGER).status_code == 202
    # ...and again on a second project of the company, now that pat is its external (the add
    # checks the link in its transaction)
    second = {**project, "name": "Demo two"}
    assert api("PUT", "/projects/demo2", json=second, headers=SERVICE).status_code == 201
    assert api("POST", "/projects/demo2/grants", json=by_email, headers=MANAGER).status_code == 202
    guest = {"new_contact": {"email": "gil@partner.example", "name": "Gil", "kind": "external"}}
    assert api("POST", "/projects/demo/grants", json=guest, headers=MANAGER).status_code == 202
    wait_for(lambda: api("GET", "/projects/demo/grants", headers=MANAGER).json()["items"], "guest")

    # removal (leaves the desk; unlinks the external)
    assert api("DELETE", "/projects/demo/grants/dev-1", headers=MANAGER).status_code == 202
    assert wait_for(status("dev-1"), "removal") == "gone"
    items = api("GET", "/projects/demo/grants", headers=MANAGER).json()["items"]
    for grant in items:
        wait_for(status(grant["contact_id"]), "guest activation")
        api("DELETE", f"/projects/demo/grants/{grant['contact_id']}", headers=MANAGER)
        wait_for(status(grant["contact_id"]), "guest removal")

    # a rejected activation: record_failure, then a retry
    stack.jira.set_faults(
        [{"method": "POST", "path_regex": r"/servicedesk/1/customer$", "status": 400, "times": 1}]
    )
    api("POST", "/projects/demo/grants", json={"contact_id": "dev-1"}, headers=MANAGER)
    assert wait_for(status("dev-1"), "failure") == "activation_failed"
    api("POST", "/projects/demo/grants/dev-1/retry", headers=MANAGER)
    assert wait_for(status("dev-1"), "retry") == "activated"

    # the sweeper: one grant whose execution ended without an outcome, one never started
    _stall(stack)
    event = {
        "version": "0",
        "id": "sweep-1",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": iso(utc_now()),
        "region": get_settings().region,
        "resources": [],
        "detail": {},
    }
    payload, failed = invoke_handler(
        stack.app, "sweep_stalled_grants", event, "sweep", get_settings().region
    )
    assert not failed, payload
    assert b'"restarted": 1' in payload
    assert b'"failed": 1' in payload
    assert b'"owed_emails_sent": 1' in payload
    assert b'"owed_welcome_emails_sent": 1' in payload
    # drift: a stranger in the organization; the daily check reports it (DriftFound event),
    # then a platform admin reconciles it away through the API
    organization = api("GET", "/projects/demo", headers=SERVICE).json()["organization_id"]
    stack.jira.add_members(organization, 1)
    payload, failed = invoke_handler(
        stack.app, "check_drift", event, "drift", get_settings().region
    )
    assert not failed, payload
    assert b'"projects_with_drift": 1' in payload
    root = bearer("root-1", "root@platform.example", "platform", ["platform_admin"])
    fix = {"repair": True, "remove_extra": True}
    answer = api("POST", "/projects/demo/reconcile", json=fix, headers=root)
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["removed"]) == 1

    # time-bound grants: one expiring in a moment (removed), one in two days (reminded)
    for contact_id in ("exp-1", "rem-1"):
        body = {
            "email": f"{contact_id}@acme.example",
            "name": contact_id,
            "company_id": "acme",
            "console_user": True,
        }
        assert api("PUT", f"/contacts/{contact_id}", json=body, headers=SERVICE).status_code == 201
        added = api(
            "POST", "/projects/demo/grants", json={"contact_id": contact_id}, headers=MANAGER
        )
        assert added.status_code == 202, added.text
        assert wait_for(status(contact_id), f"{contact_id} activation") == "activated"
    expiring = {"expires_at": iso(utc_now() + timedelta(seconds=1))}
    changed = api("PATCH", "/projects/demo/grants/exp-1", json=expiring, headers=MANAGER)
    assert changed.status_code == 200, changed.text
    in_two_days = {"expires_at": iso(utc_now() + timedelta(days=2))}
    api("PATCH", "/projects/demo/grants/rem-1", json=in_two_days, headers=MANAGER)
    time.sleep(1.2)
    payload, failed = invoke_handler(
        stack.app, "expire_grants", event, "expire_grants", get_settings().region
    )
    assert not failed, payload
    assert b'"removals_started": 1' in payload
    assert b'"reminders_sent": 1' in payload
    assert wait_for(status("exp-1"), "expiry removal") == "gone"

    # access reviews: open one due in a moment, revoke one grant (its removal starts), keep
    # none; at the deadline the job removes the undecided grants and closes the review
    due = {"due_at": iso(utc_now() + timedelta(seconds=1))}
    review = api("POST", "/projects/demo/reviews", json=due, headers=MANAGER)
    assert review.status_code == 201, review.text
    review_path = f"/projects/demo/reviews/{review.json()['review_id']}"
    assert api("GET", "/projects/demo/reviews", headers=MANAGER).status_code == 200
    revoke = {"decision": "revoke"}
    decided = api("PUT", f"{review_path}/items/rem-1", json=revoke, headers=MANAGER)
    assert decided.status_code == 200, decided.text
    assert wait_for(status("rem-1"), "review removal") == "gone"
    time.sleep(1.2)
    payload, failed = invoke_handler(
        stack.app, "close_due_reviews", event, "close_due_reviews", get_settings().region
    )
    assert not failed, payload
    assert b'"reviews_closed": 1' in payload
    assert api("GET", review_path, headers=MANAGER).json()["status"] == "closed"

    # access requests: a console user asks, a manager approves (the activation starts) and
    # denies another; one left pending past its TTL is expired by the scheduled job
    asks = {}
    for contact_id in ("ask-1", "ask-2", "ask-3"):
        body = {
            "email": f"{contact_id}@acme.example",
            "name": contact_id,
            "company_id": "acme",
            "console_user": True,
        }
        assert api("PUT", f"/contacts/{contact_id}", json=body, headers=SERVICE).status_code == 201
        user = bearer(contact_id, f"{contact_id}@acme.example", "acme", ["console_user"])
        asked = api(
            "POST", "/projects/demo/access-requests", json={"reason": "imports"}, headers=user
        )
        assert asked.status_code == 201, asked.text
        asks[contact_id] = f"/projects/demo/access-requests/{asked.json()['request_id']}"
    listed = api("GET", "/projects/demo/access-requests?status=pending", headers=MANAGER)
    assert len(listed.json()["items"]) == 3
    approved = api("POST", asks["ask-1"] + "/approve", json={}, headers=MANAGER)
    assert approved.status_code == 200, approved.text
    assert wait_for(status("ask-1"), "approved activation") == "activated"
    denied = api("POST", asks["ask-2"] + "/deny", json={"reason": "no"}, headers=MANAGER)
    assert denied.status_code == 200, denied.text
    governance = aws_client("dynamodb", stack.aws_url, get_settings().region)
    request_id = asks["ask-3"].rsplit("/", 1)[-1]
    governance.update_item(  # its TTL ended (written as the test: not recorded)
        TableName=get_settings().governance_table,
        Key={"pk": {"S": "project#demo"}, "sk": {"S": f"request#{request_id}"}},
        UpdateExpression="SET due_at = :past",
        ExpressionAttributeValues={":past": {"S": iso(utc_now() - timedelta(seconds=1))}},
    )
    payload, failed = invoke_handler(
        stack.app, "expire_access_requests", event, "expire_access_requests", get_settings().region
    )
    assert not failed, payload
    assert b'"expired": 1' in payload
    _exercise_hr(stack, api, status)
    session.close()


def _exercise_hr(
    stack: LocalStack,
    api: Callable[..., requests.Response],
    status: Callable[[str], Callable[[], str | None]],
) -> None:
    """HR events through the signed webhook and the queue's consumer: an offboarding by email
    whose fan-out takes two rounds (the follow-up goes back on the queue), a company change."""
    from chalicelib.api.hr_events import sign  # noqa: PLC0415
    from chalicelib.config import LOCAL_HR_SECRET  # noqa: PLC0415

    def send(event: dict[str, Any]) -> None:
        body = json.dumps(event).encode()
        headers = {"X-Signature": sign(body, LOCAL_HR_SECRET), "Content-Type": "application/json"}
        answer = api("POST", "/hr/events", data=body, headers=headers)
        assert answer.status_code == 202, answer.text

    for contact_id in ("hr-1", "hr-2"):
        person: dict[str, Any] = {"email": f"{contact_id}@acme.example", "name": contact_id}
        person |= {"company_id": "acme", "console_user": True}
        assert (
            api("PUT", f"/contacts/{contact_id}", json=person, headers=SERVICE).status_code == 201
        )
        added = api(
            "POST", "/projects/demo/grants", json={"contact_id": contact_id}, headers=MANAGER
        )
        assert added.status_code == 202, added.text
        assert wait_for(status(contact_id), f"{contact_id} activation") == "activated"
    send(
        {
            "id": "hr-evt-1",
            "type": "contact.offboarded",
            "email": "HR-1@ACME.example",
            "occurred_at": "2026-01-01T00:00:00Z",
        }
    )
    wait_for(lambda: status("hr-1")() == "gone", "offboarding removal", timeout=30)
    # an offboarding while an activation runs: its round waits, a follow-up goes on the queue
    assert stack.jira is not None
    slow = {"method": "POST", "path_regex": "/organization/.*/user$", "status": None}
    stack.jira.set_faults([{**slow, "times": 1, "delay_ms": 3000}])
    body = {"email": "hr-3@acme.example", "name": "hr-3", "company_id": "acme"}
    assert api("PUT", "/contacts/hr-3", json={**body, "console_user": True}, headers=SERVICE)
    api("POST", "/projects/demo/grants", json={"contact_id": "hr-3"}, headers=MANAGER)
    send(
        {
            "id": "hr-evt-3",
            "type": "contact.offboarded",
            "contact_id": "hr-3",
            "occurred_at": "2026-01-01T00:00:00Z",
        }
    )
    wait_for(lambda: status("hr-3")() == "activation_failed", "refused activation", timeout=30)
    send(
        {
            "id": "hr-evt-2",
            "type": "contact.company_changed",
            "contact_id": "hr-2",
            "company_id": "elsewhere",
            "occurred_at": "2026-01-01T00:00:00Z",
        }
    )
    wait_for(lambda: status("hr-2")() == "gone", "company change removal", timeout=30)


def _stall(stack: LocalStack) -> None:
    """Two grants the sweeper must move on (written as the test: not recorded)."""
    settings = get_settings()
    dynamodb = aws_client("dynamodb", stack.aws_url, settings.region)
    an_hour_ago = iso(utc_now() - timedelta(hours=1))
    # dev-1's activation execution has finished: pending again, it ended without an outcome
    dynamodb.update_item(
        TableName=settings.grants_table,
        Key={"project_id": {"S": "demo"}, "contact_id": {"S": "dev-1"}},
        UpdateExpression="SET #s = :s, updated_at = :u",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":s": {"S": "activation_pending"}, ":u": {"S": an_hour_ago}},
    )
    # pm-1's removal was written but its execution never started (the API died in between)
    item = {
        "project_id": "demo",
        "contact_id": "pm-1",
        "status": "deletion_pending",
        "email": "priya.pm@acme.example",
        "name": "Priya",
        "requested_by": "pm-1",
        "requested_at": an_hour_ago,
        "updated_at": an_hour_ago,
        "service_desk_id": "1",
        "organization_id": "1",
        "lifecycle_id": "demo-pm-1-removal-00000000000000000000000000",  # never started
    }
    dynamodb.put_item(TableName=settings.grants_table, Item={k: {"S": v} for k, v in item.items()})
    # dev-2 was activated an hour ago, but SES refused its welcome email: still owed
    owed_welcome = {
        **{k: {"S": v} for k, v in item.items()},
        "contact_id": {"S": "dev-2"},
        "email": {"S": "dev2@acme.example"},
        "status": {"S": "activated"},
        "lifecycle_id": {"S": "demo-dev-2-activation-00000000000000000000000000"},
        "welcome_owed": {"BOOL": True},
    }
    dynamodb.put_item(TableName=settings.grants_table, Item=owed_welcome)
    # demo's support access was switched an hour ago and its email is still owed (SES failed)
    owed = {
        "enabled": {"BOOL": True},
        "reason": {"S": "incident 42"},
        "changed_by": {"S": "admin-1@acme.example"},
        "changed_at": {"S": an_hour_ago},
        "notified": {"BOOL": False},
    }
    dynamodb.update_item(
        TableName=settings.projects_table,
        Key={"project_id": {"S": "demo"}},
        UpdateExpression="SET support_access = :a",
        ExpressionAttributeValues={":a": {"M": owed}},
    )


# --- calls → IAM actions --------------------------------------------------------------------

TRANSACT_ACTIONS = {
    "Put": "dynamodb:PutItem",
    "Update": "dynamodb:UpdateItem",
    "Delete": "dynamodb:DeleteItem",
    "ConditionCheck": "dynamodb:ConditionCheckItem",
}


def _table_key(table_name: str) -> str:
    return table_name.rsplit("-", 1)[-1]


def needed(call: Call) -> list[tuple[str, str]]:
    """`(capability, detail)` pairs an IAM policy must allow for `call`."""
    if call.service == "dynamodb":
        if call.operation == "TransactWriteItems":
            found = []
            for item in call.params["TransactItems"]:
                ((kind, body),) = item.items()
                found.append((f"table:{_table_key(body['TableName'])}", TRANSACT_ACTIONS[kind]))
            return found
        if call.operation in ("BatchGetItem", "BatchWriteItem"):
            return [
                (f"table:{_table_key(table)}", f"dynamodb:{call.operation}")
                for table in call.params["RequestItems"]
            ]
        if call.operation == "TransactGetItems":
            return [
                (f"table:{_table_key(i['Get']['TableName'])}", "dynamodb:GetItem")
                for i in call.params["TransactItems"]
            ]
        return [(f"table:{_table_key(call.params['TableName'])}", f"dynamodb:{call.operation}")]
    machine = str(call.params.get("stateMachineArn") or call.params.get("executionArn") or "")
    simple = {
        ("stepfunctions", "StartExecution"): "start_execution",
        ("stepfunctions", "DescribeExecution"): "describe_execution",
        ("ses", "SendEmail"): "send_email",
        ("events", "PutEvents"): "put_events",
        ("sqs", "SendMessage"): "send_hr_queue",
        ("secretsmanager", "GetSecretValue"): "secret",
    }
    capability = simple.get((call.service, call.operation), f"{call.service}:{call.operation}")
    return [(capability, machine)]


# Declared table actions the flows above do not reach, and why they are still needed.
NOT_EXERCISED = {
    # Powertools idempotency reads a record when a conditional put fails without returning it,
    # and deletes its in-progress record when the guarded call raises.
    ("api_handler", "idempotency", "dynamodb:GetItem"),
    ("api_handler", "idempotency", "dynamodb:DeleteItem"),
    ("complete_activation", "idempotency", "dynamodb:GetItem"),
    ("complete_activation", "idempotency", "dynamodb:DeleteItem"),
    ("sweep_stalled_grants", "idempotency", "dynamodb:GetItem"),
    ("sweep_stalled_grants", "idempotency", "dynamodb:DeleteItem"),
    ("expire_grants", "idempotency", "dynamodb:GetItem"),
    ("expire_grants", "idempotency", "dynamodb:DeleteItem"),
    ("hr_events", "idempotency", "dynamodb:GetItem"),
    ("hr_events", "idempotency", "dynamodb:DeleteItem"),
    # The Jira limiter reads its item only when another call's 429 report cut the rate first.
    *(
        (step, "governance", "dynamodb:GetItem")
        for step in (
            "ensure_customer",
            "add_to_service_desk",
            "add_to_organization",
            "leave_organization",
            "leave_service_desk",
            "undo_activation",
        )
    ),
}


def allowed(function: str, capability: str, detail: str) -> bool:
    declared = access.ACCESS[function]
    if capability.startswith("table:"):
        return detail in declared.tables.get(capability.removeprefix("table:"), frozenset())
    machine = next((m for m in sorted(declared.start_executions) if m in detail), None)
    if capability == "start_execution":
        return machine is not None
    if capability == "describe_execution":
        return any(m in detail for m in declared.describe_executions)
    return {
        "send_email": declared.send_email,
        "put_events": declared.put_events,
        "send_hr_queue": declared.send_hr_queue,
        "secret": bool(declared.secrets),
    }.get(capability, False)


def test_every_call_is_allowed_by_the_functions_declared_access(
    recorded: tuple[Recorder, LocalStack],
) -> None:
    calls, stack = recorded
    # When every flow runs through the local stack
    _exercise(stack)
    # Then no call was refused by the role the template gives the function (local/iam.py)
    assert stack.iam is not None
    assert stack.iam.take_denials() == []
    # Then each function only made calls its declaration allows
    denied = sorted(
        {
            (call.function, capability, detail)
            for call in calls.calls
            for capability, detail in needed(call)
            if not allowed(call.function, capability, detail)
        }
    )
    assert denied == []
    # And no declared table action is unused (least privilege), but for the known exceptions
    used = {
        (call.function, capability.removeprefix("table:"), detail)
        for call in calls.calls
        for capability, detail in needed(call)
        if capability.startswith("table:")
    }
    declared = {
        (name, table, action)
        for name, declaration in access.ACCESS.items()
        for table, actions in declaration.tables.items()
        for action in actions
    }
    assert sorted(declared - used - NOT_EXERCISED) == []


# --- each function's role, enforced (issue 12, item 1) -------------------------------------------


def lifecycle(api: Api, seed: Seeder) -> tuple[str | None, str | None]:
    """Activation of a new JSM account, then its removal: `(activated status, removal status)`."""
    seed.demo()
    answer = api.post("/projects/demo/grants", {"contact_id": "dev-1"}, ACME_PM)
    if answer.status != 202:
        return f"POST {answer.status}", None
    activated = settled_grant(api, "demo", "dev-1")
    status = None if activated is None else str(activated["status"])
    if status != "activated":
        return status, None
    assert api.delete("/projects/demo/grants/dev-1", ACME_PM).status == 202
    removed = settled_grant(api, "demo", "dev-1")
    return status, "removed" if removed is None else str(removed["status"])


def test_activation_and_removal_run_with_each_functions_own_role(
    stack: LocalStack, api: Api, seed: Seeder
) -> None:
    # Given every function limited to its role in the template (the stack fixture checks
    # that no call was refused) / When a grant is activated and removed / Then both succeed
    assert stack.iam is not None
    assert lifecycle(api, seed) == ("activated", "removed")


@pytest.mark.parametrize(
    ("function", "action", "expected"),
    [
        ("api_handler", "states:StartExecution", ("POST 503", None)),
        ("ensure_customer", "secretsmanager:GetSecretValue", ("activation_failed", None)),
        ("complete_activation", "dynamodb:UpdateItem", ("activation_failed", None)),
        ("leave_service_desk", "dynamodb:Query", ("activated", "deletion_failed")),
        # Events are published after the commit and a failure to publish is only logged: the
        # grant is removed, but the refused call is still reported (and fails any other test).
        ("complete_removal", "events:PutEvents", ("activated", "removed")),
    ],
)
def test_removing_one_permission_from_one_role_fails_like_aws(
    stack: LocalStack,
    api: Api,
    seed: Seeder,
    function: str,
    action: str,
    expected: tuple[str | None, str | None],
) -> None:
    # Given one permission taken from one function's role
    assert stack.iam is not None
    with stack.iam.withdrawn(function, action):
        # When a grant goes through its lifecycle
        outcome = lifecycle(api, seed)
    # Then that function's call was refused as AWS refuses it, and the flow shows it
    denied = {(d.function, d.action) for d in stack.iam.take_denials()}
    assert denied == {(function, action)}
    assert outcome == expected


def test_steps_without_jira_calls_hold_no_jira_token(
    stack: LocalStack, api: Api, seed: Seeder
) -> None:
    # Given the completion and failure steps, whose roles hold no secret at all (the JSM client
    # reads its token on its first call, and these steps never call JSM)
    assert stack.iam is not None
    assert stack.jira is not None
    for function in ("complete_activation", "complete_removal", "record_failure"):
        assert access.ACCESS[function].secrets == frozenset(), function
    try:
        # When a grant is activated and removed, and an activation fails
        outcome = lifecycle(api, seed)
        stack.jira.set_faults(
            [{"method": "POST", "path_regex": r"/servicedesk/1/customer$", "status": 400}]
        )
        api.post("/projects/demo/grants", {"contact_id": "pm-1"}, ACME_PM)
        failed = settled_grant(api, "demo", "pm-1")
    finally:
        denied = stack.iam.take_denials()
    # Then nothing was refused
    assert denied == []
    assert outcome == ("activated", "removed")
    assert failed is not None
    assert failed["status"] == "activation_failed"


def test_the_enforced_policies_are_the_synthesized_templates(tmp_path: Path) -> None:
    # Given the template `make synth` packages (chalice package + our merge template)
    packaged = json.loads(Path(synth("dev", template_only=True, out=tmp_path).template).read_text())
    # When compared with the template the local stack enforces (built with local names)
    built = template.build("dev")
    functions = app_functions("dev")
    # Then every function's role statements are the same, inline policy included
    for function in functions:
        policy = packaged["Resources"][function.policy_id]["Properties"]["PolicyDocument"]
        assert policy == built["Resources"][function.policy_id]["Properties"]["PolicyDocument"]
        role = packaged["Resources"][function.role_id]["Properties"]
        inline = [p["PolicyDocument"] for p in role.get("Policies", [])]
        assert inline == [access.base_role_policy()], function.name
    assert built["Resources"][function.policy_id]["Properties"]["Roles"] == [
        {"Ref": function.role_id}
    ]


def test_each_function_has_its_own_caches(stack: LocalStack) -> None:
    # Given two functions running one after the other in this one process
    from chalicelib import services  # noqa: PLC0415
    from chalicelib.config import get_settings as settings_of  # noqa: PLC0415
    from local.iam import running_as  # noqa: PLC0415

    with running_as("api_handler"):
        first = services.store()
    with running_as("complete_removal"):
        second = services.store()
    with running_as("api_handler"):
        again = services.store()
    # Then each built its own, as two Lambda containers would, and reuses it
    assert first is not second
    assert first is again
    # And clearing a factory clears every function's copy
    settings_of.cache_clear()
    services.store.cache_clear()
    with running_as("api_handler"):
        assert services.store() is not first


def test_a_call_local_iam_cannot_authorize_is_refused(stack: LocalStack) -> None:
    from local.iam import running_as  # noqa: PLC0415

    assert stack.iam is not None
    sqs = aws_client("sqs", stack.aws_url, get_settings().region)
    with running_as("ensure_customer"), pytest.raises(ClientError, match="not authorized"):
        sqs.list_queues()
    assert [d.action for d in stack.iam.take_denials()] == ["sqs:ListQueues"]
