"""The Lambda tasks of the grant workflows: state input → one `GrantSteps` call → task result.

Errors keep their class names (the ASL matches them). A `JiraRateLimited` is re-raised with a
JSON message `{"step", "wait_seconds", "detail"}` so the state machine can wait exactly as long as
Jira asked (or, without `Retry-After`, an exponential backoff with full jitter) and then resume
the step that was throttled; it also slows the service-wide limiter down.

Paced steps (a rate is set, `jira.pacing`) reserve the slots of their Jira calls at their first
call; when those are a second and a half or more away the step stops there and returns
`{"wait_seconds", "pace": {"step", "slots"}}` instead, the state machine waits that long and runs
the step again, which then uses the slots it holds. A call that missed its slot (it started
late) takes new ones the same way. A step that ran returns its result with `wait_seconds: 0`.
"""

from __future__ import annotations

import gc

# Imported on a task's first call, i.e. at its cold start: no cyclic GC while these modules
# load, then freeze them (why: the top of app.py).
_COLLECTING = gc.isenabled()
gc.disable()

import json  # noqa: E402
import random  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import asdict  # noqa: E402
from typing import Any  # noqa: E402

from .. import services  # noqa: E402
from ..domain.drift import check_drift  # noqa: E402
from ..domain.events import DriftFound  # noqa: E402
from ..domain.grant_lifecycle import ExecutionName  # noqa: E402
from ..domain.grant_steps import GrantJob, GrantSteps  # noqa: E402
from ..domain.models import GrantError, utc_now  # noqa: E402
from ..domain.sweeper import sweep_stalled_grants  # noqa: E402
from ..errors import JiraRateLimited  # noqa: E402
from ..jira import jsm_client  # noqa: E402
from ..jira.pacing import ARRIVE_EARLY_SECONDS, CallDeferred, scheduled  # noqa: E402
from ..observability import MetricUnit, count, logger  # noqa: E402

gc.freeze()
if _COLLECTING:
    gc.enable()

BACKOFF_BASE_SECONDS = 2
BACKOFF_CAP_SECONDS = 120

Task = Callable[[GrantSteps, GrantJob, dict[str, Any]], dict[str, Any] | None]


def throttle_wait_seconds(retry_after: int | None, attempt: int) -> int:
    """Jira's `Retry-After` when given, else exponential backoff with full jitter (seconds)."""
    if retry_after is not None:
        return max(0, retry_after)
    ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** max(0, attempt))
    return random.randint(1, ceiling)  # noqa: S311 - jitter, not cryptography


def failure_of(event: dict[str, Any]) -> GrantError:
    """The `{code, message}` of the error a Catch put at `$.failure` (`Error` + JSON `Cause`)."""
    failure = event.get("failure") or {}
    code = str(failure.get("Error") or "Unknown")
    message = str(failure.get("Cause") or "")
    try:
        cause = json.loads(message)
        message = str(cause.get("errorMessage", message))
        message = str(json.loads(message).get("detail", message))
    except (ValueError, AttributeError):
        pass
    return GrantError(code=code, message=message[:500])


STEPS: dict[str, Task] = {
    "ensure_customer": lambda s, job, _: s.ensure_customer(job),
    "add_to_service_desk": lambda s, job, _: s.add_to_service_desk(job),
    "add_to_organization": lambda s, job, _: s.add_to_organization(job),
    "complete_activation": lambda s, job, _: s.complete_activation(job),
    "undo_activation": lambda s, job, _: s.undo_activation(job),
    "leave_organization": lambda s, job, _: s.leave_organization(job),
    "leave_service_desk": lambda s, job, _: s.leave_service_desk(job),
    "complete_removal": lambda s, job, _: s.complete_removal(job),
    "record_failure": lambda s, job, event: s.fail(job, failure_of(event)),
}

# The ASL state that runs each Jira step, so a throttled step can be resumed by name.
STATE_OF_STEP = {
    "ensure_customer": "EnsureCustomer",
    "add_to_service_desk": "AddToServiceDesk",
    "add_to_organization": "AddToOrganization",
    "leave_organization": "LeaveOrganization",
    "leave_service_desk": "LeaveServiceDesk",
    "undo_activation": "UndoActivation",
}
# The Jira calls each step makes (reserved before it runs): search + create for a new account
# (an existing one leaves its second slot unused), the organization and the desk for an undo.
PACED_CALLS = {
    "ensure_customer": 2,
    "add_to_service_desk": 1,
    "add_to_organization": 1,
    "leave_organization": 1,
    "leave_service_desk": 1,
    "undo_activation": 2,
}
# Slots held this long past are not used again (a step resumed after a 429 reserves anew).
HELD_SLOT_GRACE_SECONDS = 1.0


def held_slots(event: dict[str, Any], step: str, now: float) -> list[float] | None:
    """The slots a paced step reserved before its Wait, if this run is that step's resumption."""
    for path in ("customer", "jira"):
        pace = ((event.get(path) or {}).get("result") or {}).get("pace")
        if not isinstance(pace, dict) or pace.get("step") != STATE_OF_STEP[step]:
            continue
        slots = [float(slot) for slot in pace.get("slots") or []]
        if slots and slots[-1] >= now - HELD_SLOT_GRACE_SECONDS:
            return slots
    return None


def _waiting(step: str, slots: list[float], now: float) -> dict[str, Any]:
    """The result of a paced step that waits in Step Functions for its `slots`: whole seconds
    (at least one), ending `ARRIVE_EARLY_SECONDS` before the first; the rest is `await_slot`'s."""
    wait = max(1, int(slots[0] - now - ARRIVE_EARLY_SECONDS))
    count("JiraPacedWaitSeconds", wait, MetricUnit.Seconds)
    return {"wait_seconds": wait, "pace": {"step": STATE_OF_STEP[step], "slots": slots}}


def run_step(step: str, event: dict[str, Any]) -> dict[str, Any]:
    """Run one workflow step for the state input `event`."""
    job = GrantJob.from_event(event)
    logger.thread_safe_append_keys(execution=job.lifecycle_id, step=step)
    pacer = services.jira_pacer() if step in PACED_CALLS else None
    held = held_slots(event, step, time.time()) if pacer is not None else None
    try:
        with scheduled(held or [], pacer, PACED_CALLS.get(step, 0)):
            result = STEPS[step](services.grant_steps(), job, event)
    except CallDeferred as deferred:  # its slots are seconds away: wait in Step Functions
        return _waiting(step, deferred.slots, time.time())
    except JiraRateLimited as exc:
        pacer = services.jira_pacer()
        if pacer is not None:
            pacer.throttled(exc.retry_after, exc.limit)
        attempt = int((event.get("throttle") or {}).get("count", 0))
        wait = throttle_wait_seconds(exc.retry_after, attempt)
        logger.warning("jira throttled", extra={"wait_seconds": wait, "attempt": attempt})
        payload = {"step": STATE_OF_STEP[step], "wait_seconds": wait, "detail": exc.message}
        raise JiraRateLimited(json.dumps(payload), exc.status, retry_after=wait) from exc
    finally:
        logger.thread_safe_remove_keys(["execution", "step"])
    _count_outcome(step, job, result or {})
    if step in PACED_CALLS:
        # The ASL's Choice after a paced step reads it (0: the step ran).
        return {**(result or {}), "wait_seconds": 0}
    return result or {}


def _count_outcome(step: str, job: GrantJob, result: dict[str, Any]) -> None:
    if step == "complete_activation" and result.get("email_failed"):
        count("EmailsFailed")
    if step == "complete_activation" and result.get("activated"):
        count("GrantsActivated")
        started = ExecutionName.parse(job.lifecycle_id).started_at
        count("ActivationSeconds", (utc_now() - started).total_seconds(), MetricUnit.Seconds)
    elif step == "complete_removal" and result.get("removed"):
        count("GrantsRemoved")
    elif step == "record_failure" and result.get("recorded"):
        count("GrantsFailed")


def sweep() -> dict[str, Any]:
    """The scheduled sweep of stalled grants (see `domain.sweeper`)."""
    report = sweep_stalled_grants(services.store(), services.workflows(), services.events())
    emails = services.support_access().deliver_owed_emails()
    welcomes = services.grant_steps().deliver_owed_welcome_emails()
    owed = {"owed_emails_sent": emails, "owed_welcome_emails_sent": welcomes}
    logger.info("stalled grants swept", extra={"sweep": asdict(report), "owed": owed})
    return {**asdict(report), **owed}


def expire() -> dict[str, Any]:
    """The scheduled expiry job (see `domain.expiry`): due removals and reminders."""
    report = services.expiry().run()
    logger.info("expiry checked", extra={"expiry": asdict(report)})
    count("GrantsExpired", report.removals_started)
    return asdict(report)


def close_due_reviews() -> dict[str, Any]:
    """The scheduled review-deadline job (see `domain.reviews`): undecided grants removed."""
    report = services.review_deadlines().run()
    logger.info("review deadlines checked", extra={"reviews": asdict(report)})
    count("ReviewGrantsRemoved", report.removals_started)
    return asdict(report)


def expire_access_requests() -> dict[str, Any]:
    """The scheduled access-request expiry (see `domain.access_requests`)."""
    report = services.access_request_expiry().run()
    logger.info("access requests expired", extra={"access_requests": asdict(report)})
    count("AccessRequestsExpired", report.expired)
    return asdict(report)


def drift() -> dict[str, Any]:
    """The daily drift check (see `domain.drift`): logs each difference, counts `DriftFound`."""
    reports = check_drift(services.store(), jsm_client())
    events = services.events()
    for report in reports:
        logger.warning("drift found", extra={"drift": {**asdict(report), "found": report.found}})
        if report.found:
            # One metric datapoint and one event per project with drift (SPEC §2 reconcile).
            count("DriftFound", report.found)
            events.publish(
                DriftFound(
                    project_id=report.project_id,
                    missing_in_jsm=report.missing_in_jsm,
                    unknown_in_jsm=report.unknown_in_jsm,
                    left_over_in_jsm=report.left_over_in_jsm,
                    shares_organization_with=report.shares_organization_with,
                    found=report.found,
                )
            )
    found = sum(report.found for report in reports)
    if not found:
        count("DriftFound", 0)  # a datapoint every day, so the alarm sees the check ran
    return {"projects_with_drift": len(reports), "found": found}
