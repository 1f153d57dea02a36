"""The grant lifecycle (SPEC §1): every transition the SPEC lists and none other, applied by
`GrantLifecycle` as conditional writes with one activity entry and its event — against the
in-memory store and against the DynamoDB store under moto (STYLE 15: test the real adapter too),
including the cancellations real DynamoDB raises under contention and moto never does."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from unittest import mock

import pytest
from botocore.exceptions import ClientError
from hypothesis import given, settings
from hypothesis import strategies as st
from moto import mock_aws

from chalicelib.domain.changes import CONFLICT_ATTEMPTS
from chalicelib.domain.grant_lifecycle import (
    ACTIVITY_ACTION,
    EVENT_OF,
    HOLDS_SERVICE_DESK,
    ExecutionName,
    GrantLifecycle,
    Kind,
    Move,
    may_transition,
    retry_target,
)
from chalicelib.domain.models import ActivityEntry, Contact, Grant, GrantError, GrantStatus
from chalicelib.domain.ports import Store
from chalicelib.errors import Conflict, StaleState, StoreThrottled
from tests.fakes.adapters import RecordingEvents
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
ERROR = GrantError("JiraRejected", "no")


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


@pytest.fixture(params=["memory", "dynamodb"])
def any_store(request: pytest.FixtureRequest) -> Iterator[Store]:
    """The in-memory store, and the DynamoDB store on moto's in-process DynamoDB."""
    if request.param == "memory":
        yield InMemoryStore()
        return
    with mock_aws():
        from chalicelib.store.repository import DynamoStore  # noqa: PLC0415
        from chalicelib.store.tables import ALL_TABLES  # noqa: PLC0415

        for model in ALL_TABLES:
            model._connection = None  # a fresh client inside this mock
            model.create_table(wait=True)
        yield DynamoStore()


def seed(store: Store, *records: Grant | Contact) -> None:
    uow = store.unit_of_work()
    for record in records:
        if isinstance(record, Grant):
            uow.create_grant(record)
        else:
            uow.create_contact(record)
    uow.commit()


def state(store: Store) -> tuple[Any, ...]:
    """What a transition may change: the grant, the activity log, the reference sets."""
    return (
        store.get_grant(PROJECT.project_id, CONTACT.contact_id),
        _entries(store),
        store.referencing_projects(CONTACT.contact_id, "desk", PROJECT.service_desk_id),
        store.referencing_projects(CONTACT.contact_id, "company", PROJECT.customer_company_id),
    )


def _entries(store: Store) -> list[ActivityEntry]:
    return store.activity(PROJECT.project_id, None, 100, None).items


def _new_grant() -> Grant:
    return grant(PROJECT, CONTACT, S.ACTIVATION_PENDING, lifecycle_id=None)


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
def test_apply_makes_exactly_the_spec_transitions_on_both_stores(any_store, current, target):
    # Given a stored grant in `current`
    stored = grant(PROJECT, CONTACT, current)
    seed(any_store, stored)
    events = RecordingEvents()
    lifecycle = GrantLifecycle(any_store, events)
    before = state(any_store)

    # When the lifecycle is asked to move it to `target`
    if (current, target) not in SPEC_TRANSITIONS:
        # Then a move the SPEC does not list is refused before anything is written
        with pytest.raises(ValueError, match="not a grant transition"):
            lifecycle.apply(stored, Move(target, error=ERROR))
        assert state(any_store) == before
        return
    written = lifecycle.apply(stored, Move(target, error=ERROR))

    # Then the grant is written as returned, with one activity entry and its event
    after = any_store.get_grant(PROJECT.project_id, CONTACT.contact_id)
    assert written is not None
    assert written.status is target
    assert after == (None if target is S.REMOVED else written)
    assert [e.action for e in _entries(any_store)] == [ACTIVITY_ACTION[target]]
    expected_events = [target in EVENT_OF]
    assert [bool(events.published)] == expected_events
    # And a new run gets a new execution name of its kind
    if target in (S.ACTIVATION_PENDING, S.DELETION_PENDING):
        name = ExecutionName.parse(str(written.lifecycle_id))
        assert name.kind is (Kind.ACTIVATION if target is S.ACTIVATION_PENDING else Kind.REMOVAL)
    else:
        assert written.lifecycle_id == stored.lifecycle_id


@pytest.mark.parametrize("current", STORED)
def test_a_grant_is_created_only_where_none_exists(any_store, current):
    # Given a stored grant
    seed(any_store, grant(PROJECT, CONTACT, current))
    before = state(any_store)

    # When another grant for the same project and contact is created
    created = GrantLifecycle(any_store, RecordingEvents()).apply(
        None, Move(S.ACTIVATION_PENDING), new=_new_grant()
    )

    # Then the write loses and nothing changes
    assert created is None
    assert state(any_store) == before


def test_a_grant_read_in_an_older_run_cannot_move(any_store):
    # Given a pending grant of run L1, read by a step of the older run L0
    stored = grant(PROJECT, CONTACT, S.ACTIVATION_PENDING, lifecycle_id="L1")
    seed(any_store, stored)
    before = state(any_store)
    events = RecordingEvents()

    # When that step tries to complete it
    applied = GrantLifecycle(any_store, events).apply(
        replace(stored, lifecycle_id="L0"), Move(S.ACTIVATED)
    )

    # Then nothing is written and nothing published
    assert applied is None
    assert state(any_store) == before
    assert events.published == []


def test_a_retry_keeps_the_account_and_clears_the_error(any_store):
    # Given a failed grant with an account and an error
    stored = grant(
        PROJECT, CONTACT, S.ACTIVATION_FAILED, jira_account_id="acc-1", account_created=True
    )
    stored = replace(stored, error=ERROR)
    seed(any_store, stored)

    # When it is retried under a new run
    written = GrantLifecycle(any_store, RecordingEvents()).apply(stored, Move(S.ACTIVATION_PENDING))

    # Then status and run change, the account stays, the error goes
    after = any_store.get_grant(PROJECT.project_id, CONTACT.contact_id)
    assert written is not None
    assert after == written
    assert (after.jira_account_id, after.account_created, after.error) == ("acc-1", True, None)


def test_the_reference_sets_follow_the_grant(any_store: Store) -> None:
    # Given a new grant of alice, given by acme, on project p1 (service desk 1)
    lifecycle = GrantLifecycle(any_store, RecordingEvents())

    def desk() -> set[str]:
        return any_store.referencing_projects("alice", "desk", "1")

    def company() -> set[str]:
        return any_store.referencing_projects("alice", "company", "acme")

    current = lifecycle.apply(None, Move(S.ACTIVATION_PENDING), new=_new_grant())
    assert (desk(), company()) == ({"p1"}, {"p1"})

    # When it fails, is retried, activates, is removed
    expected = []
    for target in (
        S.ACTIVATION_FAILED,
        S.ACTIVATION_PENDING,
        S.ACTIVATED,
        S.DELETION_PENDING,
        S.DELETION_FAILED,
        S.DELETION_PENDING,
        S.REMOVED,
    ):
        assert current is not None
        current = lifecycle.apply(current, Move(target, error=ERROR))
        expected.append((target, desk(), company()))

    # Then the desk is held exactly while the status holds it; the company until removal
    assert expected == [
        (t, {"p1"} if t in HOLDS_SERVICE_DESK else set(), set() if t is S.REMOVED else {"p1"})
        for t, _, _ in expected
    ]


def test_of_concurrent_transitions_exactly_one_wins():
    # Given an activated grant
    store = InMemoryStore()
    stored = grant(PROJECT, CONTACT, S.ACTIVATED)
    store.seed(stored)
    lifecycle = GrantLifecycle(store, RecordingEvents())
    start = threading.Barrier(8)

    def request_removal(attempt: int) -> bool:
        start.wait()
        move = Move(S.DELETION_PENDING, detail={"attempt": attempt})
        return lifecycle.apply(stored, move) is not None

    # When eight removal requests race
    with ThreadPoolExecutor(max_workers=8) as pool:
        won = list(pool.map(request_removal, range(8)))

    # Then exactly one is applied and logged
    assert won.count(True) == 1
    assert [e.detail["attempt"] for e in _entries(store)] == [won.index(True)]


# --- what real DynamoDB does and moto does not ---------------------------------------------


def test_a_transaction_conflict_is_retried_then_applied():
    # Given a pending grant, and DynamoDB cancelling the next two transactions (conflicts)
    store = InMemoryStore()
    stored = grant(PROJECT, CONTACT, S.ACTIVATION_PENDING)
    store.seed(stored)
    store.fail_next("conflict", "conflict")

    # When the lifecycle activates it
    written = GrantLifecycle(store, RecordingEvents()).apply(stored, Move(S.ACTIVATED))

    # Then the third attempt commits, once
    assert written is not None
    assert [e.action for e in _entries(store)] == ["grant.activated"]


def test_conflicts_that_persist_become_a_409_with_retry_after_and_write_nothing():
    store = InMemoryStore()
    stored = grant(PROJECT, CONTACT, S.ACTIVATED)
    store.seed(stored)
    for _ in range(CONFLICT_ATTEMPTS):
        store.fail_next("conflict")
    before = store.snapshot()

    with pytest.raises(Conflict) as refused:
        GrantLifecycle(store, RecordingEvents()).apply(stored, Move(S.DELETION_PENDING))

    assert refused.value.retry_after is not None
    assert store.snapshot() == before


def test_throttling_is_a_503_with_retry_after_not_a_lost_race():
    store = InMemoryStore()
    stored = grant(PROJECT, CONTACT, S.ACTIVATED)
    store.seed(stored)
    store.fail_next("throttle")

    with pytest.raises(StoreThrottled) as throttled:
        GrantLifecycle(store, RecordingEvents()).apply(stored, Move(S.DELETION_PENDING))

    assert throttled.value.retry_after is not None


def _client_error(operation: str, code: str, reasons: list[str] | None = None) -> ClientError:
    response: dict[str, Any] = {"Error": {"Code": code, "Message": code}}
    if reasons is not None:
        response["CancellationReasons"] = [{"Code": r} for r in reasons]
    return ClientError(response, operation)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("reasons", "raised"),
    [
        (["None", "TransactionConflict"], Conflict),  # retried, then a 409
        (["ThrottlingError", "None"], StoreThrottled),
        (["None", "ConditionalCheckFailed"], None),  # a lost race: None, nothing written
    ],
)
def test_dynamodb_cancellations_are_translated(reasons, raised):
    # Given the DynamoDB store, and DynamoDB cancelling every transaction for `reasons`
    with mock_aws():
        from chalicelib.store.repository import DynamoStore  # noqa: PLC0415
        from chalicelib.store.tables import ALL_TABLES  # noqa: PLC0415

        for model in ALL_TABLES:
            model._connection = None
            model.create_table(wait=True)
        store = DynamoStore()
        stored = grant(PROJECT, CONTACT, S.ACTIVATED)
        seed(store, stored)
        cancelled = _client_error("TransactWriteItems", "TransactionCanceledException", reasons)
        lifecycle = GrantLifecycle(store, RecordingEvents())

        # When the lifecycle requests the removal
        with mock.patch("botocore.client.BaseClient._make_api_call", side_effect=cancelled):
            if raised is None:
                outcome: object = lifecycle.apply(stored, Move(S.DELETION_PENDING))
            else:
                with pytest.raises(raised) as error:
                    lifecycle.apply(stored, Move(S.DELETION_PENDING))
                outcome = error.value

        # Then conflicts and throttles are told apart from a lost condition
        if raised is None:
            assert outcome is None
        else:
            assert getattr(outcome, "retry_after", None) is not None
        assert store.get_grant(PROJECT.project_id, CONTACT.contact_id) == stored


@pytest.mark.parametrize(
    ("code", "raised"),
    [
        ("ProvisionedThroughputExceededException", StoreThrottled),
        ("ConditionalCheckFailedException", StaleState),
    ],
)
def test_append_activity_tells_a_throttle_from_an_entry_already_recorded(code, raised):
    with mock_aws():
        from chalicelib.domain import activity  # noqa: PLC0415
        from chalicelib.domain.models import SYSTEM_ACTOR  # noqa: PLC0415
        from chalicelib.store.repository import DynamoStore  # noqa: PLC0415
        from chalicelib.store.tables import ALL_TABLES  # noqa: PLC0415

        for model in ALL_TABLES:
            model._connection = None
            model.create_table(wait=True)
        store = DynamoStore()
        entry = activity.entry("p1", "grant.password_reset_sent", SYSTEM_ACTOR)
        with (
            mock.patch(
                "botocore.client.BaseClient._make_api_call",
                side_effect=_client_error("PutItem", code),
            ),
            pytest.raises(raised),
        ):
            store.append_activity(entry)


# --- execution names -------------------------------------------------------------------------

IDS = st.text(alphabet="abcXYZ019._-", min_size=1, max_size=64)


@settings(max_examples=200, deadline=None)
@given(project_id=IDS, contact_id=IDS, kind=st.sampled_from(list(Kind)))
def test_an_execution_name_parses_back_to_what_built_it(project_id, contact_id, kind):
    moment = datetime(2026, 12, 2, 3, 4, 5, 678000, tzinfo=UTC)
    name = ExecutionName.build(project_id, contact_id, kind, moment)
    text = str(name)

    assert len(text) <= 80
    assert text.startswith(ExecutionName.prefix(project_id, contact_id))
    assert ExecutionName.parse(text) == name
    assert (name.kind, name.started_at) == (kind, moment)


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
    st.tuples(st.sampled_from(list(S)), st.sampled_from(["current", "stale"])), max_size=25
)


@settings(max_examples=100, deadline=None)
@given(attempts=ATTEMPTS)
def test_any_sequence_of_attempts_follows_the_lifecycle_and_logs_each_transition_once(attempts):
    # Given a freshly requested grant
    store = InMemoryStore()
    lifecycle = GrantLifecycle(store, RecordingEvents())
    assert lifecycle.apply(None, Move(S.ACTIVATION_PENDING), new=_new_grant())
    succeeded = [0]

    # When any sequence of transitions is attempted, from the grant as it is or a stale copy
    for number, (target, guard) in enumerate(attempts, start=1):
        current = store.get_grant(PROJECT.project_id, CONTACT.contact_id)
        status = current.status if current else None
        read = (
            current
            if guard == "current" or current is None
            else replace(current, lifecycle_id="old")
        )
        move = Move(target, detail={"attempt": number}, error=ERROR)
        if not may_transition(status, target):
            with pytest.raises(ValueError, match="not a grant transition"):
                lifecycle.apply(read, move, new=_new_grant())
            applied = False
        else:
            applied = lifecycle.apply(read, move, new=_new_grant()) is not None

        # Then exactly the allowed ones apply, and the grant stays in a reachable status
        assert applied == (may_transition(status, target) and (guard != "stale" or current is None))
        after = store.get_grant(PROJECT.project_id, CONTACT.contact_id)
        if applied:
            succeeded.append(number)
            assert (after.status if after else S.REMOVED) is target
        else:
            assert after == current
        assert (after.status if after else None) in REACHABLE

    # And every successful transition has exactly one activity entry, refused ones none
    logged = Counter(e.detail.get("attempt", 0) for e in _entries(store))
    assert logged == Counter(succeeded)


class _Throttling:
    """A connection whose BatchGetItem leaves `unprocessed` answers' keys unread first."""

    def __init__(self, unprocessed: int) -> None:
        self.calls = 0
        self._unprocessed = unprocessed
        self.client = self

    def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:  # noqa: N803
        self.calls += 1
        if self.calls <= self._unprocessed:
            return {"Responses": {}, "UnprocessedKeys": RequestItems}
        table = next(iter(RequestItems))
        return {"Responses": {table: RequestItems[table]["Keys"]}, "UnprocessedKeys": {}}


@pytest.mark.parametrize(("unprocessed", "read"), [(2, True), (99, False)])
def test_a_batch_read_retries_unprocessed_keys_with_backoff_then_is_throttled(
    monkeypatch: pytest.MonkeyPatch, unprocessed: int, read: bool
) -> None:
    # Given DynamoDB leaving keys unprocessed (throttling) `unprocessed` times
    from chalicelib.store import repository  # noqa: PLC0415

    pauses: list[float] = []
    monkeypatch.setattr("chalicelib.store.repository.time.sleep", pauses.append)
    connection = _Throttling(unprocessed)
    wanted = {"t": [{"k": {"S": "1"}}]}

    # When the batch read runs
    if read:
        # Then it asks again after growing pauses, and reads everything
        assert repository._batch_get(connection, wanted) == {"t": [{"k": {"S": "1"}}]}  # type: ignore[arg-type]
        assert pauses == sorted(pauses)
        assert len(pauses) == unprocessed
    else:
        # Then a few attempts later it is throttled (503 + Retry-After), not spinning
        with pytest.raises(StoreThrottled):
            repository._batch_get(connection, wanted)  # type: ignore[arg-type]
        assert connection.calls == repository.BATCH_GET_ATTEMPTS
