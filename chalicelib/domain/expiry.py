"""Time-bound grants (rule 10): the expiry rules and the scheduled job that acts on them.

A grant with `expires_at` is in the expiry index (`Store.grants_expiring_by`, a sparse index:
only grants with an expiry whose removal has not started). The job, run every minute in AWS and
every 10 s locally, reads the grants expiring within `REMIND_BEFORE`:

- an *activated* grant past its expiry starts its removal through `GrantLifecycle.apply` (actor
  system, `detail.reason = "expired"`), conditional on its status, run and expiry as read, so of
  two jobs running at once exactly one starts it, and a changed expiry is never acted on stale;
- an activated grant expiring within `REMIND_BEFORE` (or sooner) gets one reminder email per
  expiry: sent run-once by `(grant, expires_at)`, then marked on the grant conditionally;
- a grant still being activated is skipped: a later run sees it once its activation settled
  (activated → removed as above; failed → holds nothing, nothing to remove).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from ..errors import Conflict, DependencyUnavailable, FieldError, ValidationFailed
from .changes import commit_change
from .grant_lifecycle import GrantLifecycle, Move
from .models import SYSTEM_ACTOR, Grant, GrantStatus, iso, parse_iso, utc_now
from .ports import EventPublisher, Mailer, Store, WorkflowStarter
from .sweeper import start_removal_or_leave_to_sweeper

MAX_AHEAD = timedelta(days=366)
REMIND_BEFORE = timedelta(days=7)
EXPIRED_REASON = "expired"


def valid_expiry(expires_at: str | None, now: datetime | None = None) -> str | None:
    """`expires_at` in the one stored format (`iso`, so the index sorts it as time), or 422
    unless it is in the future and at most `MAX_AHEAD` from now. None means "never"."""
    if expires_at is None:
        return None
    now = now or utc_now()
    try:
        moment = parse_iso(expires_at)
    except ValueError:
        moment = None
    if moment is None:
        message = "expires_at is not a date and time"
    elif moment <= now:
        message = "expires_at must be in the future"
    elif moment > now + MAX_AHEAD:
        message = f"expires_at may be at most {MAX_AHEAD.days} days ahead"
    else:
        return iso(moment)
    raise ValidationFailed(message, [FieldError("expires_at", message)])


def reminder_key(grant: Grant) -> str:
    """One reminder per grant and expiry: a changed expiry is reminded again."""
    return f"{grant.project_id}#{grant.contact_id}#{grant.expires_at}"


@dataclass
class ExpiryReport:
    removals_started: int = 0
    reminders_sent: int = 0
    waiting_for_activation: int = 0
    lost_races: int = 0
    start_failed: int = 0


class ExpiryJob:
    """The scheduled expiry job: starts due removals and sends due reminders."""

    def __init__(
        self,
        store: Store,
        workflows: WorkflowStarter,
        mailer: Mailer,
        events: EventPublisher,
    ) -> None:
        self._store = store
        self._workflows = workflows
        self._mailer = mailer
        self._events = events
        self._lifecycle = GrantLifecycle(store, events)

    def run(self, now: datetime | None = None) -> ExpiryReport:
        now = now or utc_now()
        report = ExpiryReport()
        for grant in self._store.grants_expiring_by(iso(now + REMIND_BEFORE)):
            if grant.status is GrantStatus.ACTIVATION_PENDING:
                report.waiting_for_activation += 1
                continue
            if grant.status is not GrantStatus.ACTIVATED or grant.expires_at is None:
                continue  # a failed activation holds nothing; a removal is under way
            try:
                if parse_iso(grant.expires_at) <= now:
                    self._expire(grant, report)
                elif grant.expiry_reminded_for != grant.expires_at:
                    self._remind(grant, report)
            except Conflict:
                # Another run holds this grant at this moment (a transaction kept conflicting,
                # or its reminder is being sent): that run finishes it, or the next one does.
                report.lost_races += 1
        return report

    def _expire(self, grant: Grant, report: ExpiryReport) -> None:
        if grant.lifecycle_id and self._workflows.is_running(grant.lifecycle_id):
            # The activation's execution is still finishing (its event): the next run removes.
            report.waiting_for_activation += 1
            return
        move = Move(
            GrantStatus.DELETION_PENDING,
            SYSTEM_ACTOR,
            detail={"reason": EXPIRED_REASON, "expires_at": grant.expires_at},
            expiry_unchanged=True,
        )
        started = self._lifecycle.apply(grant, move)
        if started is None:
            report.lost_races += 1  # another run (or a person) changed it first
            return
        if start_removal_or_leave_to_sweeper(self._workflows, started):
            report.removals_started += 1
        else:
            report.start_failed += 1

    def _remind(self, grant: Grant, report: ExpiryReport) -> None:
        assert grant.expires_at is not None
        project = self._store.get_project(grant.project_id)
        try:
            self._mailer.send_expiry_reminder(
                grant.email,
                grant.name,
                project.name if project else grant.project_id,
                grant.expires_at,
                dedup_key=reminder_key(grant),
            )
        except DependencyUnavailable:
            return  # the next run tries again (the send is run-once by grant and expiry)
        uow = self._store.unit_of_work()
        uow.mark_expiry_reminded(grant)
        commit_change(uow, self._events, None)  # lost: the grant changed; the email went once
        report.reminders_sent += 1
