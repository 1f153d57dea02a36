"""HR events end to end on the local stack: the signed webhook, the HR queue and its consumer
(Powertools batch + idempotency), the real removal ASL against the JSM emulator (SPEC §4)."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest

from chalicelib.api.hr_events import sign
from chalicelib.config import LOCAL_HR_SECRET, get_settings
from local.aws import LambdaContext, aws_client
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


# --- the fan-out under a Jira rate limit, faults and duplicates (issue 13 item 3) ------------

FIFTY = [f"p{i:02d}" for i in range(50)]


class _NoEvents:
    def publish(self, event: object) -> None:
        """Seeding: the events of grants written as already activated are not asserted."""


def seed_activated_grants(stack: LocalStack, api: Api, seed: Seeder, projects: list[str]) -> None:
    """`dev-1` with an activated grant on each project (a JSM customer in each organization),
    written through the lifecycle (references included) instead of 50 activations."""
    from chalicelib.domain.grant_lifecycle import GrantLifecycle, Move  # noqa: PLC0415
    from chalicelib.domain.models import Grant, GrantStatus, iso, utc_now  # noqa: PLC0415
    from chalicelib.store.repository import DynamoStore  # noqa: PLC0415

    assert stack.jira is not None
    seed.demo()
    jsm = requests_session(stack)
    account = jsm.post(
        f"{stack.jira_url}/rest/servicedeskapi/customer?strictConflictStatusCode=true",
        json={"email": "dana.dev@acme.example", "displayName": "Dana Dev"},
        timeout=10,
    ).json()["accountId"]
    store = DynamoStore()
    lifecycle = GrantLifecycle(store, _NoEvents())  # type: ignore[arg-type]
    for project_id in projects:
        project = seed.project(project_id, name=f"Project {project_id}")
        jsm.post(
            f"{stack.jira_url}/rest/servicedeskapi/organization/{project['organization_id']}/user",
            json={"accountIds": [account]},
            timeout=10,
        )
        now = iso(utc_now())
        new = Grant(
            project_id=project_id,
            contact_id="dev-1",
            status=GrantStatus.ACTIVATION_PENDING,
            email="dana.dev@acme.example",
            name="Dana Dev",
            requested_by="pm-1",
            requested_at=now,
            updated_at=now,
            service_desk_id="1",
            organization_id=project["organization_id"],
            granted_by_company_id="acme",
        )
        pending = lifecycle.apply(None, Move(GrantStatus.ACTIVATION_PENDING), new=new)
        assert pending is not None
        done = lifecycle.apply(pending, Move(GrantStatus.ACTIVATED, jira_account_id=account))
        assert done is not None
    jsm.post(
        f"{stack.jira_url}/rest/servicedeskapi/servicedesk/1/customer",
        json={"accountIds": [account]},
        timeout=10,
    )


def requests_session(stack: LocalStack) -> Any:
    import requests  # noqa: PLC0415

    session = requests.Session()
    session.auth = ("helpdesk-bot@example.com", "local-token")
    session.headers["X-ExperimentalApi"] = "opt-in"
    return session


def test_fifty_grants_are_removed_once_each_under_a_rate_limit_faults_and_duplicates(
    stack: LocalStack, api: Api, seed: Seeder
) -> None:
    from chalicelib import services  # noqa: PLC0415
    from chalicelib.domain.models import Actor, ActorType  # noqa: PLC0415

    # Given dev-1 with activated grants on 50 projects, and Jira limited to 10 requests/s that
    # also fails some removals with 503s
    seed_activated_grants(stack, api, seed, FIFTY)
    assert stack.jira is not None
    flaky = {"method": "DELETE", "path_regex": r"/organization/\d+/user$", "status": 503}
    stack.jira.set_faults([{**flaky, "times": 5}], rate_limit_per_second=10)

    # When the same HR event arrives three times while the company's IdP deactivates it (SCIM)
    started = time.monotonic()
    event = {"id": "evt-50", "type": "contact.offboarded", "contact_id": "dev-1"}
    scim = threading.Thread(
        target=lambda: services.offboarding().offboard_contact(
            services.store().get_contact("dev-1"),  # type: ignore[arg-type]
            Actor(type=ActorType.SCIM, id="tok-1"),
        )
    )
    scim.start()
    for _ in range(3):
        post_event(api, {**event, "occurred_at": EVENT_AT})
    scim.join()

    # Then every grant is removed...
    def all_gone() -> bool:
        return set(grant_statuses(api, FIFTY, "dev-1").values()) == {"gone"}

    wait_for(all_gone, 300, "50 removals")
    elapsed = time.monotonic() - started
    print(f"\nfan-out of 50 grants at 10 req/s: {elapsed:.1f} s")
    # ... each with exactly one removal_requested, by hr or scim, saying why
    for project_id in FIFTY:
        [entry] = removal_entries(api, project_id, "dev-1")
        assert entry["actor"]["type"] in {"hr", "scim"}
        assert entry["detail"]["reason"] == "offboarded"
    # ... and Jira's throttling was met (429s answered) without losing one
    calls = stack.jira.calls()
    assert any(c["status"] == 429 for c in calls) or elapsed >= 9


def test_a_poison_message_fails_alone_and_reaches_the_dlq_after_three_receives(
    stack: LocalStack, api: Api, seed: Seeder
) -> None:

    # Given dev-1 with an activated grant
    seed.demo()
    granted_on(api, seed, ["demo"], "dev-1")
    # When one batch carries a poison message, an unknown contact and dev-1's offboarding
    records = [
        {"id": "poison", "type": "contact.hired", "contact_id": "dev-1"},
        {"id": "evt-u", "type": "contact.offboarded", "email": "nobody@acme.example"},
        {"id": "evt-d", "type": "contact.offboarded", "contact_id": "dev-1"},
    ]
    bodies = [json.dumps({**r, "occurred_at": EVENT_AT}) for r in records]
    batch = {
        "Records": [
            {
                "messageId": f"m-{i}",
                "receiptHandle": f"r-{i}",
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:eu-west-1:123456789012:helpdesk-local-hr-events",
                "awsRegion": "eu-west-1",
            }
            for i, body in enumerate(bodies)
        ]
    }
    context = LambdaContext(function_name="hr_events", invoked_function_arn="arn:hr_events")
    result = stack.app.handler_map["hr_events"](batch, context)

    # Then only the poison message is reported failed; the unknown contact is acknowledged
    assert result == {"batchItemFailures": [{"itemIdentifier": "m-0"}]}
    wait_for(lambda: grant_statuses(api, ["demo"], "dev-1") == {"demo": "gone"}, 60, "removal")

    # And on the real queue it reaches the DLQ after 3 receives (30 s visibility each)
    settings = get_settings()
    sqs = aws_client("sqs", stack.aws_url, settings.region)
    sqs.send_message(QueueUrl=settings.hr_queue_url, MessageBody=bodies[0])
    dlq = settings.hr_queue_url + "-dlq"

    def in_dlq() -> list[Any]:
        got = sqs.receive_message(QueueUrl=dlq, AttributeNames=["All"], VisibilityTimeout=0)
        return list(got.get("Messages", []))

    [dead] = wait_for(in_dlq, 150, "the poison message in the DLQ")
    assert json.loads(dead["Body"])["id"] == "poison"


def test_a_company_change_keeps_the_grant_of_an_external_link(
    stack: LocalStack, api: Api, seed: Seeder
) -> None:
    from chalicelib import services  # noqa: PLC0415

    # Given pat (partner) with a grant on acme's demo, so linked as an external of acme
    seed.demo()
    seed.contact("pat-1", "pat@partner.example", company="partner")
    added = api.post("/projects/demo/grants", {"email": "pat@partner.example"}, ACME_PM)
    assert added.status == 202, added.body
    active_grant(api, "demo", "pat-1")

    # When HR moves pat to another company
    event = {"id": "evt-c", "type": "contact.company_changed", "contact_id": "pat-1"}
    post_event(api, {**event, "company_id": "other", "occurred_at": EVENT_AT})

    # Then its company changes and the grant it holds as acme's external stays
    def moved() -> bool:
        return services.store().get_contact("pat-1").company_id == "other"  # type: ignore[union-attr]

    wait_for(moved, 20, "the company change")
    assert grant_statuses(api, ["demo"], "pat-1") == {"demo": "activated"}
    assert removal_entries(api, "demo", "pat-1") == []
