"""Access reviews (rule 11): opening, deciding and the deadline job, against the in-memory store
and the DynamoDB store on the local stack's moto (its sparse due index included)."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from chalicelib.domain.models import ActorType, Grant, GrantStatus, Review, Role, iso, utc_now
from chalicelib.domain.ports import Store
from chalicelib.domain.reviews import (
    MAX_REVIEW_AHEAD,
    ReviewDeadlineJob,
    ReviewService,
    valid_due_at,
)
from chalicelib.errors import Conflict, Forbidden, NotFound, ValidationFailed
from tests.fakes.adapters import RecordingEvents, RecordingWorkflows
from tests.fakes.builders import INTEGRATOR, OTHER, contact, grant, principal, project
from tests.fakes.store import InMemoryStore

S = GrantStatus
PROJECT = project()
ALICE, BOB = contact("alice"), contact("bob")
CAROL = contact("carol", INTEGRATOR)
MANAGER = principal(Role.PROJECT_MANAGER, sub="u-manager")
INTEGRATOR_MANAGER = principal(Role.PROJECT_MANAGER, company=INTEGRATOR, sub="u-integ")


@pytest.fixture(params=["memory", "dynamodb"])
def any_store(request: pytest.FixtureRequest) -> Store:
    """The in-memory store, and the DynamoDB store on the process's local stack (tables
    emptied between tests), as in test_expiry."""
    if request.param == "memory":
        store: Store = InMemoryStore()
    else:
        request.getfixturevalue("stack")
        from chalicelib.store.repository import DynamoStore  # noqa: PLC0415

        store = DynamoStore()
    uow = store.unit_of_work()
    uow.put_project(PROJECT)
    for c in (ALICE, BOB, CAROL):
        uow.create_contact(c)
    uow.commit()
    return store


def seed(store: Store, *grants: Grant) -> None:
    uow = store.unit_of_work()
    for g in grants:
        uow.create_grant(g)
    uow.commit()


def due_in(hours: float) -> str:
    return iso(utc_now() + timedelta(hours=hours))


def actions(store: Store) -> list[str]:
    entries = store.activity(PROJECT.project_id, None, 100, None).items
    return sorted(e.action for e in entries)


def opened(store: Store, workflows: RecordingWorkflows, events: RecordingEvents) -> Review:
    seed(
        store,
        grant(PROJECT, ALICE),
        grant(PROJECT, BOB),
        grant(PROJECT, CAROL, granted_by_company_id=INTEGRATOR),
        grant(PROJECT, contact("dave"), S.ACTIVATION_PENDING),
    )
    return ReviewService(store, workflows, events).open(MANAGER, PROJECT.project_id, due_in(1))


# --- opening ----------------------------------------------------------------------------------


@pytest.mark.parametrize("hours", [-1, 0, MAX_REVIEW_AHEAD.days * 24 + 1])
def test_a_deadline_must_be_in_the_future_and_at_most_90_days_ahead(hours):
    with pytest.raises(ValidationFailed) as raised:
        valid_due_at(due_in(hours))
    assert [e.field for e in raised.value.errors] == ["due_at"]


def test_a_review_lists_every_activated_grant_and_is_the_only_open_one(any_store: Store) -> None:
    # Given activated grants and one being activated
    workflows, events = RecordingWorkflows(), RecordingEvents()

    # When a manager of the customer company opens a review
    review = opened(any_store, workflows, events)

    # Then it lists the activated grants only, is stored with them, and is announced
    assert sorted(i.contact_id for i in review.items) == ["alice", "bob", "carol"]
    stored = any_store.get_review(PROJECT.project_id, review.review_id)
    assert stored is not None
    assert stored.status == "open"
    assert sorted(i.contact_id for i in stored.items) == ["alice", "bob", "carol"]
    assert [r.review_id for r in any_store.reviews_of_project(PROJECT.project_id)] == [
        review.review_id
    ]
    assert actions(any_store) == ["review.opened"]
    assert [kind for kind, _ in events.published] == ["AccessReviewOpened"]

    # And a second review while this one is open is a 409
    with pytest.raises(Conflict):
        ReviewService(any_store, workflows, events).open(MANAGER, PROJECT.project_id, due_in(2))


def test_only_managers_of_the_customer_company_or_platform_admins_open_a_review() -> None:
    store = InMemoryStore()
    store.seed(PROJECT)
    service = ReviewService(store, RecordingWorkflows(), RecordingEvents())
    for who in (INTEGRATOR_MANAGER, principal(Role.CONSOLE_USER)):
        with pytest.raises(Forbidden):
            service.open(who, PROJECT.project_id, due_in(1))
    admin = principal(Role.PLATFORM_ADMIN, company=OTHER)
    assert service.open(admin, PROJECT.project_id, due_in(1)).status == "open"


# --- deciding ---------------------------------------------------------------------------------


def test_revoke_starts_the_removal_at_once_and_keep_changes_nothing(any_store: Store) -> None:
    workflows, events = RecordingWorkflows(), RecordingEvents()
    review = opened(any_store, workflows, events)
    service = ReviewService(any_store, workflows, events)

    # When a manager revokes alice and keeps bob
    revoked = service.decide(MANAGER, PROJECT.project_id, review.review_id, "alice", "revoke")
    kept = service.decide(MANAGER, PROJECT.project_id, review.review_id, "bob", "keep")

    # Then alice's removal started (actor the manager, reason review); bob stays activated
    assert (revoked.decision, revoked.decided_by) == ("revoke", "u-manager")
    assert kept.decision == "keep"
    alice = any_store.get_grant(PROJECT.project_id, "alice")
    assert alice is not None
    assert alice.status is S.DELETION_PENDING
    assert [(kind, g.contact_id) for kind, g in workflows.starts] == [("removal", "alice")]
    removal = [
        e
        for e in any_store.activity(PROJECT.project_id, "alice", 10, None).items
        if e.action == "grant.removal_requested"
    ]
    assert removal[0].detail["reason"] == "review"
    assert removal[0].actor.type is ActorType.USER
    bob = any_store.get_grant(PROJECT.project_id, "bob")
    assert bob is not None
    assert bob.status is S.ACTIVATED
    stored = any_store.get_review(PROJECT.project_id, review.review_id)
    assert stored is not None
    assert {i.contact_id: i.decision for i in stored.items} == {
        "alice": "revoke",
        "bob": "keep",
        "carol": None,
    }

    # And a decision is final: the same again answers the same, another one is a 409
    again = service.decide(MANAGER, PROJECT.project_id, review.review_id, "bob", "keep")
    assert again.decision == "keep"
    with pytest.raises(Conflict):
        service.decide(MANAGER, PROJECT.project_id, review.review_id, "bob", "revoke")


def test_a_decision_needs_the_right_to_remove_that_grant(any_store: Store) -> None:
    workflows, events = RecordingWorkflows(), RecordingEvents()
    review = opened(any_store, workflows, events)
    service = ReviewService(any_store, workflows, events)
    # The integrator's manager may not decide on a grant the customer company gave (rule 2) ...
    with pytest.raises(Forbidden):
        service.decide(INTEGRATOR_MANAGER, PROJECT.project_id, review.review_id, "alice", "keep")
    # ... but may on its own contact's grant
    item = service.decide(INTEGRATOR_MANAGER, PROJECT.project_id, review.review_id, "carol", "keep")
    assert item.decision == "keep"
    with pytest.raises(NotFound):
        service.decide(MANAGER, PROJECT.project_id, review.review_id, "dave", "keep")


def test_revoking_a_grant_removed_meanwhile_records_the_decision_only(any_store: Store) -> None:
    # Given a review item whose grant was removed (and given again) since the review opened
    workflows, events = RecordingWorkflows(), RecordingEvents()
    review = opened(any_store, workflows, events)
    again = grant(PROJECT, ALICE, lifecycle_id="p1-alice-L2")
    uow = any_store.unit_of_work()
    current = any_store.get_grant(PROJECT.project_id, "alice")
    assert current is not None
    uow.transition_grant(current, again)
    uow.commit()

    # When the reviewed grant is revoked
    item = ReviewService(any_store, workflows, events).decide(
        MANAGER, PROJECT.project_id, review.review_id, "alice", "revoke"
    )

    # Then the decision is recorded; the new grant is not the one reviewed and stays
    assert item.decision == "revoke"
    assert workflows.starts == []
    alice = any_store.get_grant(PROJECT.project_id, "alice")
    assert alice is not None
    assert alice.status is S.ACTIVATED


# --- the deadline -----------------------------------------------------------------------------


def test_at_the_deadline_undecided_grants_are_removed_and_the_review_closes(any_store: Store):
    workflows, events = RecordingWorkflows(), RecordingEvents()
    review = opened(any_store, workflows, events)
    service = ReviewService(any_store, workflows, events)
    service.decide(MANAGER, PROJECT.project_id, review.review_id, "alice", "keep")
    # bob's grant was removed meanwhile (its item stays undecided)
    uow = any_store.unit_of_work()
    bob = any_store.get_grant(PROJECT.project_id, "bob")
    assert bob is not None
    removing = grant(PROJECT, BOB, S.DELETION_PENDING, lifecycle_id="p1-bob-R1")
    uow.transition_grant(bob, removing)
    uow.commit()
    job = ReviewDeadlineJob(any_store, workflows, events)

    # Before the deadline nothing happens
    assert job.run().reviews_closed == 0

    # When the job runs after the deadline
    report = job.run(utc_now() + timedelta(hours=2))

    # Then carol's undecided grant is being removed (system, review_expired), alice kept, bob
    # left to the removal already under way, and the review closed, once
    assert (report.removals_started, report.reviews_closed) == (1, 1)
    assert [(k, g.contact_id) for k, g in workflows.starts] == [("removal", "carol")]
    carol = [
        e
        for e in any_store.activity(PROJECT.project_id, "carol", 10, None).items
        if e.action == "grant.removal_requested"
    ]
    assert carol[0].detail["reason"] == "review_expired"
    assert carol[0].actor.type is ActorType.SYSTEM
    stored = any_store.get_review(PROJECT.project_id, review.review_id)
    assert stored is not None
    assert stored.status == "closed"
    assert stored.closed_at
    assert any_store.reviews_due_by(iso(utc_now() + timedelta(days=1))) == []
    assert [kind for kind, _ in events.published][-1] == "AccessReviewClosed"
    assert job.run(utc_now() + timedelta(hours=3)).reviews_closed == 0

    # And the project may open the next review
    assert service.open(MANAGER, PROJECT.project_id, due_in(1)).status == "open"


def test_two_deadline_jobs_at_the_same_time_remove_each_grant_once(any_store: Store) -> None:
    workflows, events = RecordingWorkflows(), RecordingEvents()
    opened(any_store, workflows, events)
    jobs = [ReviewDeadlineJob(any_store, workflows, events) for _ in range(2)]
    both_read = threading.Barrier(2)
    read = any_store.reviews_due_by

    def reads_then_waits(until: str) -> list[Review]:
        found = read(until)
        both_read.wait(timeout=10)
        return found

    any_store.reviews_due_by = reads_then_waits  # type: ignore[method-assign]
    later = utc_now() + timedelta(hours=2)
    reports = []
    threads = [threading.Thread(target=lambda j=j: reports.append(j.run(later))) for j in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sum(r.removals_started for r in reports) == 3
    assert sorted(g.contact_id for _, g in workflows.starts) == ["alice", "bob", "carol"]
    assert sum(r.reviews_closed for r in reports) == 1
    assert actions(any_store).count("review.closed") == 1
    assert actions(any_store).count("grant.removal_requested") == 3
    assert [kind for kind, _ in events.published].count("AccessReviewClosed") == 1


def test_the_deadline_waits_for_an_activation_still_finishing() -> None:
    store, workflows, events = InMemoryStore(), RecordingWorkflows(), RecordingEvents()
    store.seed(PROJECT, ALICE, BOB, CAROL)
    review = opened(store, workflows, events)
    workflows.executions["p1-alice-L1"] = "RUNNING"
    job = ReviewDeadlineJob(store, workflows, events)
    first = job.run(utc_now() + timedelta(hours=2))
    assert (first.waiting_for_activation, first.reviews_closed) == (1, 0)
    workflows.executions["p1-alice-L1"] = "SUCCEEDED"
    second = job.run(utc_now() + timedelta(hours=2))
    assert (second.removals_started, second.reviews_closed) == (1, 1)
    stored = store.get_review(PROJECT.project_id, review.review_id)
    assert stored is not None
    assert stored.status == "closed"


def test_a_review_that_loses_to_one_opened_meanwhile_leaves_nothing_behind(any_store: Store):
    # Given an open review, and a second request that read "no open review" a moment before
    workflows, events = RecordingWorkflows(), RecordingEvents()
    first = opened(any_store, workflows, events)
    before = snapshot_of_reviews(any_store)
    any_store.reviews_of_project = lambda project_id: []  # type: ignore[method-assign]

    # When it opens its own / Then 409, and none of its items (written ahead) is left
    with pytest.raises(Conflict):
        ReviewService(any_store, workflows, events).open(MANAGER, PROJECT.project_id, due_in(2))
    assert snapshot_of_reviews(any_store) == before
    assert len(before) == 1 + len(first.items)
    assert actions(any_store) == ["review.opened"]


def snapshot_of_reviews(store: Store) -> list[str]:
    """Every review and review item the store holds (keys), in the DynamoDB store's table."""
    if isinstance(store, InMemoryStore):
        reviews = store._reviews.values()
        rows = [f"review#{r.review_id}" for r in reviews]
        rows += [f"reviewitem#{r.review_id}#{i.contact_id}" for r in reviews for i in r.items]
        return sorted(rows)
    from chalicelib.store.tables import GovernanceItem  # noqa: PLC0415

    stored = GovernanceItem.query(f"project#{PROJECT.project_id}", consistent_read=True)
    return sorted(row.sk for row in stored if row.sk.startswith(("review#", "reviewitem#")))
