"""The whole local stack over real HTTP: API → Step Functions (real ASL in moto) → JSM emulator.

One stack per module on free ports with a fast clock; each test starts from empty tables, an
empty outbox and a fresh JSM site.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from chalice.app import Chalice

from local.aws import aws_client
from local.stack import LocalStack, SqsPoller
from tests.helpers import bearer, wait_for

pytestmark = pytest.mark.slow

SECRET = "local-dev-secret"
PROJECT = {
    "name": "Demo project",
    "customer_company_id": "acme",
    "integrator_company_id": "integrator",
    "created_by": "pm-1",
    "service_desk_id": "1",
}
DEV = {
    "email": "dana.dev@acme.example",
    "name": "Dana Dev",
    "company_id": "acme",
    "console_user": True,
}
PM = {
    "email": "priya.pm@acme.example",
    "name": "Priya PM",
    "company_id": "acme",
    "console_user": True,
}


SERVICE = bearer("console", "console@example.com", None, ["service"])
MANAGER = bearer("pm-1", "priya.pm@acme.example", "acme", ["project_manager"])


@pytest.fixture
def http(stack: LocalStack) -> Iterator[Callable[..., requests.Response]]:
    session = requests.Session()

    def call(method: str, path: str, **kwargs: Any) -> requests.Response:
        return session.request(method, stack.api_url + path, timeout=10, **kwargs)

    yield call
    session.close()


@pytest.fixture
def demo_http(http: Callable[..., requests.Response]) -> dict[str, Any]:
    """Project `demo` linked to service desk 1, with a project manager and a developer."""
    project = http("PUT", "/projects/demo", json=PROJECT, headers=SERVICE)
    assert project.status_code == 201, project.text
    for contact_id, body in (("pm-1", PM), ("dev-1", DEV)):
        contact = http("PUT", f"/contacts/{contact_id}", json=body, headers=SERVICE)
        assert contact.status_code == 201, contact.text
    return dict(project.json())


def grant_status(http: Callable[..., requests.Response]) -> Callable[[], str | None]:
    def status() -> str | None:
        response = http("GET", "/projects/demo/grants/dev-1", headers=MANAGER)
        if response.status_code == 404:
            return "gone"
        return None if response.json()["status"].endswith("_pending") else response.json()["status"]

    return status


def test_health(http: Callable[..., requests.Response]) -> None:
    # When / Then
    assert http("GET", "/health").json() == {"status": "ok"}


def test_grant_is_activated_then_removed_end_to_end(
    stack: LocalStack, http: Callable[..., requests.Response], demo_http: dict[str, Any]
) -> None:
    assert stack.jira is not None
    assert stack.mailbox is not None
    organization_id = demo_http["organization_id"]

    # When the project manager grants access to a developer of the company
    added = http("POST", "/projects/demo/grants", json={"contact_id": "dev-1"}, headers=MANAGER)

    # Then the grant is accepted, then activated by the state machine
    assert added.status_code == 202, added.text
    assert added.json()["status"] == "activation_pending"
    assert added.headers["Location"].endswith("/projects/demo/grants/dev-1")
    assert wait_for(grant_status(http), what="activation") == "activated"
    grant = http("GET", "/projects/demo/grants/dev-1", headers=MANAGER).json()
    assert grant["account_created"] is True

    # And JSM has the customer in the service desk and the project's organization
    state = stack.jira.state()
    account = next(c for c in state["customers"] if c["emailAddress"] == DEV["email"])
    assert grant["jira_account_id"] == account["accountId"]
    desk = next(d for d in state["service_desks"] if d["id"] == "1")
    organization = next(o for o in state["organizations"] if o["id"] == organization_id)
    assert account["accountId"] in desk["customers"]
    assert account["accountId"] in organization["users"]

    # And the activation email is in the mailbox (over HTTP too)
    mails = requests.get(f"{stack.mail_url}/api/messages", timeout=5).json()["items"]
    assert [m["to"] for m in mails] == [[DEV["email"]]]
    assert "Demo project" in mails[0]["subject"]
    assert "Dana Dev" in mails[0]["text"]
    assert "<p>" in mails[0]["html"]
    assert mails[0]["sent_at"].endswith("Z")
    assert mails == stack.mailbox.messages()

    # And the activity log tells the story
    activity = http("GET", "/projects/demo/activity", headers=MANAGER).json()["items"]
    actions = [entry["action"] for entry in activity]
    assert {"grant.requested", "grant.activated"} <= set(actions)

    # When the project manager removes the access
    removed = http("DELETE", "/projects/demo/grants/dev-1", headers=MANAGER)

    # Then the grant goes away, and so does the account from the organization and the desk
    assert removed.status_code == 202, removed.text
    assert wait_for(grant_status(http), what="removal") == "gone"
    state = stack.jira.state()
    desk = next(d for d in state["service_desks"] if d["id"] == "1")
    organization = next(o for o in state["organizations"] if o["id"] == organization_id)
    assert account["accountId"] not in desk["customers"]
    assert account["accountId"] not in organization["users"]
    actions = [
        e["action"] for e in http("GET", "/projects/demo/activity", headers=MANAGER).json()["items"]
    ]
    assert {"grant.removal_requested", "grant.removed"} <= set(actions)


def test_throttled_step_waits_what_jira_asked_then_resumes(
    stack: LocalStack, http: Callable[..., requests.Response], demo_http: dict[str, Any]
) -> None:
    assert stack.jira is not None
    assert stack.fast_clock is not None
    # Given JSM answers the first "add to service desk" with 429 and Retry-After: 7
    stack.jira.set_faults(
        [
            {
                "method": "POST",
                "path_regex": r"/servicedesk/1/customer$",
                "status": 429,
                "times": 1,
                "retry_after": 7,
            }
        ]
    )

    # When a grant is added
    added = http("POST", "/projects/demo/grants", json={"contact_id": "dev-1"}, headers=MANAGER)

    # Then the state machine waited the 7 s Jira asked for (scaled down) and the grant activated
    assert added.status_code == 202, added.text
    assert wait_for(grant_status(http), what="activation") == "activated"
    assert ("wait", 7.0) in stack.fast_clock.waits
    calls = [c for c in stack.jira.calls() if c["path"].endswith("/servicedesk/1/customer")]
    assert [c["status"] for c in calls] == [429, 204]


def test_unavailable_step_is_retried_with_backoff(
    stack: LocalStack, http: Callable[..., requests.Response], demo_http: dict[str, Any]
) -> None:
    assert stack.jira is not None
    assert stack.fast_clock is not None
    # Given JSM answers the first "add to organization" with 503
    stack.jira.set_faults(
        [{"method": "POST", "path_regex": r"/organization/\d+/user$", "status": 503, "times": 1}]
    )

    # When a grant is added
    http("POST", "/projects/demo/grants", json={"contact_id": "dev-1"}, headers=MANAGER)

    # Then the ASL Retry (JiraUnavailable: 2 s, full jitter) ran once and the grant activated
    assert wait_for(grant_status(http), what="activation") == "activated"
    retries = [seconds for kind, seconds in stack.fast_clock.waits if kind == "retry"]
    assert len(retries) == 1
    assert 0 <= retries[0] <= 2


def test_mailbox_can_be_emptied(
    stack: LocalStack, http: Callable[..., requests.Response], demo_http: dict[str, Any]
) -> None:
    # Given an activation email was sent
    http("POST", "/projects/demo/grants", json={"contact_id": "dev-1"}, headers=MANAGER)
    wait_for(grant_status(http), what="activation")
    assert len(requests.get(f"{stack.mail_url}/api/messages", timeout=5).json()["items"]) == 1

    # When the mailbox is emptied over HTTP
    deleted = requests.delete(f"{stack.mail_url}/api/messages", timeout=5)

    # Then it is empty
    assert deleted.status_code == 204
    assert requests.get(f"{stack.mail_url}/api/messages", timeout=5).json() == {"items": []}


def test_sqs_poller_delivers_messages_and_keeps_reported_failures(stack: LocalStack) -> None:
    # Given an app with an SQS handler that fails the message whose body is "bad"
    app = Chalice(app_name="poller-test")
    seen: list[str] = []

    @app.on_sqs_message(queue="poller-test", batch_size=10)
    def handle(event: Any) -> dict[str, Any]:
        failures = []
        for record in event:
            seen.append(record.body)
            if record.body == "bad":
                failures.append({"itemIdentifier": record.to_dict()["messageId"]})
        return {"batchItemFailures": failures}

    sqs = aws_client("sqs", stack.aws_url, "eu-west-1")
    queue_url = sqs.create_queue(QueueName="poller-test", Attributes={"VisibilityTimeout": "1"})[
        "QueueUrl"
    ]
    poller = SqsPoller(app, stack.aws_url, "eu-west-1")
    poller.start()
    try:
        # When two messages arrive
        sqs.send_message(QueueUrl=queue_url, MessageBody="good")
        sqs.send_message(QueueUrl=queue_url, MessageBody="bad")

        # Then both reach the handler within ~1 s, and only the failed one is delivered again
        wait_for(lambda: {"good", "bad"} <= set(seen), timeout=5, what="delivery")
        wait_for(lambda: seen.count("bad") >= 2, timeout=5, what="redelivery")
        assert seen.count("good") == 1
    finally:
        poller.stop()
        sqs.delete_queue(QueueUrl=queue_url)


CLIENTS = 100


def test_the_api_serves_a_hundred_concurrent_clients_without_a_reset(
    stack: LocalStack, demo_http: dict[str, Any]
) -> None:
    # Given 100 clients, each on its own connection, released at the same moment: health checks,
    # authenticated reads and POSTs the API refuses after reading the store (cheap: no workflow)
    url = stack.api_url
    calls: list[tuple[str, str, dict[str, Any]]] = []
    for i in range(CLIENTS):
        if i % 3 == 0:
            calls.append(("GET", "/health", {}))
        elif i % 3 == 1:
            calls.append(("GET", "/projects/demo/grants", {"headers": MANAGER}))
        else:
            body = {"contact_id": f"nobody-{i}"}
            calls.append(("POST", "/projects/demo/grants", {"headers": MANAGER, "json": body}))
    start = threading.Barrier(CLIENTS)

    def send(call: tuple[str, str, dict[str, Any]]) -> int | str:
        method, path, kwargs = call
        start.wait()
        try:
            with requests.Session() as session:
                return session.request(method, url + path, timeout=60, **kwargs).status_code
        except requests.RequestException as exc:  # a reset, a refused connection, a timeout
            return f"{type(exc).__name__}: {exc}"

    # When they all send at once
    with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
        answers = list(pool.map(send, calls))

    # Then every one gets a proper HTTP answer: the one its request deserves
    failed = [a for a in answers if not isinstance(a, int)]
    assert not failed, f"{len(failed)} of {CLIENTS} got no HTTP answer, e.g. {failed[0]}"
    expected = [{"/health": 200, "/projects/demo/grants": 200}.get(p, 422) for m, p, _ in calls]
    expected = [422 if m == "POST" else e for e, (m, _, _) in zip(expected, calls, strict=True)]
    assert answers == expected
