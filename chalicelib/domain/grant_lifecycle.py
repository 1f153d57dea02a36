"""The grant lifecycle: which status may follow which, and what happens on a transition.

This is the one place the transition rules live. `GrantLifecycle.apply` is the only way a grant
changes status: it checks the move is allowed, writes the new status conditionally on the status
and lifecycle run it read, appends the activity entry and keeps the contact's reference items
(the service desks it holds, the companies that granted it) in the same transaction, then
publishes the event. Every caller — API use cases, workflow steps, the sweeper — goes through it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from . import activity
from .changes import commit_change
from .events import DomainEvent, GrantActivated, GrantFailed, GrantRemoved
from .ids import new_ulid, ulid_time
from .models import SYSTEM_ACTOR, Actor, Grant, GrantError, iso, utc_now
from .models import GrantStatus as S
from .ports import EventPublisher, Store, UnitOfWork

# to-status → statuses it may come from. `activation_failed → activation_pending` is a retry
# (SPEC §2 "a failed one is retried"); `deletion_failed → deletion_pending` is one too.
ALLOWED_FROM: dict[S, frozenset[S]] = {
    S.ACTIVATION_PENDING: frozenset({S.ACTIVATION_FAILED}),
    S.ACTIVATED: frozenset({S.ACTIVATION_PENDING}),
    S.ACTIVATION_FAILED: frozenset({S.ACTIVATION_PENDING}),
    S.DELETION_PENDING: frozenset({S.ACTIVATED, S.ACTIVATION_FAILED, S.DELETION_FAILED}),
    S.DELETION_FAILED: frozenset({S.DELETION_PENDING}),
    S.REMOVED: frozenset({S.DELETION_PENDING}),
}

ACTIVITY_ACTION: dict[S, str] = {
    S.ACTIVATION_PENDING: "grant.requested",
    S.ACTIVATED: "grant.activated",
    S.ACTIVATION_FAILED: "grant.activation_failed",
    S.DELETION_PENDING: "grant.removal_requested",
    S.DELETION_FAILED: "grant.removal_failed",
    S.REMOVED: "grant.removed",
}


class Kind(StrEnum):
    """The two lifecycle runs a grant has, each one Step Functions state machine."""

    ACTIVATION = "activation"
    REMOVAL = "removal"


PENDING_OF: dict[Kind, S] = {
    Kind.ACTIVATION: S.ACTIVATION_PENDING,
    Kind.REMOVAL: S.DELETION_PENDING,
}
KIND_OF: dict[S, Kind] = {status: kind for kind, status in PENDING_OF.items()}
FAILED_OF: dict[S, S] = {
    S.ACTIVATION_PENDING: S.ACTIVATION_FAILED,
    S.DELETION_PENDING: S.DELETION_FAILED,
}
RETRY_OF: dict[S, S] = {failed: pending for pending, failed in FAILED_OF.items()}

PENDING = frozenset(PENDING_OF.values())
FAILED = frozenset(FAILED_OF.values())
# Grants whose JSM account is (or is about to be) a customer of the service desk. A failed
# activation is not one: its run took back what it added (rule 4).
HOLDS_SERVICE_DESK = frozenset({S.ACTIVATION_PENDING, S.ACTIVATED, S.DELETION_FAILED})

EVENT_OF: dict[S, Callable[[Grant], DomainEvent]] = {
    S.ACTIVATED: GrantActivated.of,
    S.ACTIVATION_FAILED: GrantFailed.of,
    S.DELETION_FAILED: GrantFailed.of,
    S.REMOVED: GrantRemoved.of,
}


def may_transition(current: S | None, target: S) -> bool:
    """True when `current → target` is a transition of the lifecycle (`None` = no grant yet)."""
    if current is None:
        return target is S.ACTIVATION_PENDING
    return current in ALLOWED_FROM[target]


def retry_target(current: S) -> S | None:
    """The status a failed grant's retry moves it to, or None when it is not failed."""
    return RETRY_OF.get(current)


@dataclass(frozen=True)
class ExecutionName:
    """The Step Functions execution name of one lifecycle run: `<grant>-<kind>-<ULID>` (≤ 80).

    `<grant>` is the sanitised project and contact ids (≤ 40 chars), so a grant's runs are
    found by prefix; the ULID makes each run unique and says when it was requested.
    """

    grant: str
    kind: Kind
    ulid: str

    _PATTERN = re.compile(r"^(?P<grant>.+)-(?P<kind>activation|removal)-(?P<ulid>[0-9A-Z]{26})$")

    @staticmethod
    def prefix(project_id: str, contact_id: str) -> str:
        """The readable start shared by every run of one grant."""
        return re.sub(r"[^A-Za-z0-9_-]", "_", f"{project_id}-{contact_id}")[:40] + "-"

    @classmethod
    def build(
        cls, project_id: str, contact_id: str, kind: Kind, now: datetime | None = None
    ) -> ExecutionName:
        return cls(cls.prefix(project_id, contact_id)[:-1], kind, new_ulid(now))

    @classmethod
    def parse(cls, name: str) -> ExecutionName:
        match = cls._PATTERN.match(name)
        if match is None:
            raise ValueError(f"not a lifecycle execution name: {name!r}")
        return cls(match["grant"], Kind(match["kind"]), match["ulid"])

    @property
    def started_at(self) -> datetime:
        return ulid_time(self.ulid)

    def __str__(self) -> str:
        return f"{self.grant}-{self.kind.value}-{self.ulid}"


@dataclass(frozen=True)
class Move:
    """A transition a caller asks for: the target status, who, and what to record with it."""

    target: S
    actor: Actor = SYSTEM_ACTOR
    detail: dict[str, Any] = field(default_factory=dict)
    jira_account_id: str | None = None
    account_created: bool | None = None
    error: GrantError | None = None
    welcome_owed: bool = False
    # Commit only if the grant's `expires_at` is still the one read (the expiry job acts on it).
    expiry_unchanged: bool = False


class GrantLifecycle:
    """Applies moves to grants: conditional write + activity entry in one transaction + event."""

    def __init__(self, store: Store, events: EventPublisher) -> None:
        self._store = store
        self._events = events

    def apply(
        self,
        current: Grant | None,
        move: Move,
        *,
        new: Grant | None = None,
        uow: UnitOfWork | None = None,
    ) -> Grant | None:
        """Move `current` (or create `new`, when `current` is None) to `move.target`.

        Conditional on the grant still having the status and lifecycle run the caller read, so
        a caller that lost a race (another request, a retried step) gets None and nothing is
        written. `uow` carries the caller's own writes (a new contact, an external link) that
        must commit with the transition. Returns the grant as written.
        """
        before = current.status if current else None
        if not may_transition(before, move.target):
            raise ValueError(f"{before} → {move.target} is not a grant transition")
        uow = uow or self._store.unit_of_work()
        now = utc_now()
        grant = self._next(current, new, move, now)
        if current is None:
            uow.create_grant(grant)
        elif move.target is S.REMOVED:
            uow.delete_grant(current)
            uow.record_last_run(grant, iso(now))
        else:
            uow.transition_grant(current, grant, expiry_unchanged=move.expiry_unchanged)
        self._keep_references(uow, current, grant)
        detail = {**move.detail, "execution": grant.lifecycle_id}
        if move.error is not None:
            detail["error"] = asdict(move.error)
        uow.append(
            activity.entry(
                grant.project_id,
                ACTIVITY_ACTION[move.target],
                move.actor,
                contact_id=grant.contact_id,
                contact_email=grant.email,
                detail=detail,
                at=now,
            )
        )
        event = EVENT_OF[move.target](grant) if move.target in EVENT_OF else None
        return grant if commit_change(uow, self._events, event) else None

    def fail(
        self,
        current: Grant,
        error: GrantError,
        *,
        jira_account_id: str | None = None,
        account_created: bool | None = None,
    ) -> Grant | None:
        """A pending grant's run ended in `error`: `*_pending → *_failed`, or None if it moved on.

        The JSM account id found so far is kept, so a later removal can clean up what was done.
        """
        move = Move(
            FAILED_OF[current.status],
            error=error,
            jira_account_id=jira_account_id,
            account_created=account_created,
        )
        return self.apply(current, move)

    def welcome_sent(self, current: Grant) -> bool:
        """An owed welcome email went out: clear the debt (False if the grant moved on)."""
        uow = self._store.unit_of_work()
        uow.clear_welcome_owed(current)
        return commit_change(uow, self._events, None)

    def note_account_creation(self, current: Grant) -> bool:
        """Remember, before the create call, that this run is creating the JSM account: its
        answer may be lost (a timeout after JSM applied it). False if the run moved on."""
        uow = self._store.unit_of_work()
        uow.note_account_created(current)
        return commit_change(uow, self._events, None)

    @staticmethod
    def _next(current: Grant | None, new: Grant | None, move: Move, now: datetime) -> Grant:
        base = current or new
        if base is None:
            raise ValueError("a new grant needs `new`")
        lifecycle_id = base.lifecycle_id
        if move.target in KIND_OF:
            lifecycle_id = str(
                ExecutionName.build(base.project_id, base.contact_id, KIND_OF[move.target], now)
            )
        return replace(
            base,
            status=move.target,
            updated_at=iso(now),
            lifecycle_id=lifecycle_id,
            error=move.error,
            jira_account_id=move.jira_account_id or base.jira_account_id,
            account_created=(
                base.account_created if move.account_created is None else move.account_created
            ),
            welcome_owed=move.welcome_owed,
        )

    @staticmethod
    def _keep_references(uow: UnitOfWork, current: Grant | None, grant: Grant) -> None:
        """The contact's reference items, read strongly consistently by the removal steps.

        `desk`: the projects whose grant holds the contact on a service desk, so a removal on
        one project never takes the account off a desk another project's grant is putting it on.
        `company`: the projects where a company granted the contact, so an external is unlinked
        only when no grant of that company is left — even one committed a moment ago.
        """
        held = current is not None and current.status in HOLDS_SERVICE_DESK
        holds = grant.status in HOLDS_SERVICE_DESK
        if holds and not held:
            uow.reference(grant, "desk", add=True)
        elif held and not holds:
            uow.reference(grant, "desk", add=False)
        if current is None:
            uow.reference(grant, "company", add=True)
        elif grant.status is S.REMOVED:
            uow.reference(grant, "company", add=False)
