"""Time-bound grants (rule 10): the expiry rules and the scheduled job, against the in-memory
store and the DynamoDB store on moto (its sparse expiry index included)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.domain.expiry import MAX_AHEAD, ExpiryJob, valid_expiry
from chalicelib.domain.grant_lifecycle import GrantLifecycle, Move
from chalicelib.domain.models import ActorType, Grant, GrantStatus, iso
from chalicelib.domain.ports import Store
from chalicelib.errors import ValidationFailed
from tests.fakes.adapters import RecordingEvents, RecordingMailer, RecordingWorkflows
from tests.fakes.builders import contact, grant, project
from tests.fakes.store import InMemoryStore

S = GrantStatus
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
PROJECT = project()
ALICE = contact("alice")


@pytest.fixture(params=["memory", "dynamodb"])
def any_store(request: pytest.FixtureRequest) -> Store:
    """The in-memory store, and the DynamoDB store on the process's local stack (its moto
    server, tables emptied; each item operation atomic as in DynamoDB). Not `mock_aws`: entering
    it resets moto's process-wide backends, emptying the stack other tests here share."""
    if request.param == "memory":
        return InMemoryStore()
    request.getfixturevalue("stack")
    from chalicelib.store.repository import DynamoStore  # noqa: PLC0415

    return DynamoStore()


def seed(store: Store, *grants: Grant) -> None:
    uow = store.unit_of_work()
    for g in grants:
        uow.create_grant(g)
    uow.commit()


def expiring(at: datetime, status: S = S.ACTIVATED, contact_id: str = "alice") -> Grant:
    return grant(PROJECT, contact(contact_id), status, expires_at=iso(at))


def job(store: Store) -> tuple[ExpiryJob, RecordingWorkflows, RecordingMailer]:
    workflows, mailer = RecordingWorkflows(), RecordingMailer()
    return ExpiryJob(store, workflows, mailer, RecordingEvents()), workflows, mailer


def actions(store: Store) -> list[str]:
    return [e.action for e in store.activity(PROJECT.project_id, None, 100, None).items]


# --- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "given",
    [iso(NOW - timedelta(seconds=1)), iso(NOW), iso(NOW + MAX_AHEAD + timedelta(seconds=1))],
)
def test_an_expiry_must_be_in_the_future_and_at_most_366_days_ahead(given):
    with pytest.raises(ValidationFailed) as raised:
        valid_expiry(given, NOW)
    assert [e.field for e in raised.value.errors] == ["expires_at"]


def test_a_valid_expiry_is_stored_in_the_one_sortable_format():
    assert valid_expiry("2026-06-02T12:00:00Z", NOW) == "2026-06-02T12:00:00.000Z"
    assert valid_expiry(iso(NOW + MAX_AHEAD), NOW) == iso(NOW + MAX_AHEAD)
    assert valid_expiry(None, NOW) is None


# --- the job ----------------------------------------------------------------------------------


def test_an_expired_activated_grant_starts_its_removal_as_the_system(any_store):
    # Given an activated grant that expired a minute ago, and one that expires next month
    seed(
        any_store,
        expiring(NOW - timedelta(minutes=1)),
        expiring(NOW + timedelta(days=30), contact_id="bob"),
    )
    expiry, workflows, _ = job(any_store)

    # When the job runs
    report = expiry.run(NOW)

    # Then alice's removal started (actor system, reason expired), bob's grant is untouched
    assert report.removals_started == 1
    alice = any_store.get_grant(PROJECT.project_id, "alice")
    assert alice is not None
    assert alice.status is S.DELETION_PENDING
    assert [(kind, g.contact_id) for kind, g in workflows.starts] == [("removal", "alice")]
    (entry,) = any_store.activity(PROJECT.project_id, "alice", 10, None).items
    assert entry.action == "grant.removal_requested"
    assert entry.actor.type is ActorType.SYSTEM
    assert entry.detail["reason"] == "expired"
    bob = any_store.get_grant(PROJECT.project_id, "bob")
    assert bob is not None
    assert bob.status is S.ACTIVATED
    # ... and a grant being removed has left the expiry index
    assert [g.contact_id for g in any_store.grants_expiring_by(iso(NOW + timedelta(days=60)))] == [
        "bob"
    ]


def test_two_jobs_running_at_the_same_time_start_one_removal(any_store: Store) -> None:
    # Given an expired grant, and two runs of the job starting at the same moment
    seed(any_store, expiring(NOW - timedelta(seconds=5)))
    workflows, events = RecordingWorkflows(), RecordingEvents()
    jobs = [ExpiryJob(any_store, workflows, RecordingMailer(), events) for _ in range(2)]
    both_read = threading.Barrier(2)
    reports = []

    read = any_store.grants_expiring_by

    def reads_then_waits(until: str) -> list[Grant]:
        found = read(until)
        both_read.wait(timeout=10)  # both runs act on the same read
        return found

    any_store.grants_expiring_by = reads_then_waits  # type: ignore[method-assign]

    # When both run concurrently
    threads = [threading.Thread(target=lambda j=j: reports.append(j.run(NOW))) for j in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    # Then exactly one removal started and was recorded; the other run lost the race
    assert sorted(r.removals_started for r in reports) == [0, 1]
    assert sorted(r.lost_races for r in reports) == [0, 1]
    assert len(workflows.starts) == 1
    assert actions(any_store) == ["grant.removal_requested"]


def test_an_expiry_that_falls_while_the_activation_is_pending_removes_once_it_settled(any_store):
    # Given a grant whose expiry passed while its activation is still running
    pending = expiring(NOW - timedelta(minutes=1), status=S.ACTIVATION_PENDING)
    seed(any_store, pending)
    expiry, workflows, _ = job(any_store)

    # When the job runs: it waits for the activation
    first = expiry.run(NOW)
    assert first.waiting_for_activation == 1
    assert workflows.starts == []
    still = any_store.get_grant(PROJECT.project_id, "alice")
    assert still is not None
    assert still.status is S.ACTIVATION_PENDING

    # When the activation then settles and the job runs again
    GrantLifecycle(any_store, RecordingEvents()).apply(still, Move(S.ACTIVATED))
    second = expiry.run(NOW + timedelta(seconds=10))

    # Then the removal starts
    assert second.removals_started == 1
    gone = any_store.get_grant(PROJECT.project_id, "alice")
    assert gone is not None
    assert gone.status is S.DELETION_PENDING


def test_an_activation_whose_execution_is_still_finishing_is_removed_on_a_later_run(any_store):
    # Given an expired activated grant whose activation execution is still ending
    g = expiring(NOW - timedelta(minutes=1))
    seed(any_store, g)
    expiry, workflows, _ = job(any_store)
    workflows.executions[str(g.lifecycle_id)] = "RUNNING"

    # When the job runs, then once the execution ended
    assert expiry.run(NOW).removals_started == 0
    workflows.executions[str(g.lifecycle_id)] = "SUCCEEDED"
    assert expiry.run(NOW).removals_started == 1


def test_a_grant_whose_writes_keep_conflicting_is_left_to_the_next_run() -> None:
    # Given two expired grants, and DynamoDB cancelling the first one's writes 3 times
    store = InMemoryStore()
    seed(store, expiring(NOW - timedelta(minutes=2)), expiring(NOW, contact_id="bob"))
    expiry, workflows, _ = job(store)
    store.fail_next("conflict", "conflict", "conflict")

    # When the job runs, then runs again
    first = expiry.run(NOW)
    second = expiry.run(NOW)

    # Then the other grant was not held up, and the next run removed the first one
    assert (first.removals_started, first.lost_races) == (1, 1)
    assert second.removals_started == 1
    assert sorted(g.contact_id for _, g in workflows.starts) == ["alice", "bob"]


def test_a_removal_never_acts_on_an_expiry_changed_after_it_was_read(any_store):
    # Given the job read an expired grant, then a manager moved its expiry to next week
    g = expiring(NOW - timedelta(minutes=1))
    seed(any_store, g)
    uow = any_store.unit_of_work()
    uow.change_expiry(g, iso(NOW + timedelta(days=7)), iso(NOW))
    uow.commit()

    # When the job starts the removal from what it read
    started = GrantLifecycle(any_store, RecordingEvents()).apply(
        g, Move(S.DELETION_PENDING, detail={"reason": "expired"}, expiry_unchanged=True)
    )

    # Then it lost: the grant stays activated with its new expiry
    assert started is None
    stored = any_store.get_grant(PROJECT.project_id, "alice")
    assert stored is not None
    assert stored.status is S.ACTIVATED
    assert stored.expires_at == iso(NOW + timedelta(days=7))


def test_a_cleared_expiry_leaves_the_index(any_store):
    g = expiring(NOW + timedelta(days=1))
    seed(any_store, g)
    uow = any_store.unit_of_work()
    uow.change_expiry(g, None, iso(NOW))
    uow.commit()
    assert any_store.grants_expiring_by(iso(NOW + timedelta(days=400))) == []
    stored = any_store.get_grant(PROJECT.project_id, "alice")
    assert stored is not None
    assert stored.expires_at is None


# --- reminders --------------------------------------------------------------------------------


def test_a_reminder_goes_out_once_seven_days_before_expiry(any_store):
    # Given grants expiring in 8 days, in 6 days, and in 2 hours (a short grant)
    seed(
        any_store,
        expiring(NOW + timedelta(days=8), contact_id="later"),
        expiring(NOW + timedelta(days=6), contact_id="soon"),
        expiring(NOW + timedelta(hours=2), contact_id="short"),
    )
    expiry, _, mailer = job(any_store)

    # When the job runs twice
    first = expiry.run(NOW)
    second = expiry.run(NOW + timedelta(minutes=1))

    # Then the two within a week got one reminder each, at once; the later one none yet
    assert first.reminders_sent == 2
    assert second.reminders_sent == 0
    assert sorted(e.to for e in mailer.sent) == ["short@acme.example", "soon@acme.example"]
    assert {e.kind for e in mailer.sent} == {"expiry_reminder"}
    soon = any_store.get_grant(PROJECT.project_id, "soon")
    assert soon is not None
    assert soon.expiry_reminded_for == soon.expires_at

    # When the later one enters its last week
    expiry.run(NOW + timedelta(days=1, minutes=1))
    assert sorted(e.to for e in mailer.sent)[0] == "later@acme.example"
    assert len(mailer.sent) == 3


def test_a_changed_expiry_is_reminded_again(any_store):
    g = expiring(NOW + timedelta(days=3))
    seed(any_store, g)
    expiry, _, mailer = job(any_store)
    expiry.run(NOW)
    reminded = any_store.get_grant(PROJECT.project_id, "alice")
    assert reminded is not None
    uow = any_store.unit_of_work()
    uow.change_expiry(reminded, iso(NOW + timedelta(days=5)), iso(NOW))
    uow.commit()

    expiry.run(NOW + timedelta(minutes=1))

    reminded_for = [e.link for e in mailer.sent]
    assert reminded_for == [iso(NOW + timedelta(days=3)), iso(NOW + timedelta(days=5))]


def test_a_reminder_ses_refused_is_sent_by_a_later_run(any_store):
    seed(any_store, expiring(NOW + timedelta(days=3)))
    expiry, _, mailer = job(any_store)
    mailer.failing = True
    assert expiry.run(NOW).reminders_sent == 0
    mailer.failing = False
    assert expiry.run(NOW).reminders_sent == 1
    assert len(mailer.sent) == 1


def test_a_grant_being_activated_is_reminded_once_it_is_activated(any_store):
    pending = expiring(NOW + timedelta(days=2), status=S.ACTIVATION_PENDING)
    seed(any_store, pending)
    expiry, _, mailer = job(any_store)
    expiry.run(NOW)
    assert mailer.sent == []
    GrantLifecycle(any_store, RecordingEvents()).apply(pending, Move(S.ACTIVATED))
    expiry.run(NOW)
    assert [e.kind for e in mailer.sent] == ["expiry_reminder"]
