"""Grant lifecycles under faults: JSM throttling, outages, timeouts, refusals, crashed tasks, SES
failures, lost workflow starts and stalled executions.

After each fault the grant converges to the right terminal status, JSM holds exactly what the
grants table says, and the activity log has exactly one entry per transition.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from chalicelib.aws import client
from chalicelib.config import get_settings
from chalicelib.domain.grant_steps import GrantSteps
from chalicelib.domain.models import utc_now
from chalicelib.domain.sweeper import STALL_AFTER, SweepReport, sweep_stalled_grants
from chalicelib.errors import DependencyUnavailable
from chalicelib.events import EventBridgePublisher
from chalicelib.jira.client import JsmClient
from chalicelib.mail import SesMailer
from chalicelib.store.repository import DynamoStore, DynamoUnitOfWork
from chalicelib.workflows import tasks
from chalicelib.workflows.starter import StepFunctionsStarter
from local.aws import aws_client, free_port
from local.stack import LocalStack
from tests.helpers import ACME_PM, Api, Seeder, settled_grant, wait_for
from tests.reliability.invariants import (
    assert_jsm_matches_grants,
    assert_transitions,
    executions,
    jsm_calls,
    mails_to,
    wait_for_executions_to_end,
    waits,
)

pytestmark = pytest.mark.slow

DEV = "dana.dev@acme.example"
GRANTS = "/projects/demo/grants"
GRANT = "/projects/demo/grants/dev-1"
USER_SEARCH = "/rest/api/3/user/search"
DESK_CUSTOMERS = "/rest/servicedeskapi/servicedesk/1/customer"
ORG_USERS = r"/rest/servicedeskapi/organization/\d+/user$"

ACTIVATED = ["grant.requested", "grant.activated"]
FAILED = ["grant.requested", "grant.activation_failed"]
FAILED_THEN_ACTIVATED = [*FAILED, *ACTIVATED]
REMOVED = [*ACTIVATED, "grant.removal_requested", "grant.removed"]
REMOVAL_FAILED = ["grant.removal_requested", "grant.removal_failed"]


def fault(
    method: str | None,
    path_regex: str,
    status: int | None = None,
    times: int | None = None,
    retry_after: int | None = None,
    delay_ms: int | None = None,
) -> dict[str, Any]:
    return {
        "method": method,
        "path_regex": path_regex,
        "status": status,
        "times": times,
        "retry_after": retry_after,
        "delay_ms": delay_ms,
    }


def faults(stack: LocalStack, *rules: dict[str, Any], rate_limit: float | None = None) -> None:
    assert stack.jira is not None
    stack.jira.set_faults(list(rules), rate_limit)


def add(api: Api, contact_id: str = "dev-1") -> None:
    answer = api.post(GRANTS, {"contact_id": contact_id}, ACME_PM)
    assert answer.status == 202, answer.body


def settle(api: Api, stack: LocalStack, contact_id: str = "dev-1") -> dict[str, Any] | None:
    """The grant once settled and its executions ended (a retried task may still be running)."""
    grant = settled_grant(api, "demo", contact_id, timeout=30)
    wait_for_executions_to_end(stack, f"demo-{contact_id}-")
    return settled_grant(api, "demo", contact_id, timeout=30) if grant else grant


def settled_status(api: Api, stack: LocalStack, contact_id: str = "dev-1") -> str:
    grant = settle(api, stack, contact_id)
    return "removed" if grant is None else str(grant["status"])


def org_users(demo: dict[str, Any]) -> str:
    return f"/rest/servicedeskapi/organization/{demo['organization_id']}/user"


def account_of(stack: LocalStack, email: str) -> str:
    assert stack.jira is not None
    return str(
        next(c["accountId"] for c in stack.jira.state()["customers"] if c["emailAddress"] == email)
    )


def sweep(minutes_later: float = 0) -> SweepReport:
    """The scheduled sweep as its Lambda runs it: stalled grants, then owed emails."""
    now = utc_now() + timedelta(minutes=minutes_later)
    report = sweep_stalled_grants(
        DynamoStore(), StepFunctionsStarter(), EventBridgePublisher(), now=now
    )
    from chalicelib import services  # noqa: PLC0415 - the app's own adapters, as configured

    services.grant_steps().deliver_owed_welcome_emails()
    return report


class RecordingRandom:
    """Stands in for the tasks module's `random`: draws the same way, remembering each draw."""

    def __init__(self) -> None:
        self.draws: list[tuple[int, int, int]] = []

    def randint(self, low: int, high: int) -> int:
        value = random.randint(low, high)
        self.draws.append((low, high, value))
        return value


class Once:
    """True the first time it is asked (per instance), False after: a fault that happens once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.fired = 0

    def __call__(self) -> bool:
        with self._lock:
            self.fired += 1
            return self.fired == 1


# --- JSM throttling (429) -------------------------------------------------------------------


def test_throttled_step_waits_the_retry_after_jsm_sent_each_time(
    stack: LocalStack, api: Api, demo: dict[str, Any]
) -> None:
    # Given JSM answers the customer search twice with 429 and Retry-After: 3
    faults(stack, fault("GET", USER_SEARCH, 429, times=2, retry_after=3))

    # When a grant is added
    add(api)

    # Then the workflow waited exactly what JSM asked, twice, and the grant activated
    assert settled_status(api, stack) == "activated"
    assert waits(stack, "wait") == [3.0, 3.0]
    assert waits(stack, "retry") == []
    assert [c["status"] for c in jsm_calls(stack, "GET", USER_SEARCH)] == [429, 429, 200]
    assert_transitions(api, "demo", "dev-1", ACTIVATED)
    assert_jsm_matches_grants(stack, api, "demo")
    assert len(mails_to(stack, DEV)) == 1


def test_throttled_without_retry_after_backs_off_exponentially_with_full_jitter(
    stack: LocalStack, api: Api, demo: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given JSM throttles "add to organization" three times without a Retry-After
    jitter = RecordingRandom()
    monkeypatch.setattr(tasks, "random", jitter)
    faults(stack, fault("POST", ORG_USERS, 429, times=3))

    # When a grant is added
    add(api)

    # Then each wait was drawn at random under a ceiling doubling from 2 s (full jitter)
    assert settled_status(api, stack) == "activated"
    assert [(low, high) for low, high, _ in jitter.draws] == [(1, 2), (1, 4), (1, 8)]
    assert waits(stack, "wait") == [float(value) for _, _, value in jitter.draws]
    assert [c["status"] for c in jsm_calls(stack, "POST", org_users(demo))] == [429] * 3 + [204]
    assert_transitions(api, "demo", "dev-1", ACTIVATED)
    assert_jsm_matches_grants(stack, api, "demo")


def test_backoff_ceiling_is_capped() -> None:
    # Given many throttles in a row / When the task draws the wait / Then it stays under 120 s
    draws = [tasks.throttle_wait_seconds(None, attempt) for attempt in range(20) for _ in range(5)]
    assert all(1 <= d <= tasks.BACKOFF_CAP_SECONDS for d in draws)
    assert len(set(draws)) > 1  # jittered, not a fixed schedule
    assert tasks.throttle_wait_seconds(7, 3) == 7  # the server's Retry-After wins


def test_endless_throttling_fails_the_grant_after_bounded_waits(
    stack: LocalStack, api: Api, demo: dict[str, Any]
) -> None:
    # Given JSM throttles "add to service desk" forever
    faults(stack, fault("POST", DESK_CUSTOMERS, 429, retry_after=1))

    # When a grant is added
    add(api)

    # Then after 60 waits (a rate-limited step keeps waiting: SPEC §3 pacing, issue 15; the cap
    # was 8) the grant fails visibly with JiraRateLimited, and nothing runs any more
    grant = settle(api, stack)
    assert grant is not None
    assert grant["status"] == "activation_failed"
    assert grant["error"]["code"] == "JiraRateLimited"
    assert waits(stack, "wait") == [1.0] * 60
    assert len(jsm_calls(stack, "POST", DESK_CUSTOMERS)) == 61
    assert_transitions(api, "demo", "dev-1", FAILED)
    assert_jsm_matches_grants(stack, api, "demo")
    assert mails_to(stack, DEV) == []


def test_rate_limit_with_ten_concurrent_grants_activates_them_all(
    stack: LocalStack, api: Api, seed: Seeder, demo: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert stack.fast_clock is not None
    # Given ten developers, and JSM allowing 3 calls a second (its 429 says Retry-After: 1):
    # their ~40 calls cannot fit, however slowly the machine starts the ten workflows (at 10 a
    # second a slow machine spread them out enough never to be throttled)
    developers = [f"dev-{n}" for n in range(10)]
    for contact_id in developers:
        seed.contact(contact_id, f"{contact_id}@acme.example")
    faults(stack, rate_limit=3)
    # A rate limit is a wall-clock window: the workflow's waits must take real time here.
    monkeypatch.setattr(stack.fast_clock, "scale", 1.0)

    # When the ten grants are added at once (their workflows run concurrently)
    for contact_id in developers:
        add(api, contact_id)

    # Then JSM throttled them, and every grant was still activated, once
    for contact_id in developers:
        assert settled_status(api, stack, contact_id) == "activated"
    assert stack.jira is not None
    assert any(c["status"] == 429 for c in stack.jira.calls())
    assert waits(stack, "wait")
    for contact_id in developers:
        assert_transitions(api, "demo", contact_id, ACTIVATED)
        assert len(mails_to(stack, f"{contact_id}@acme.example")) == 1
    assert_jsm_matches_grants(stack, api, "demo")


# --- JSM unavailable (5xx, timeouts, connection refused) -------------------------------------


def test_burst_of_503_is_retried_with_backoff_then_activates(
    stack: LocalStack, api: Api, demo: dict[str, Any]
) -> None:
    # Given JSM answers "add to organization" with 503 three times
    faults(stack, fault("POST", ORG_USERS, 503, times=3))

    # When a grant is added
    add(api)

    # Then the ASL Retry waited under 2, 4 and 8 s (full jitter) and the grant activated
    assert settled_status(api, stack) == "activated"
    retries = waits(stack, "retry")
    assert len(retries) == 3
    assert all(0 <= wait <= ceiling for wait, ceiling in zip(retries, [2, 4, 8], strict=True))
    assert [c["status"] for c in jsm_calls(stack, "POST", org_users(demo))] == [503] * 3 + [204]
    assert_transitions(api, "demo", "dev-1", ACTIVATED)
    assert_jsm_matches_grants(stack, api, "demo")
    assert len(mails_to(stack, DEV)) == 1


def test_endless_503_fails_with_jira_unavailable_after_bounded_retries_then_retry_activates(
    stack: LocalStack, api: Api, demo: dict[str, Any]
) -> None:
    # Given JSM answers "add to organization" with 503 forever
    faults(stack, fault("POST", ORG_USERS, 503))

    # When a grant is added
    add(api)

    # Then after 5 retries (6 calls) the grant fails visibly with JiraUnavailable
    grant = settle(api, stack)
    assert grant is not None
    assert grant["status"] == "activation_failed"
    assert grant["error"]["code"] == "JiraUnavailable"
    assert len(jsm_calls(stack, "POST", org_users(demo))) == 6
    assert len(waits(stack, "retry")) == 5
    assert_jsm_matches_grants(stack, api, "demo")  # in the desk, not in the org: as failed
    assert mails_to(stack, DEV) == []

    # When JSM recovers and the manager retries
    faults(stack)
    assert api.post(f"{GRANT}/retry", {}, ACME_PM).status == 202

    # Then the grant is activated and the welcome email for the new account is sent once
    assert settled_status(api, stack) == "activated"
    assert_transitions(api, "demo", "dev-1", FAILED_THEN_ACTIVATED)
    assert_jsm_matches_grants(stack, api, "demo")
    assert len(mails_to(stack, DEV)) == 1


def test_timeouts_are_retried_and_the_late_answer_does_no_harm(
    stack: LocalStack,
    api: Api,
    demo: dict[str, Any],
    jira_env: Callable[..., AbstractContextManager[None]],
) -> None:
    # Given the tasks give JSM 0.5 s, and JSM takes 1.2 s on "add to organization" twice
    with jira_env(HELPDESK_JIRA_TIMEOUT_SECONDS="0.5"):
        faults(stack, fault("POST", ORG_USERS, None, times=2, delay_ms=1200))

        # When a grant is added
        add(api)

        # Then both timeouts were retried (JiraUnavailable) and the grant activated once
        assert settled_status(api, stack) == "activated"
    assert len(waits(stack, "retry")) == 2
    # JSM did the two slow calls too (after the client gave up): the step is idempotent
    wait_for(
        lambda: all(c["status"] == 204 for c in jsm_calls(stack, "POST", org_users(demo))),
        what="the slow calls to finish",
    )
    assert len(jsm_calls(stack, "POST", org_users(demo))) == 3
    assert_transitions(api, "demo", "dev-1", ACTIVATED)
    assert_jsm_matches_grants(stack, api, "demo")
    assert len(mails_to(stack, DEV)) == 1


def test_endless_timeouts_fail_with_jira_unavailable(
    stack: LocalStack,
    api: Api,
    demo: dict[str, Any],
    jira_env: Callable[..., AbstractContextManager[None]],
) -> None:
    # Given JSM never answers the customer search within the tasks' 0.2 s
    with jira_env(HELPDESK_JIRA_TIMEOUT_SECONDS="0.2"):
        faults(stack, fault("GET", USER_SEARCH, None, delay_ms=400))

        # When a grant is added
        add(api)

        # Then the grant fails visibly with JiraUnavailable after 5 retries
        grant = settle(api, stack)
    assert grant is not None
    assert grant["status"] == "activation_failed"
    assert grant["error"]["code"] == "JiraUnavailable"
    assert len(waits(stack, "retry")) == 5
    assert_transitions(api, "demo", "dev-1", FAILED)


def test_connection_refused_fails_with_jira_unavailable_then_retry_activates(
    stack: LocalStack,
    api: Api,
    demo: dict[str, Any],
    jira_env: Callable[..., AbstractContextManager[None]],
) -> None:
    # Given the tasks reach JSM at a port nobody listens on
    with jira_env(HELPDESK_JIRA_URL=f"http://127.0.0.1:{free_port()}"):
        # When a grant is added
        add(api)

        # Then the connection errors are retried, then the grant fails with JiraUnavailable
        grant = settle(api, stack)
    assert grant is not None
    assert grant["status"] == "activation_failed"
    assert grant["error"]["code"] == "JiraUnavailable"
    assert len(waits(stack, "retry")) == 5
    assert jsm_calls(stack, "GET", USER_SEARCH) == []

    # When JSM is reachable again and the manager retries
    assert api.post(f"{GRANT}/retry", {}, ACME_PM).status == 202

    # Then the grant is activated
    assert settled_status(api, stack) == "activated"
    assert_transitions(api, "demo", "dev-1", FAILED_THEN_ACTIVATED)
    assert_jsm_matches_grants(stack, api, "demo")
    assert len(mails_to(stack, DEV)) == 1


# --- JSM refusals (401, 400): no retry ------------------------------------------------------


def test_unauthorized_fails_at_once_without_retry(
    stack: LocalStack, api: Api, demo: dict[str, Any]
) -> None:
    # Given JSM refuses the bot's credentials
    assert stack.jira is not None
    faults(stack, fault(None, r"^/rest/", 401))
    linking = len(stack.jira.calls())  # the calls that linked the project

    # When a grant is added
    add(api)

    # Then the grant fails with JiraAuthError after exactly one call, with no retry or wait
    grant = settle(api, stack)
    assert grant is not None
    assert grant["status"] == "activation_failed"
    assert grant["error"]["code"] == "JiraAuthError"
    assert [c["status"] for c in stack.jira.calls()[linking:]] == [401]
    assert stack.fast_clock is not None
    assert stack.fast_clock.waits == []
    assert_transitions(api, "demo", "dev-1", FAILED)
    assert_jsm_matches_grants(stack, api, "demo")


def test_bad_request_is_rejected_without_retry_then_retry_activates(
    stack: LocalStack, api: Api, demo: dict[str, Any]
) -> None:
    # Given JSM answers "add to service desk" with 400
    faults(stack, fault("POST", DESK_CUSTOMERS, 400))

    # When a grant is added
    add(api)

    # Then the grant fails with JiraRejected after one such call, keeping the account it found
    grant = settle(api, stack)
    assert grant is not None
    assert grant["status"] == "activation_failed"
    assert grant["error"]["code"] == "JiraRejected"
    assert grant["jira_account_id"] == account_of(stack, DEV)
    assert len(jsm_calls(stack, "POST", DESK_CUSTOMERS)) == 1
    assert waits(stack, "retry") == []
    assert_jsm_matches_grants(stack, api, "demo")

    # When the fault is gone and the manager adds the contact again (a failed grant is retried)
    faults(stack)
    add(api)

    # Then it is activated
    assert settled_status(api, stack) == "activated"
    assert_transitions(api, "demo", "dev-1", FAILED_THEN_ACTIVATED)
    assert_jsm_matches_grants(stack, api, "demo")
    assert len(mails_to(stack, DEV)) == 1


# --- crashed tasks --------------------------------------------------------------------------


def test_task_crashing_after_the_email_before_the_write_activates_once(
    stack: LocalStack, api: Api, demo: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the "complete activation" task dies once between sending the email and its write
    completing = threading.local()
    crash = Once()
    real_complete = GrantSteps.complete_activation
    real_commit = DynamoUnitOfWork.commit

    def complete_activation(self: GrantSteps, job: Any) -> dict[str, Any]:
        completing.active = True
        try:
            return real_complete(self, job)
        finally:
            completing.active = False

    def commit(self: DynamoUnitOfWork) -> None:
        if getattr(completing, "active", False) and crash():
            raise RuntimeError("Lambda crashed before writing")
        real_commit(self)

    monkeypatch.setattr(GrantSteps, "complete_activation", complete_activation)
    monkeypatch.setattr(DynamoUnitOfWork, "commit", commit)

    # When a grant is added
    add(api)

    # Then the ASL retried the task; the grant is activated once, with one entry and one email
    assert settled_status(api, stack) == "activated"
    assert crash.fired == 2
    assert len(waits(stack, "retry")) == 1
    assert_transitions(api, "demo", "dev-1", ACTIVATED)
    assert_jsm_matches_grants(stack, api, "demo")
    assert len(mails_to(stack, DEV)) == 1


def test_task_crashing_after_its_write_is_retried_harmlessly(
    stack: LocalStack, api: Api, demo: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the "complete activation" task dies once after its write, before answering
    crash = Once()
    real_complete = GrantSteps.complete_activation

    def complete_activation(self: GrantSteps, job: Any) -> dict[str, Any]:
        result = real_complete(self, job)
        if crash():
            raise ConnectionResetError("Lambda crashed after writing")
        return result

    monkeypatch.setattr(GrantSteps, "complete_activation", complete_activation)

    # When a grant is added
    add(api)

    # Then the retried task finds the work done: one activation, one entry, one email
    assert settled_status(api, stack) == "activated"
    assert crash.fired == 2
    assert_transitions(api, "demo", "dev-1", ACTIVATED)
    assert_jsm_matches_grants(stack, api, "demo")
    assert len(mails_to(stack, DEV)) == 1


def test_task_crashing_after_the_jira_call_is_retried_idempotently(
    stack: LocalStack, api: Api, demo: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the "add to organization" task dies once right after JSM added the account
    crash = Once()
    real_add = JsmClient.add_to_organization

    def add_to_organization(self: JsmClient, organization_id: str, account_id: str) -> None:
        real_add(self, organization_id, account_id)
        if crash():
            raise RuntimeError("Lambda crashed after the JSM call")

    monkeypatch.setattr(JsmClient, "add_to_organization", add_to_organization)

    # When a grant is added
    add(api)

    # Then the step ran again (JSM: already a member → fine) and the grant activated once
    assert settled_status(api, stack) == "activated"
    assert [c["status"] for c in jsm_calls(stack, "POST", org_users(demo))] == [204, 204]
    assert_transitions(api, "demo", "dev-1", ACTIVATED)
    assert_jsm_matches_grants(stack, api, "demo")
    assert len(mails_to(stack, DEV)) == 1


# --- SES failures ---------------------------------------------------------------------------


def test_email_failing_once_activates_the_grant_and_the_sweeper_sends_it_once(
    stack: LocalStack, api: Api, demo: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given SES fails the first activation email
    crash = Once()
    real_send = SesMailer._send

    def send(self: SesMailer, to: str, email: Any, kind: str) -> None:
        if crash():
            raise DependencyUnavailable("the activation email could not be sent")
        real_send(self, to, email, kind)

    monkeypatch.setattr(SesMailer, "_send", send)

    # When a grant is added
    add(api)

    # Then the Jira work stands: activated at once, the email owed (recorded), none sent yet
    assert settled_status(api, stack) == "activated"
    assert_transitions(api, "demo", "dev-1", ACTIVATED)
    activated = next(
        e
        for e in api.get("/projects/demo/activity?contact_id=dev-1", ACME_PM).body["items"]
        if e["action"] == "grant.activated"
    )
    assert activated["detail"]["email_failed"] is True
    assert mails_to(stack, DEV) == []

    # When the sweeper runs (twice) / Then the owed email goes out, exactly once
    assert sweep() == SweepReport()
    sweep()
    assert len(mails_to(stack, DEV)) == 1
    assert crash.fired == 2


@pytest.fixture
def ses_sender_unverified(stack: LocalStack) -> Iterator[Callable[[], None]]:
    """Un-verify the sender in SES (so sending fails); call the result to verify it again."""
    settings = get_settings()
    ses = aws_client("ses", stack.aws_url, settings.region)
    domain = settings.mail_sender.rsplit("@", 1)[-1]

    def verify() -> None:
        ses.verify_email_identity(EmailAddress=settings.mail_sender)
        ses.verify_domain_identity(Domain=domain)

    ses.delete_identity(Identity=settings.mail_sender)
    ses.delete_identity(Identity=domain)
    try:
        yield verify
    finally:
        verify()


def test_email_refused_by_ses_does_not_fail_the_grant_and_is_sent_once_ses_accepts(
    stack: LocalStack, api: Api, demo: dict[str, Any], ses_sender_unverified: Callable[[], None]
) -> None:
    # Given SES refuses every email (the sender identity is not verified)

    # When a grant is added
    add(api)

    # Then the grant is activated (its Jira work succeeded), the email owed and none sent
    grant = settle(api, stack)
    assert grant is not None
    assert grant["status"] == "activated"
    assert grant["account_created"] is True
    assert mails_to(stack, DEV) == []
    assert_jsm_matches_grants(stack, api, "demo")
    sweep()  # SES still refuses: nothing sent, still owed
    assert mails_to(stack, DEV) == []

    # When SES accepts the sender again and the sweeper runs (twice)
    ses_sender_unverified()
    sweep()
    sweep()

    # Then the welcome email is sent, once, and the grant's history is one activation
    assert_transitions(api, "demo", "dev-1", ACTIVATED)
    assert len(mails_to(stack, DEV)) == 1


# --- the workflow cannot be started ---------------------------------------------------------


@pytest.fixture
def step_functions_down(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """Step Functions refuses every start; call the result to bring it back."""
    sfn = client("stepfunctions")

    def refuse(**_: Any) -> Any:
        error: Any = {"Error": {"Code": "ServiceUnavailable", "Message": "try again later"}}
        raise ClientError(error, "StartExecution")

    monkeypatch.setattr(sfn, "start_execution", refuse)
    return lambda: monkeypatch.delattr(sfn, "start_execution")


def test_lost_activation_start_fails_the_grant_then_retry_activates(
    stack: LocalStack, api: Api, demo: dict[str, Any], step_functions_down: Callable[[], None]
) -> None:
    since = utc_now()
    # Given Step Functions refuses to start executions

    # When a grant is added
    answer = api.post(GRANTS, {"contact_id": "dev-1"}, ACME_PM)

    # Then the API answers 503, and the grant is failed visibly (not left pending)
    assert answer.status == 503, answer.body
    assert answer.headers["Content-Type"] == "application/problem+json"
    grant = api.get(GRANT, ACME_PM).body
    assert grant["status"] == "activation_failed"
    assert grant["error"]["code"] == "WorkflowStartFailed"
    assert executions(stack, "demo-dev-1-", since) == []
    assert_transitions(api, "demo", "dev-1", FAILED)

    # When Step Functions is back and the manager retries
    step_functions_down()
    assert api.post(f"{GRANT}/retry", {}, ACME_PM).status == 202

    # Then the grant is activated
    assert settled_status(api, stack) == "activated"
    assert_transitions(api, "demo", "dev-1", FAILED_THEN_ACTIVATED)
    assert_jsm_matches_grants(stack, api, "demo")
    assert len(mails_to(stack, DEV)) == 1


def test_lost_removal_start_fails_the_removal_then_retry_removes(
    stack: LocalStack, api: Api, demo: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an activated grant, and Step Functions refusing starts from now on
    add(api)
    assert settled_status(api, stack) == "activated"
    sfn = client("stepfunctions")

    def refuse(**_: Any) -> Any:
        error: Any = {"Error": {"Code": "ServiceUnavailable", "Message": "try again later"}}
        raise ClientError(error, "StartExecution")

    monkeypatch.setattr(sfn, "start_execution", refuse)

    # When the manager removes it
    answer = api.delete(GRANT, ACME_PM)

    # Then 503, and the grant is deletion_failed with WorkflowStartFailed
    assert answer.status == 503, answer.body
    grant = api.get(GRANT, ACME_PM).body
    assert grant["status"] == "deletion_failed"
    assert grant["error"]["code"] == "WorkflowStartFailed"

    # When Step Functions is back and the manager retries
    monkeypatch.delattr(sfn, "start_execution")
    assert api.post(f"{GRANT}/retry", {}, ACME_PM).status == 202

    # Then the grant is removed, and JSM no longer has the account in the desk or organization
    assert settle(api, stack) is None
    assert_transitions(
        api,
        "demo",
        "dev-1",
        [*ACTIVATED, *REMOVAL_FAILED, "grant.removal_requested", "grant.removed"],
    )
    assert_jsm_matches_grants(stack, api, "demo", removed_emails=[DEV])


# --- removal faults -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "rule",
    [
        fault("DELETE", ORG_USERS, 429, times=2, retry_after=2),
        fault("DELETE", ORG_USERS, 429, times=2),
        fault("DELETE", ORG_USERS, 503, times=3),
    ],
    ids=["429-retry-after", "429-backoff", "503-burst"],
)
def test_removal_rides_out_throttling_and_outages(
    stack: LocalStack, api: Api, demo: dict[str, Any], rule: dict[str, Any]
) -> None:
    # Given an activated grant, and JSM throttling or failing "remove from organization"
    add(api)
    assert settled_status(api, stack) == "activated"
    faults(stack, rule)

    # When the manager removes it
    assert api.delete(GRANT, ACME_PM).status == 202

    # Then the grant is eventually removed, from JSM too
    assert settle(api, stack) is None
    calls = jsm_calls(stack, "DELETE", org_users(demo))
    assert [c["status"] for c in calls] == [rule["status"]] * rule["times"] + [204]
    assert_transitions(api, "demo", "dev-1", REMOVED)
    assert_jsm_matches_grants(stack, api, "demo", removed_emails=[DEV])


def test_removal_unauthorized_fails_then_retry_removes(
    stack: LocalStack, api: Api, demo: dict[str, Any]
) -> None:
    # Given an activated grant, and JSM refusing the bot's credentials on removal
    add(api)
    assert settled_status(api, stack) == "activated"
    faults(stack, fault("DELETE", ORG_USERS, 401))

    # When the manager removes it
    assert api.delete(GRANT, ACME_PM).status == 202

    # Then the removal fails with JiraAuthError after one call; JSM still has the account
    grant = settle(api, stack)
    assert grant is not None
    assert grant["status"] == "deletion_failed"
    assert grant["error"]["code"] == "JiraAuthError"
    assert len(jsm_calls(stack, "DELETE", org_users(demo))) == 1
    assert_jsm_matches_grants(stack, api, "demo")

    # When the credentials work again and the manager retries the removal
    faults(stack)
    assert api.post(f"{GRANT}/retry", {}, ACME_PM).status == 202

    # Then the grant is removed
    assert settle(api, stack) is None
    assert_transitions(
        api,
        "demo",
        "dev-1",
        [*ACTIVATED, *REMOVAL_FAILED, "grant.removal_requested", "grant.removed"],
    )
    assert_jsm_matches_grants(stack, api, "demo", removed_emails=[DEV])


# --- the stalled-grant sweeper --------------------------------------------------------------


def test_sweeper_starts_a_pending_grant_whose_execution_never_started(
    stack: LocalStack, api: Api, demo: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    since = utc_now()
    # Given the API died between writing the grant and starting its execution
    monkeypatch.setattr(StepFunctionsStarter, "start_activation", lambda self, grant: None)
    add(api)
    monkeypatch.undo()
    assert api.get(GRANT, ACME_PM).body["status"] == "activation_pending"
    assert executions(stack, "demo-dev-1-", since) == []

    # When the sweeper runs before the grant counts as stalled, nothing happens
    assert sweep() == SweepReport()

    # When it runs once the grant is stalled
    report = sweep(minutes_later=STALL_AFTER.total_seconds() / 60 + 1)

    # Then it started the missing execution, and the grant is activated once
    assert report == SweepReport(restarted=1)
    assert settled_status(api, stack) == "activated"
    assert len(executions(stack, "demo-dev-1-", since)) == 1
    assert_transitions(api, "demo", "dev-1", ACTIVATED)
    assert_jsm_matches_grants(stack, api, "demo")
    assert len(mails_to(stack, DEV)) == 1


def test_sweeper_leaves_a_running_execution_alone(
    stack: LocalStack, api: Api, demo: dict[str, Any]
) -> None:
    since = utc_now()
    # Given a grant whose execution is still running (JSM is slow)
    faults(stack, fault("GET", USER_SEARCH, None, times=1, delay_ms=1500))
    add(api)
    wait_for(lambda: jsm_calls(stack, "GET", USER_SEARCH), what="the slow JSM call")

    # When the sweeper runs as if the grant were stalled
    report = sweep(minutes_later=STALL_AFTER.total_seconds() / 60 + 1)

    # Then it leaves it alone, and the grant is activated once
    assert report == SweepReport(running=1)
    assert settled_status(api, stack) == "activated"
    assert len(executions(stack, "demo-dev-1-", since)) == 1
    assert_transitions(api, "demo", "dev-1", ACTIVATED)


def test_sweeper_fails_a_grant_whose_execution_ended_without_an_outcome(
    stack: LocalStack, api: Api, demo: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    since = utc_now()

    # Given an execution that failed and could not record the failure (its last task crashed)
    def fail(self: GrantSteps, job: Any, error: Any) -> dict[str, Any]:
        raise RuntimeError("DynamoDB unreachable")

    monkeypatch.setattr(GrantSteps, "fail", fail)
    faults(stack, fault("GET", USER_SEARCH, 401))
    add(api)

    def ended() -> bool:
        found = executions(stack, "demo-dev-1-", since)
        return bool(found) and found[0]["status"] == "FAILED"

    wait_for(ended, what="the execution to fail")
    monkeypatch.undo()
    assert api.get(GRANT, ACME_PM).body["status"] == "activation_pending"
    assert_transitions(api, "demo", "dev-1", ["grant.requested"])

    # When the sweeper runs once the grant is stalled
    later = STALL_AFTER.total_seconds() / 60 + 1
    report = sweep(minutes_later=later)

    # Then the grant is failed visibly, once (a second sweep changes nothing)
    assert report == SweepReport(failed=1)
    grant = api.get(GRANT, ACME_PM).body
    assert grant["status"] == "activation_failed"
    assert grant["error"]["code"] == "ExecutionEnded"
    assert sweep(minutes_later=later) == SweepReport()
    assert_transitions(api, "demo", "dev-1", FAILED)

    # When JSM works again and the manager retries
    faults(stack)
    assert api.post(f"{GRANT}/retry", {}, ACME_PM).status == 202

    # Then the grant is activated
    assert settled_status(api, stack) == "activated"
    assert_transitions(api, "demo", "dev-1", FAILED_THEN_ACTIVATED)
    assert_jsm_matches_grants(stack, api, "demo")


# --- partial failures and shared desks (rule 4, issue 10) -------------------------------------


def test_a_customer_created_by_a_timed_out_call_gets_its_welcome_email(
    stack: LocalStack,
    api: Api,
    demo: dict[str, Any],
    jira_env: Callable[..., AbstractContextManager[None]],
) -> None:
    # Given the tasks give JSM 0.5 s, and JSM takes 0.8 s to create a customer (but creates it,
    # after the client gave up) while its user search takes 0.45 s: so the retried step's search
    # answers after the late create landed, and finds the account
    with jira_env(HELPDESK_JIRA_TIMEOUT_SECONDS="0.5"):
        faults(
            stack,
            fault("POST", r"/rest/servicedeskapi/customer$", None, 1, delay_ms=800),
            fault("GET", USER_SEARCH, None, 2, delay_ms=450),
        )

        # When a grant is added for a contact without a JSM account
        add(api)

        # Then the retry finds the account and still calls it created: welcome email, once
        grant = settle(api, stack)
    assert grant is not None
    assert (grant["status"], grant["account_created"]) == ("activated", True)
    assert len(jsm_calls(stack, "POST", "/rest/servicedeskapi/customer")) == 1
    assert len(mails_to(stack, DEV)) == 1
    assert_jsm_matches_grants(stack, api, "demo")


def test_an_activation_during_a_slow_desk_removal_of_the_same_contact_ends_on_the_desk(
    stack: LocalStack, api: Api, seed: Seeder, demo: dict[str, Any]
) -> None:
    # Given dev-1 activated on demo, and a second project `other` on the same service desk
    seed.project("other", name="Other project")
    add(api)
    assert settled_status(api, stack) == "activated"
    account = account_of(stack, DEV)
    # ...and JSM slow (1.5 s) to take a customer off the desk, once
    faults(stack, fault("DELETE", DESK_CUSTOMERS + "$", None, 1, delay_ms=1500))

    # When demo's removal is in that slow DELETE, and `other` activates dev-1 meanwhile
    assert api.delete(GRANT, ACME_PM).status == 202
    wait_for(lambda: jsm_calls(stack, "DELETE", DESK_CUSTOMERS), what="the slow DELETE under way")
    assert api.post("/projects/other/grants", {"contact_id": "dev-1"}, ACME_PM).status == 202
    other = settled_grant(api, "other", "dev-1", timeout=30)
    assert other is not None
    assert other["status"] == "activated"

    # Then, once the slow DELETE landed (after `other`'s add), the removal puts the account back
    assert settled_status(api, stack) == "removed"
    wait_for_executions_to_end(stack, "other-dev-1-")
    wait_for(
        lambda: [c["status"] for c in jsm_calls(stack, "DELETE", DESK_CUSTOMERS)] == [204],
        what="the slow DELETE to land",
    )
    assert stack.jira is not None
    desk = next(d for d in stack.jira.state()["service_desks"] if d["id"] == "1")
    assert account in desk["customers"]
    assert_jsm_matches_grants(stack, api, "other")
