"""Access requests over HTTP (SPEC §2 `access-requests` rows) on the local stack: asking,
approving (the real activation starts), denying, and the scheduled TTL expiry run twice at once."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from typing import Any

from chalicelib.config import get_settings
from chalicelib.domain.models import ContactStatus, iso, utc_now
from local.aws import aws_client
from local.stack import LocalStack, Scheduler
from tests.api.expect import World, assert_problem
from tests.helpers import ACME_PM, INTEGRATOR_PM, Api, Seeder, active_grant, bearer

REQUESTS = "/projects/demo/access-requests"
DANA = bearer("dev-1", "dana.dev@acme.example", "acme", ["console_user"])
IAN = bearer("int-1", "ian@integrator.example", "integrator", ["console_user"])


def ask(api: Api, headers: dict[str, str] = DANA, reason: str = "I support imports") -> Any:
    return api.post(REQUESTS, {"reason": reason}, headers)


def _expiry_job(stack: LocalStack) -> dict[str, Any]:
    job = "expire_access_requests"
    payload, failed = Scheduler(stack.app, get_settings().region, 0).invoke(job)
    assert not failed, payload
    return dict(json.loads(payload))


def test_ask_then_approve_starts_the_activation_requested_by_the_approver(
    stack: LocalStack, api: Api, seed: Seeder, world: World
) -> None:
    seed.demo()
    # A reason is required, one line of 1..500 characters (rule 12)
    for bad in ("", "x" * 501, "two\nlines"):
        with world.unchanged():
            assert_problem(ask(api, reason=bad), 422)
    asked = ask(api)
    assert asked.status == 201, asked.body
    request = asked.body
    assert (request["status"], request["contact_id"]) == ("pending", "dev-1")
    assert request["reason"] == "I support imports"
    assert request["expires_at"] > request["requested_at"]
    # One pending request per contact
    with world.unchanged():
        assert_problem(ask(api), 409)
    # The requester sees it, so does acme's manager; the integrator's manager does not
    assert [r["request_id"] for r in api.get(REQUESTS, DANA).body["items"]] == [
        request["request_id"]
    ]
    assert len(api.get(f"{REQUESTS}?status=pending", ACME_PM).body["items"]) == 1
    assert api.get(REQUESTS, INTEGRATOR_PM).body["items"] == []
    assert_problem(api.get(f"{REQUESTS}?status=bogus", ACME_PM), 422)
    path = f"{REQUESTS}/{request['request_id']}"
    # ... who may not decide it either
    with world.unchanged():
        assert_problem(api.post(f"{path}/approve", {}, INTEGRATOR_PM), 403)

    # When acme's manager approves it with an end date
    ends = (utc_now() + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    approved = api.post(f"{path}/approve", {"expires_at": ends}, ACME_PM)

    # Then the request is approved and the grant activated, requested by the approver
    assert approved.status == 200, approved.body
    assert (approved.body["status"], approved.body["decided_by"]) == ("approved", "pm-1")
    grant = active_grant(api, "demo", "dev-1")
    assert grant["status"] == "activated"
    assert grant["requested_by"] == "pm-1"
    assert grant["expires_at"] == ends.replace("Z", ".000Z")
    assert stack.mailbox is not None
    decisions = [m for m in stack.mailbox.messages() if "request was approved" in m["subject"]]
    assert [m["to"] for m in decisions] == [["dana.dev@acme.example"]]
    assert "“I support imports”" in decisions[0]["text"]
    # And it is decided: no second decision; asking again with a grant is a 409
    with world.unchanged():
        assert_problem(api.post(f"{path}/deny", {}, ACME_PM), 409)
        assert_problem(ask(api), 409)


def test_deny_and_who_may_decide(api: Api, seed: Seeder, world: World) -> None:
    seed.demo()
    seed.contact("int-1", "ian@integrator.example", company="integrator")
    dana = ask(api).body
    ian = ask(api, IAN).body
    # The requester never approves their own request, even with a manager's role
    own = bearer("dev-1", "dana.dev@acme.example", "acme", ["console_user", "project_manager"])
    with world.unchanged():
        assert_problem(api.post(f"{REQUESTS}/{dana['request_id']}/approve", {}, own), 403)
    # A manager of the other project company cannot decide for this company's contacts
    with world.unchanged():
        assert_problem(api.post(f"{REQUESTS}/{dana['request_id']}/deny", {}, INTEGRATOR_PM), 403)
        assert_problem(api.post(f"{REQUESTS}/{ian['request_id']}/deny", {}, ACME_PM), 403)
    # The integrator's own manager decides for its contact
    denied = api.post(f"{REQUESTS}/{ian['request_id']}/deny", {"reason": "not now"}, INTEGRATOR_PM)
    assert denied.status == 200, denied.body
    assert (denied.body["status"], denied.body["decided_by"]) == ("denied", "ipm-1")
    assert api.get("/projects/demo/grants/int-1", ACME_PM).status == 404
    assert_problem(api.post(f"{REQUESTS}/q-nope/approve", {}, ACME_PM), 404)


def test_a_contact_offboarded_before_the_decision_is_refused(
    api: Api, seed: Seeder, world: World
) -> None:
    from chalicelib import services  # noqa: PLC0415 - the app's own store, as configured

    seed.demo()
    request = ask(api).body
    store = services.store()
    dana = store.get_contact("dev-1")
    assert dana is not None
    uow = store.unit_of_work()
    uow.change_contact_status(dana.contact_id, ContactStatus.OFFBOARDED)
    uow.commit()
    with world.unchanged():
        answer = api.post(f"{REQUESTS}/{request['request_id']}/approve", {}, ACME_PM)
    assert_problem(answer, 422, slug="contact-offboarded")


def test_a_request_nobody_decides_expires_once_even_with_two_jobs(
    stack: LocalStack, api: Api, seed: Seeder
) -> None:
    seed.demo()
    request = ask(api).body
    # Given its TTL ended (written as the test: the TTL is a setting read at start)
    dynamodb = aws_client("dynamodb", stack.aws_url, get_settings().region)
    dynamodb.update_item(
        TableName=get_settings().governance_table,
        Key={"pk": {"S": "project#demo"}, "sk": {"S": f"request#{request['request_id']}"}},
        UpdateExpression="SET due_at = :past",
        ExpressionAttributeValues={":past": {"S": iso(utc_now() - timedelta(seconds=1))}},
    )
    reports: list[dict[str, Any]] = []
    threads = [threading.Thread(target=lambda: reports.append(_expiry_job(stack))) for _ in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sum(r["expired"] for r in reports) == 1, reports
    items = api.get(REQUESTS, ACME_PM).body["items"]
    assert [r["status"] for r in items] == ["expired"]
    log = api.get("/projects/demo/activity?action=access_request.expired", ACME_PM).body["items"]
    assert len(log) == 1
    assert log[0]["actor"]["type"] == "system"
    assert_problem(api.post(f"{REQUESTS}/{request['request_id']}/approve", {}, ACME_PM), 409)
