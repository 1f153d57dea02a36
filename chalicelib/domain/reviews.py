"""Access reviews (rule 11): a project's grants re-certified by a deadline.

A review lists the grants `activated` when it opened, each as the lifecycle run it was read in
(`ReviewItem.lifecycle_id`), so a decision only ever acts on the grant that was reviewed — not on
a grant given again after that one was removed. A `revoke` commits the decision and the grant's
removal (through `GrantLifecycle.apply`, reason `review`) in one transaction. At `due_at` the
deadline job removes every undecided grant (actor system, reason `review_expired`) and closes the
review; both are conditional writes, so two jobs running at once remove each grant once and close
the review once. One review per project is open at a time (a lock item written with it).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from ..errors import Conflict, FieldError, NotFound, ValidationFailed
from . import activity
from .authorization import ensure_may_change_grant, ensure_may_open_review
from .changes import commit_change
from .events import AccessReviewClosed, AccessReviewOpened
from .grant_lifecycle import GrantLifecycle, Move
from .ids import new_ulid
from .models import (
    SYSTEM_ACTOR,
    Actor,
    Decision,
    Grant,
    GrantStatus,
    Principal,
    Review,
    ReviewItem,
    iso,
    parse_iso,
    utc_now,
)
from .ports import EventPublisher, Store, UnitOfWork, WorkflowStarter
from .projects import member_project
from .sweeper import start_removal_or_leave_to_sweeper

MAX_REVIEW_AHEAD = timedelta(days=90)
REVIEW_REASON = "review"
REVIEW_EXPIRED_REASON = "review_expired"
_ALREADY_OPEN = "this project already has an open access review; decide it or await its deadline"
# How long a client should wait when the reviewed grant's previous run is still finishing.
FINISHING_RETRY_AFTER_SECONDS = 1


def valid_due_at(due_at: str, now: datetime | None = None) -> str:
    """`due_at` in the stored format, or 422 unless future and at most 90 days ahead."""
    now = now or utc_now()
    try:
        moment: datetime | None = parse_iso(due_at)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        message = "due_at is not a date and time with a time zone"
    elif moment <= now:
        message = "due_at must be in the future"
    elif moment > now + MAX_REVIEW_AHEAD:
        message = f"due_at may be at most {MAX_REVIEW_AHEAD.days} days ahead"
    else:
        return iso(moment)
    raise ValidationFailed(message, [FieldError("due_at", message)])


def reviewed(grant: Grant | None, item: ReviewItem) -> bool:
    """True when `grant` is still the activated grant the item reviewed (same run)."""
    return (
        grant is not None
        and grant.status is GrantStatus.ACTIVATED
        and grant.lifecycle_id == item.lifecycle_id
    )


class ReviewService:
    """The review use cases the API offers: open, read, decide."""

    def __init__(self, store: Store, workflows: WorkflowStarter, events: EventPublisher) -> None:
        self._store = store
        self._workflows = workflows
        self._events = events
        self._lifecycle = GrantLifecycle(store, events)

    def open(self, principal: Principal, project_id: str, due_at: str) -> Review:
        project = member_project(self._store, principal, project_id)
        ensure_may_open_review(principal, project)
        due = valid_due_at(due_at)
        if any(r.status == "open" for r in self._store.reviews_of_project(project_id)):
            raise Conflict(_ALREADY_OPEN)
        now = iso(utc_now())
        grants = self._store.all_grants_of_project(project_id)
        review = Review(
            review_id=f"r-{new_ulid()}".lower(),
            project_id=project_id,
            status="open",
            opened_by=principal.sub,
            opened_at=now,
            due_at=due,
            items=[
                ReviewItem(g.contact_id, g.email, g.name, g.lifecycle_id, g.granted_by_company_id)
                for g in grants
                if g.status is GrantStatus.ACTIVATED
            ],
        )
        uow = self._store.unit_of_work()
        uow.open_review(review)
        uow.append(
            activity.entry(
                project_id,
                "review.opened",
                principal.as_actor(),
                detail={"review_id": review.review_id, "due_at": due, "items": len(review.items)},
            )
        )
        event = AccessReviewOpened(
            project_id=project_id,
            review_id=review.review_id,
            opened_by=principal.sub,
            due_at=due,
            items=len(review.items),
        )
        if not commit_change(uow, self._events, event):
            raise Conflict(_ALREADY_OPEN)  # opened by another request a moment ago
        return review

    def get(self, principal: Principal, project_id: str, review_id: str) -> Review:
        member_project(self._store, principal, project_id)
        return self._review_or_404(project_id, review_id)

    def list(self, principal: Principal, project_id: str) -> list[Review]:
        member_project(self._store, principal, project_id)
        return self._store.reviews_of_project(project_id)

    def decide(
        self,
        principal: Principal,
        project_id: str,
        review_id: str,
        contact_id: str,
        decision: Decision,
    ) -> ReviewItem:
        """Record a decision on one grant; `revoke` starts its removal in the same transaction.

        Whoever may remove that grant may decide (rule 2). A decision is final: the same one
        again answers the same item, another one is a 409, as is any decision on a closed review.
        """
        project = member_project(self._store, principal, project_id)
        review = self._review_or_404(project_id, review_id)
        item = review.item(contact_id)
        if item is None:
            raise NotFound(f"review {review_id} has no item for contact {contact_id}")
        contact = self._store.get_contact(contact_id)
        ensure_may_change_grant(principal, project, item.granted_by_company_id, contact)
        if item.decision is not None:
            if item.decision == decision:
                return item
            raise Conflict(f"this grant was already decided ({item.decision})")
        if review.status != "open":
            raise Conflict("the review is closed")
        decided = replace(
            item, decision=decision, decided_by=principal.sub, decided_at=iso(utc_now())
        )
        uow = self._store.unit_of_work()
        uow.decide_review_item(review, decided)
        uow.append(
            activity.entry(
                project_id,
                "review.decided",
                principal.as_actor(),
                contact_id=contact_id,
                contact_email=item.email,
                detail={"review_id": review_id, "decision": decision},
            )
        )
        grant = self._store.get_grant(project_id, contact_id)
        removing = None
        if decision == "revoke" and reviewed(grant, item):
            assert grant is not None
            if grant.lifecycle_id and self._workflows.is_running(grant.lifecycle_id):
                raise Conflict(
                    "the grant's activation is still finishing; retry in a moment",
                    retry_after=FINISHING_RETRY_AFTER_SECONDS,
                )
            removing = self._removal(grant, principal.as_actor(), REVIEW_REASON, review_id, uow)
            if removing is None:
                raise Conflict("the grant or the review changed meanwhile; reload and retry")
        elif not commit_change(uow, self._events, None):
            raise Conflict("the grant or the review changed meanwhile; reload and retry")
        if removing is not None:
            start_removal_or_leave_to_sweeper(self._workflows, removing)
        return decided

    def _removal(
        self, grant: Grant, actor: Actor, reason: str, review_id: str, uow: UnitOfWork
    ) -> Grant | None:
        move = Move(
            GrantStatus.DELETION_PENDING, actor, detail={"reason": reason, "review_id": review_id}
        )
        return self._lifecycle.apply(grant, move, uow=uow)

    def _review_or_404(self, project_id: str, review_id: str) -> Review:
        review = self._store.get_review(project_id, review_id)
        if review is None:
            raise NotFound(f"project {project_id} has no review {review_id}")
        return review


@dataclass
class DeadlineReport:
    reviews_closed: int = 0
    removals_started: int = 0
    waiting_for_activation: int = 0
    lost_races: int = 0
    start_failed: int = 0


class ReviewDeadlineJob:
    """The scheduled job: at a review's `due_at`, remove its undecided grants and close it."""

    def __init__(self, store: Store, workflows: WorkflowStarter, events: EventPublisher) -> None:
        self._store = store
        self._workflows = workflows
        self._events = events
        self._lifecycle = GrantLifecycle(store, events)

    def run(self, now: datetime | None = None) -> DeadlineReport:
        now = now or utc_now()
        report = DeadlineReport()
        for due in self._store.reviews_due_by(iso(now)):
            review = self._store.get_review(due.project_id, due.review_id)
            if review is None or review.status != "open":
                continue
            try:
                self._settle(review, report)
            except Conflict:
                report.lost_races += 1  # another run holds these items: it or the next finishes
        return report

    def _settle(self, review: Review, report: DeadlineReport) -> None:
        deferred = False
        for item in review.items:
            if item.decision is not None:
                continue
            grant = self._store.get_grant(review.project_id, item.contact_id)
            if not reviewed(grant, item):
                continue  # removed meanwhile (or given again since): nothing reviewed is left
            assert grant is not None
            if grant.lifecycle_id and self._workflows.is_running(grant.lifecycle_id):
                report.waiting_for_activation += 1
                deferred = True
                continue
            move = Move(
                GrantStatus.DELETION_PENDING,
                SYSTEM_ACTOR,
                detail={"reason": REVIEW_EXPIRED_REASON, "review_id": review.review_id},
            )
            started = self._lifecycle.apply(grant, move)
            if started is None:
                report.lost_races += 1  # another run (or a person) moved it first
                continue
            if start_removal_or_leave_to_sweeper(self._workflows, started):
                report.removals_started += 1
            else:
                report.start_failed += 1
        if deferred:
            return  # the next run removes what is left, then closes
        self._close(review, report)

    def _close(self, review: Review, report: DeadlineReport) -> None:
        closed = replace(review, status="closed", closed_at=iso(utc_now()))
        kept = sum(1 for i in review.items if i.decision == "keep")
        revoked = sum(1 for i in review.items if i.decision == "revoke")
        uow = self._store.unit_of_work()
        uow.close_review(closed)
        uow.append(
            activity.entry(
                review.project_id,
                "review.closed",
                SYSTEM_ACTOR,
                detail={
                    "review_id": review.review_id,
                    "kept": kept,
                    "revoked": revoked,
                    "undecided": len(review.items) - kept - revoked,
                },
            )
        )
        event = AccessReviewClosed(
            project_id=review.project_id,
            review_id=review.review_id,
            kept=kept,
            revoked=revoked,
            undecided=len(review.items) - kept - revoked,
        )
        if commit_change(uow, self._events, event):
            report.reviews_closed += 1
        else:
            report.lost_races += 1
