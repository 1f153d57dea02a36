"""The Helpdesk tab (links and the organization's latest open requests, read from JSM, rendered
even when JSM is down or slow) and the vendor support-access switch of seed 003 (rule 8)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from chalicelib import services
from chalicelib.config import get_settings
from local.aws import aws_client
from local.stack import LocalStack
from tests.api.expect import World, assert_problem
from tests.helpers import (
    ACME_PM,
    ACME_USER,
    INTEGRATOR_PM,
    OTHER_PM,
    PLATFORM_ADMIN,
    SERVICE,
    Api,
    Seeder,
    bearer,
)

HELPDESK = "/projects/demo/helpdesk"
SUPPORT = "/projects/demo/support-access"
SUPPORT_TEAM = "support-team@example.com"
ACME_ADMIN = bearer("ca-1", "carla.admin@acme.example", "acme", ["company_admin"])
INTEGRATOR_ADMIN = bearer("ia-1", "ines.admin@integrator.example", "integrator", ["company_admin"])
ENABLE = {"enabled": True, "reason": "Imports fail since Monday", "confirmation": "Support"}
DISABLE = {"enabled": False, "confirmation": "Support"}


@pytest.fixture(autouse=True)
def fresh_helpdesk_reads() -> Iterator[None]:
    """JSM reads are cached per (desk, organization) in the process, and every reset JSM site
    numbers its organizations from 1 again: start each test with an empty cache."""
    services.helpdesk.cache_clear()
    yield
    services.helpdesk.cache_clear()


def jsm(stack: LocalStack) -> Any:
    assert stack.jira is not None
    return stack.jira


def mails(stack: LocalStack) -> list[dict[str, Any]]:
    assert stack.mailbox is not None
    return list(stack.mailbox.messages())


# --- GET /projects/{id}/helpdesk ------------------------------------------------------------


def test_helpdesk_shows_links_and_the_latest_open_requests(
    api: Api, seed: Seeder, stack: LocalStack
) -> None:
    # Given two projects on desk 1 and, for demo, 12 open requests and a closed one
    project = seed.project()
    other = seed.project("p2", name="Other project")
    org = project["organization_id"]
    keys = [
        jsm(stack).add_request("1", f"Request {n}", f"user{n}@acme.example", org)
        for n in range(1, 13)
    ]
    jsm(stack).add_request("1", "Closed one", "user1@acme.example", org, status="closed")
    jsm(stack).add_request("1", "Not ours", "x@globex.example", other["organization_id"])

    # When a member opens the Helpdesk tab
    answer = api.get(HELPDESK, ACME_USER)

    # Then it shows the organization, the desk, the portal links and the 10 newest open requests
    assert answer.status == 200, answer.body
    view = answer.body
    portal = stack.jira_url
    assert view["organization"] == {"id": org, "name": "Demo project (demo)"}
    assert view["service_desk"] == {"id": "1", "name": "Support"}
    assert view["requests_url"] == (
        f"{portal}/servicedesk/customer/user/requests?reporter=org-{org}&statuses=open"
    )
    assert view["new_request_url"] == f"{portal}/servicedesk/customer/portal/1"
    assert view["requests_error"] is None
    latest = view["latest_requests"]
    assert [r["key"] for r in latest] == list(reversed(keys))[:10]
    assert latest[0] == {
        "key": keys[-1],
        "summary": "Request 12",
        "status": "Open",
        "created": latest[0]["created"],
        "reporter": "user12@acme.example",
    }
    assert latest[0]["created"].endswith("Z")
    assert [r["created"] for r in latest] == sorted((r["created"] for r in latest), reverse=True)


def test_helpdesk_of_a_project_without_requests(api: Api, seed: Seeder) -> None:
    # Given a project with no request
    seed.project()

    # When / Then the list is empty, not missing
    answer = api.get(HELPDESK, INTEGRATOR_PM)
    assert answer.status == 200, answer.body
    assert answer.body["latest_requests"] == []
    assert answer.body["requests_error"] is None


@pytest.mark.parametrize(
    "fault",
    [
        {"method": "GET", "path_regex": "/request", "status": 503, "times": None},
        {"method": "GET", "path_regex": "/request", "status": 401, "times": None},
        {"method": "GET", "path_regex": "/request", "status": None, "delay_ms": 5000, "times": 1},
    ],
    ids=["JSM down", "JSM refusing the bot", "JSM slow"],
)
def test_helpdesk_renders_without_jsm(
    api: Api, seed: Seeder, stack: LocalStack, fault: dict[str, Any]
) -> None:
    # Given a project whose requests JSM cannot list in time
    project = seed.project()
    jsm(stack).add_request("1", "Help", "u@acme.example", project["organization_id"])
    jsm(stack).set_faults([fault])

    # When a member opens the Helpdesk tab
    started = time.monotonic()
    answer = api.get(HELPDESK, ACME_USER)
    elapsed = time.monotonic() - started

    # Then it still renders within 3 s: links and names, no requests, and why
    assert answer.status == 200, answer.body
    assert elapsed < 3
    assert answer.body["latest_requests"] is None
    assert answer.body["requests_error"]
    # (in words for people: no JSM path, status or error body of the failed call)
    for internal in ("/rest/", "servicedeskapi", "GET ", "503", "401", "JSM "):
        assert internal not in answer.body["requests_error"]
    assert answer.body["organization"]["name"] == "Demo project (demo)"
    assert answer.body["service_desk"]["name"] == "Support"
    assert answer.body["new_request_url"].endswith("/servicedesk/customer/portal/1")


def test_helpdesk_reads_are_cached_but_failures_are_not(
    api: Api, seed: Seeder, stack: LocalStack
) -> None:
    # Given JSM is down for the first read
    project = seed.project()
    jsm(stack).add_request("1", "Help", "u@acme.example", project["organization_id"])
    jsm(stack).set_faults([{"method": "GET", "path_regex": "/request", "status": 503}])
    assert api.get(HELPDESK, ACME_USER).body["latest_requests"] is None

    # When JSM is back / Then the next read lists the request (the failure was not cached)
    jsm(stack).set_faults([])
    assert [r["summary"] for r in api.get(HELPDESK, ACME_USER).body["latest_requests"]] == ["Help"]

    # When JSM goes down again within the cache time / Then the cached list is still shown
    jsm(stack).set_faults([{"method": "GET", "path_regex": "/request", "status": 503}])
    cached = api.get(HELPDESK, INTEGRATOR_PM).body
    assert [r["summary"] for r in cached["latest_requests"]] == ["Help"]
    assert cached["requests_error"] is None


def test_helpdesk_is_for_members(api: Api, seed: Seeder, stack: LocalStack) -> None:
    # Given
    seed.project()
    calls_before = len(jsm(stack).calls())

    # When / Then another company gets 403, without JSM being asked; an unknown project is 404
    assert_problem(api.get(HELPDESK, OTHER_PM), 403)
    assert len(jsm(stack).calls()) == calls_before
    assert_problem(api.get("/projects/nowhere/helpdesk", SERVICE), 404)


# --- support access (seed 003, rule 8) ------------------------------------------------------


@pytest.fixture
def support_events(stack: LocalStack) -> Iterator[Any]:
    """`SupportAccessChanged` events of the bus, routed to a queue for the test to read."""
    settings = get_settings()
    events = aws_client("events", stack.aws_url, settings.region)
    sqs = aws_client("sqs", stack.aws_url, settings.region)
    queue_url = sqs.create_queue(QueueName="test-support-access-events")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    events.put_rule(
        Name="test-support-access",
        EventBusName=settings.event_bus_name,
        EventPattern=json.dumps(
            {"source": [settings.events_source], "detail-type": ["SupportAccessChanged"]}
        ),
    )
    events.put_targets(
        Rule="test-support-access",
        EventBusName=settings.event_bus_name,
        Targets=[{"Id": "queue", "Arn": queue_arn}],
    )

    def received() -> list[dict[str, Any]]:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get(
            "Messages", []
        )
        return [json.loads(m["Body"]) for m in messages]

    try:
        yield received
    finally:
        events.remove_targets(
            Rule="test-support-access", EventBusName=settings.event_bus_name, Ids=["queue"]
        )
        events.delete_rule(Name="test-support-access", EventBusName=settings.event_bus_name)
        sqs.delete_queue(QueueUrl=queue_url)


def test_support_access_is_off_at_first(api: Api, seed: Seeder) -> None:
    # Given
    seed.project()

    # When / Then every member reads it
    for headers in (ACME_USER, INTEGRATOR_PM, PLATFORM_ADMIN, SERVICE):
        answer = api.get(SUPPORT, headers)
        assert answer.status == 200, answer.body
        assert answer.body == {
            "enabled": False,
            "reason": None,
            "changed_by": None,
            "changed_at": None,
        }
    assert_problem(api.get(SUPPORT, OTHER_PM), 403)
    assert_problem(api.get("/projects/nowhere/support-access", SERVICE), 404)


def test_enable_support_access(
    api: Api, seed: Seeder, stack: LocalStack, support_events: Any
) -> None:
    # Given a project of acme
    seed.project(name="Falcon")

    # When acme's company admin enables support with a reason, confirming with "Support"
    answer = api.put(SUPPORT, ENABLE, ACME_ADMIN)

    # Then 200 with who changed it, why and when
    assert answer.status == 200, answer.body
    access = answer.body
    assert access == {
        "enabled": True,
        "reason": "Imports fail since Monday",
        "changed_by": "carla.admin@acme.example",
        "changed_at": access["changed_at"],
    }
    assert access["changed_at"].endswith("Z")
    assert api.get(SUPPORT, ACME_USER).body == access
    assert api.get("/projects/demo", ACME_USER).body["support_access"] == access

    # And the support team got an email naming the project, the reason and the actor
    [email] = mails(stack)
    assert email["to"] == [SUPPORT_TEAM]
    assert "Falcon" in email["subject"]
    for text in (email["text"], email["html"]):
        assert "Falcon" in text
        assert "Imports fail since Monday" in text
        assert "carla.admin@acme.example" in text

    # And the activity log says who and why
    [entry] = [
        e
        for e in api.get("/projects/demo/activity", ACME_USER).body["items"]
        if e["action"].startswith("support_access.")
    ]
    assert entry["action"] == "support_access.enabled"
    assert entry["actor"] == {"type": "user", "id": "ca-1", "email": "carla.admin@acme.example"}
    assert entry["detail"] == {"reason": "Imports fail since Monday"}
    assert entry["contact"] is None

    # And SupportAccessChanged was published
    [event] = support_events()
    assert event["detail-type"] == "SupportAccessChanged"
    assert event["detail"]["project_id"] == "demo"
    assert event["detail"]["enabled"] is True
    assert event["detail"]["reason"] == "Imports fail since Monday"
    assert event["detail"]["changed_by"] == "carla.admin@acme.example"


def test_enabling_again_changes_nothing(
    api: Api, seed: Seeder, world: World, support_events: Any
) -> None:
    # Given support access is on
    seed.project()
    first = api.put(SUPPORT, ENABLE, ACME_ADMIN).body
    support_events()  # drain the first change's event

    # When it is enabled again with the same reason
    with world.unchanged():
        again = api.put(SUPPORT, ENABLE, ACME_ADMIN)

    # Then 200 with the unchanged state: no second email, activity entry or event
    assert again.status == 200, again.body
    assert again.body == first
    assert support_events() == []


def test_enabling_again_with_a_new_reason_records_it(
    api: Api, seed: Seeder, support_events: Any
) -> None:
    # Given support access is on
    seed.project()
    api.put(SUPPORT, ENABLE, ACME_ADMIN)
    support_events()

    # When it is enabled again with another reason
    again = api.put(SUPPORT, {**ENABLE, "reason": "Still broken"}, ACME_ADMIN)

    # Then the new reason is stored, logged and announced (a change like any other)
    assert again.status == 200, again.body
    assert again.body["reason"] == "Still broken"
    assert api.get(SUPPORT, ACME_ADMIN).body["reason"] == "Still broken"
    assert [e["detail"]["reason"] for e in support_events()] == ["Still broken"]


def test_disable_support_access(api: Api, seed: Seeder, stack: LocalStack) -> None:
    # Given support access is on
    seed.project()
    assert api.put(SUPPORT, ENABLE, ACME_ADMIN).status == 200

    # When the company admin disables it (a reason given anyway is ignored)
    answer = api.put(SUPPORT, {**DISABLE, "reason": "fixed"}, ACME_ADMIN)

    # Then it is off, without a reason, the team is told and the log says so
    assert answer.status == 200, answer.body
    assert answer.body["enabled"] is False
    assert answer.body["reason"] is None
    assert answer.body["changed_by"] == "carla.admin@acme.example"
    assert [m["to"] for m in mails(stack)] == [[SUPPORT_TEAM], [SUPPORT_TEAM]]
    assert "disabled" in mails(stack)[0]["subject"]
    actions = [e["action"] for e in api.get("/projects/demo/activity", ACME_PM).body["items"]]
    assert actions[:2] == ["support_access.disabled", "support_access.enabled"]


def test_disabling_what_is_off_changes_nothing(api: Api, seed: Seeder, world: World) -> None:
    # Given
    seed.project()

    # When / Then
    with world.unchanged():
        answer = api.put(SUPPORT, DISABLE, ACME_ADMIN)
    assert answer.status == 200, answer.body
    assert answer.body["enabled"] is False


@pytest.mark.parametrize(
    "confirmation", ["support", "", "Supp0rt", "SUPPORT", " Support", "Support ", "Yes"]
)
@pytest.mark.parametrize("enabled", [True, False], ids=["enable", "disable"])
def test_a_wrong_confirmation_changes_nothing(
    api: Api, seed: Seeder, world: World, enabled: bool, confirmation: str
) -> None:
    # Given support access in the opposite state
    seed.project()
    if not enabled:
        assert api.put(SUPPORT, ENABLE, ACME_ADMIN).status == 200

    # When the change is confirmed with anything but exactly "Support"
    body = {**(ENABLE if enabled else DISABLE), "confirmation": confirmation}
    with world.unchanged():
        answer = api.put(SUPPORT, body, ACME_ADMIN)

    # Then 422 on confirmation, and nothing changed: no email, no activity, no event
    assert_problem(answer, 422, field="confirmation")


@pytest.mark.parametrize(
    "body",
    [
        {"enabled": True, "confirmation": "Support"},
        {"enabled": True, "reason": None, "confirmation": "Support"},
        {"enabled": True, "reason": "", "confirmation": "Support"},
        {"enabled": True, "reason": "   ", "confirmation": "Support"},
    ],
    ids=["no reason", "null reason", "empty reason", "blank reason"],
)
def test_enabling_needs_a_reason(
    api: Api, seed: Seeder, world: World, body: dict[str, Any]
) -> None:
    # Given
    seed.project()

    # When / Then
    with world.unchanged():
        answer = api.put(SUPPORT, body, ACME_ADMIN)
    assert_problem(answer, 422, field="reason")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"enabled": "yes", "reason": "r", "confirmation": "Support"}, "enabled"),
        ({"reason": "r", "confirmation": "Support"}, "enabled"),
        ({"enabled": True, "reason": "r"}, "confirmation"),
        ({**ENABLE, "reason": 42}, "reason"),
        ({**ENABLE, "reason": "x" * 2001}, "reason"),
        ({**ENABLE, "notify": False}, "notify"),
    ],
    ids=[
        "enabled a string",
        "no enabled",
        "no confirmation",
        "reason a number",
        "long reason",
        "unknown field",
    ],
)
def test_an_invalid_change_is_refused(
    api: Api, seed: Seeder, world: World, body: dict[str, Any], field: str
) -> None:
    seed.project()
    with world.unchanged():
        answer = api.put(SUPPORT, body, ACME_ADMIN)
    assert_problem(answer, 422, field=field)


def test_the_projects_creator_may_switch_support_access(api: Api, seed: Seeder) -> None:
    # Given a project created by pm-1, a project manager without admin rights
    seed.project(created_by="pm-1")

    # When / Then pm-1 may enable and disable support access
    assert api.put(SUPPORT, ENABLE, ACME_PM).status == 200
    assert api.put(SUPPORT, DISABLE, ACME_PM).status == 200


@pytest.mark.parametrize(
    "headers",
    [
        INTEGRATOR_ADMIN,
        ACME_PM,
        INTEGRATOR_PM,
        ACME_USER,
        PLATFORM_ADMIN,
        SERVICE,
        bearer("oa-1", "olga.admin@other.example", "other", ["company_admin"]),
    ],
    ids=[
        "integrator company_admin",
        "customer project_manager (not the creator)",
        "integrator supervisor",
        "customer console_user",
        "platform_admin",
        "service",
        "other company_admin",
    ],
)
def test_only_the_customers_admin_or_the_creator_may_switch(
    api: Api, seed: Seeder, world: World, headers: dict[str, str]
) -> None:
    # Given a project created by someone else
    seed.project(created_by="founder-1")

    # When anyone else tries to enable support access
    with world.unchanged():
        answer = api.put(SUPPORT, ENABLE, headers)

    # Then 403 and nothing changed
    assert_problem(answer, 403)


def test_switching_support_access_on_an_unknown_project_is_not_found(
    api: Api, world: World
) -> None:
    with world.unchanged():
        answer = api.put("/projects/nowhere/support-access", ENABLE, ACME_ADMIN)
    assert_problem(answer, 404)
