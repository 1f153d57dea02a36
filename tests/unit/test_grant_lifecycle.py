"""The grant lifecycle (SPEC §1): every transition the SPEC lists, none other, as conditional
writes of the store; and, for any sequence of attempts, one activity entry per transition."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.domain import activity
from chalicelib.domain.grant_lifecycle import ACTIVITY_ACTION, may_transition, retry_target
from chalicelib.domain.models import SYSTEM_ACTOR, ActivityEntry, Grant, GrantStatus
from chalicelib.errors import StaleState
from tests.fakes.builders import contact, grant, project
from tests.fakes.store import InMemoryStore

S = GrantStatus
# Written from SPEC §1, independently of `ALLOWED_FROM`; `None` is "no grant yet".
SPEC_TRANSITIONS = {
    (None, S.ACTIVATION_PENDING),
    (S.ACTIVATION_PENDING, S.ACTIVATED),
    (S.ACTIVATION_PENDING, S.ACTIVATION_FAILED),
    (S.ACTIVATED, S.DELETION_PENDING),
    (S.ACTIVATION_FAILED, S.DELETION_PENDING),
    (S.DELETION_FAILED, S.DELETION_PENDING),
    (S.DELETION_PENDING, S.REMOVED),
    (S.DELETION_PENDING, S.DELETION_FAILED),
    # SPEC §2: "a failed one is retried" (POST .../grants and POST .../retry).
    (S.ACTIVATION_FAILED, S.ACTIVATION_PENDING),
}
STORED = [s for s in S if s is not S.REMOVED]
PROJECT = project()
CONTACT = contact("alice")


def _reachable() -> set[GrantStatus | None]:
    seen: set[GrantStatus | None] = {None}
    frontier: list[GrantStatus | None] = [None]
    while frontier:
        current = frontier.pop()
        for source, target in SPEC_TRANSITIONS:
            if source == current and target not in seen:
                seen.add(target)
                frontier.append(target)
    return seen


REACHABLE = _reachable()


def _attempt(
    store: InMemoryStore,
    current: Grant | None,
    target: GrantStatus,
    expected_lifecycle: str | None,
    new_lifecycle: str,
    attempt: int,
) -> bool:
    """One transition attempt as the domain makes it: the write plus its activity entry."""
    uow = store.unit_of_work()
    subject = current or grant(PROJECT, CONTACT, target, lifecycle_id=new_lifecycle)
    if current is None and target is S.ACTIVATION_PENDING:
        uow.create_grant(subject)
    elif target is S.REMOVED:
        uow.delete_grant(subject, expected_lifecycle=expected_lifecycle)
    else:
        uow.transition_grant(
            subject, target, expected_lifecycle=expected_lifecycle, lifecycle_id=new_lifecycle
        )
    uow.append(
        activity.entry(
            PROJECT.project_id,
            ACTIVITY_ACTION[target],
            SYSTEM_ACTOR,
            contact_id=CONTACT.contact_id,
            detail={"attempt": attempt},
        )
    )
    try:
        uow.commit()
    except StaleState:
        return False
    return True


def _entries(store: InMemoryStore) -> list[ActivityEntry]:
    return store.activity(PROJECT.project_id, None, 100, None).items


@pytest.mark.parametrize("target", list(S))
@pytest.mark.parametrize("current", [None, *S])
def test_may_transition_allows_exactly_the_spec_transitions(current, target):
    # Given a grant in `current` (or none) and a wanted `target`
    # When the lifecycle is asked
    allowed = may_transition(current, target)

    # Then only the transitions the SPEC lists are allowed
    assert allowed == ((current, target) in SPEC_TRANSITIONS)


@pytest.mark.parametrize("target", list(S))
@pytest.mark.parametrize("current", STORED)
def test_store_applies_a_transition_only_when_the_lifecycle_allows_it(store, current, target):
    # Given a stored grant in `current`
    stored = grant(PROJECT, CONTACT, current)
    store.seed(stored)
    before = store.snapshot()

    # When a transition (or, for `removed`, the deletion) to `target` is committed
    applied = _attempt(store, stored, target, stored.lifecycle_id, "L2", attempt=1)

    # Then it is applied with its activity entry if allowed, else nothing at all is written
    assert applied == ((current, target) in SPEC_TRANSITIONS)
    after = store.get_grant(PROJECT.project_id, CONTACT.contact_id)
    if applied:
        assert (after.status if after else S.REMOVED) is target
        assert [e.action for e in _entries(store)] == [ACTIVITY_ACTION[target]]
    else:
        assert store.snapshot() == before


@pytest.mark.parametrize("current", STORED)
def test_a_grant_is_created_only_where_none_exists(store, current):
    # Given a stored grant
    store.seed(grant(PROJECT, CONTACT, current))
    before = store.snapshot()

    # When another grant for the same project and contact is created
    created = _attempt(store, None, S.ACTIVATION_PENDING, None, "L2", attempt=1)

    # Then the write loses and nothing changes
    assert not created
    assert store.snapshot() == before


def test_transition_guarded_by_another_lifecycle_is_refused(store):
    # Given a pending grant of lifecycle L1
    stored = grant(PROJECT, CONTACT, S.ACTIVATION_PENDING, lifecycle_id="L1")
    store.seed(stored)
    before = store.snapshot()

    # When a step of an older lifecycle L0 tries to complete it
    applied = _attempt(store, stored, S.ACTIVATED, "L0", "L0", attempt=1)

    # Then nothing is written
    assert not applied
    assert store.snapshot() == before


def test_transition_keeps_what_it_does_not_set_and_clears_the_error(store):
    # Given a failed grant with an account and an error
    stored = grant(
        PROJECT,
        CONTACT,
        S.ACTIVATION_FAILED,
        jira_account_id="acc-1",
        account_created=True,
        error=None,
    )
    store.seed(stored)

    # When it is retried under a new lifecycle
    uow = store.unit_of_work()
    uow.transition_grant(
        stored, S.ACTIVATION_PENDING, expected_lifecycle=stored.lifecycle_id, lifecycle_id="L2"
    )
    uow.commit()

    # Then status and lifecycle change, the account stays
    after = store.get_grant(PROJECT.project_id, CONTACT.contact_id)
    assert after == replace(
        stored, status=S.ACTIVATION_PENDING, lifecycle_id="L2", updated_at=after.updated_at
    )


def test_a_unit_of_work_is_all_or_nothing(store):
    # Given an activated grant and a pending one
    other = contact("bob")
    activated = grant(PROJECT, CONTACT, S.ACTIVATED)
    pending = grant(PROJECT, other, S.ACTIVATION_PENDING)
    store.seed(activated, pending)
    before = store.snapshot()

    # When one transaction holds a valid removal request and an invalid removal request
    uow = store.unit_of_work()
    uow.transition_grant(activated, S.DELETION_PENDING)
    uow.transition_grant(pending, S.DELETION_PENDING)
    uow.append(activity.entry(PROJECT.project_id, "grant.removal_requested", SYSTEM_ACTOR))

    # Then the commit loses and not even the valid part is written
    with pytest.raises(StaleState):
        uow.commit()
    assert store.snapshot() == before


def test_of_concurrent_transitions_exactly_one_wins(store):
    # Given an activated grant
    stored = grant(PROJECT, CONTACT, S.ACTIVATED)
    store.seed(stored)
    start = threading.Barrier(8)

    def request_removal(attempt: int) -> bool:
        start.wait()
        return _attempt(
            store, stored, S.DELETION_PENDING, stored.lifecycle_id, f"L{attempt}", attempt
        )

    # When eight removal requests race
    with ThreadPoolExecutor(max_workers=8) as pool:
        won = list(pool.map(request_removal, range(8)))

    # Then exactly one is applied and logged
    assert won.count(True) == 1
    assert [e.detail["attempt"] for e in _entries(store)] == [won.index(True)]


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (S.ACTIVATION_FAILED, S.ACTIVATION_PENDING),
        (S.DELETION_FAILED, S.DELETION_PENDING),
        *((s, None) for s in S if s not in (S.ACTIVATION_FAILED, S.DELETION_FAILED)),
    ],
)
def test_only_failed_grants_have_a_retry(current, target):
    # Given a grant in `current`
    # When its retry target is asked
    # Then only failed grants have one, and it is an allowed transition
    assert retry_target(current) is target
    if target is not None:
        assert may_transition(current, target)


ATTEMPTS = st.lists(
    st.tuples(st.sampled_from(list(S)), st.sampled_from(["current", "stale", "unguarded"])),
    max_size=25,
)


@settings(max_examples=100, deadline=None)
@given(attempts=ATTEMPTS)
def test_any_sequence_of_attempts_follows_the_lifecycle_and_logs_each_transition_once(attempts):
    # Given a freshly requested grant
    store = InMemoryStore()
    assert _attempt(store, None, S.ACTIVATION_PENDING, None, "L0", attempt=0)
    succeeded = [0]

    # When any sequence of transitions is attempted, with the current, a stale or no guard
    for number, (target, guard) in enumerate(attempts, start=1):
        current = store.get_grant(PROJECT.project_id, CONTACT.contact_id)
        status = current.status if current else None
        expected = {
            "current": current.lifecycle_id if current else None,
            "stale": "an-old-lifecycle",
            "unguarded": None,
        }[guard]
        applied = _attempt(store, current, target, expected, f"L{number}", number)

        # Then exactly the allowed ones apply, and the grant stays in a reachable status
        allowed = may_transition(status, target) and (guard != "stale" or current is None)
        assert applied == allowed
        after = store.get_grant(PROJECT.project_id, CONTACT.contact_id)
        if applied:
            succeeded.append(number)
            assert (after.status if after else S.REMOVED) is target
        else:
            assert after == current
        assert (after.status if after else None) in REACHABLE

    # And every successful transition has exactly one activity entry, refused ones none
    logged = Counter(e.detail["attempt"] for e in _entries(store))
    assert logged == Counter(succeeded)
