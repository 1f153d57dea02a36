"""The grant state machine: which status may follow which, and what the activity log calls it.

This is the one place the transition rules live; the store enforces them with conditional writes
(`expected` statuses) and the workflows only ever ask for a transition listed here.
"""

from __future__ import annotations

from .models import GrantStatus as S

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

PENDING = frozenset({S.ACTIVATION_PENDING, S.DELETION_PENDING})
FAILED = frozenset({S.ACTIVATION_FAILED, S.DELETION_FAILED})
# Grants whose JSM account is (or is about to be) a customer of the service desk.
HOLDS_SERVICE_DESK = frozenset(
    {S.ACTIVATION_PENDING, S.ACTIVATED, S.ACTIVATION_FAILED, S.DELETION_FAILED}
)


def may_transition(current: S | None, target: S) -> bool:
    """True when `current → target` is a transition of the lifecycle (`None` = no grant yet)."""
    if current is None:
        return target is S.ACTIVATION_PENDING
    return current in ALLOWED_FROM[target]


def retry_target(current: S) -> S | None:
    """The status a failed grant's retry moves it to, or None when it is not failed."""
    return {S.ACTIVATION_FAILED: S.ACTIVATION_PENDING, S.DELETION_FAILED: S.DELETION_PENDING}.get(
        current
    )
