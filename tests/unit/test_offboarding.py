"""Offboarding, company change and reactivation (rule 9, SPEC §4), against the in-memory store
and the DynamoDB store on moto: every grant goes to removal exactly once, whatever races it."""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest

from chalicelib.domain import offboarding as module
from chalicelib.domain.contacts import ContactService, ContactSpec
from chalicelib.domain.grant_lifecycle import GrantLifecycle, Move
from chalicelib.domain.grant_steps import GrantJob, GrantSteps
from chalicelib.domain.grants import AddGrant, GrantService
from chalicelib.domain.models import (
    EVERY_ENTRY,
    Actor,
    ActorType,
    Contact,
    ContactStatus,
    Grant,
    GrantError,
    GrantStatus,
    Principal,
    Project,
    Role,
)
from chalicelib.domain.offboarding import OffboardingService, Revocation
from chalicelib.domain.ports import Store
from chalicelib.errors import Conflict, ContactOffboarded
from tests.fakes.adapters import FakeJira, RecordingEvents, RecordingMailer, RecordingWorkflows
from tests.fakes.builders import CUSTOMER, INTEGRATOR, OTHER, contact, grant, principal, project
from tests.fakes.store import InMemoryStore

S = GrantStatus
HR = Actor(type=ActorType.HR, id="evt-1")
SCIM = Actor(type=ActorType.SCIM, id="tok-1")
ALICE = contact("alice")
OFFBOARDED_ERROR = GrantError("ContactOffboarded", "the contact was offboarded")
PROJECTS = [project(f"p{i}", organization_id=f"o{i}") for i in range(5)]


class RecordingFollowUps:
    def __init__(self) -> None:
        self.scheduled: list[tuple[Revocation, int]] = []

    def schedule(self, revocation: Revocation, delay_seconds: int) -> None:
        self.scheduled.append((revocation, delay_seconds))


@pytest.fixture(params=["memory", "dynamodb"])
def any_store(request: pytest.FixtureRequest) -> Store:
    """As in test_expiry: the DynamoDB store on the process's local stack, tables emptied."""
    if request.param == "memory":
        return InMemoryStore()
    request.getfixturevalue("stack")
    from chalicelib.store.repository import DynamoStore  # noqa: PLC0415

    return DynamoStore()


@pytest.fixture
def follow_ups() -> RecordingFollowUps:
    return RecordingFollowUps()


@pytest.fixture
def service(
    any_store: Store,
    workflows: RecordingWorkflows,
    events: RecordingEvents,
    follow_ups: RecordingFollowUps,
) -> OffboardingService:
    return OffboardingService(any_store, workflows, events, follow_ups)


def seed(store: Store, *records: Project | Contact | Grant) -> None:
    for record in records:
        uow = store.unit_of_work()
        if isinstance(record, Grant):
            uow.create_grant(record)
        elif isinstance(record, Project):
            uow.put_project(record)
        else:
            uow.create_contact(record)
        uow.commit()


def removal_entries(store: Store, project_id: str) -> list[tuple[str, str, dict[str, object]]]:
    return [
        (e.action, e.actor.type.value, e.detail)
        for e in store.all_activity(project_id, None, EVERY_ENTRY)
    ]


def test_offboarding_removes_every_grant_once_and_marks_the_contact(
    any_store: Store, service: OffboardingService, workflows: RecordingWorkflows, events
) -> None:
    # Given a contact with grants on five projects, in every status a grant can be in
    statuses = [
        S.ACTIVATED,
        S.ACTIVATION_FAILED,
        S.DELETION_FAILED,
        S.DELETION_PENDING,
        S.ACTIVATED,
    ]
    seed(any_store, *PROJECTS, ALICE)
    seed(any_store, *(grant(p, ALICE, s) for p, s in zip(PROJECTS, statuses, strict=True)))

    # When HR offboards it
    result = service.offboard_contact(ALICE, HR)

    # Then the contact is offboarded, one event says so, and every grant is being removed
    assert result.changed
    assert result.done
    assert any_store.get_contact("alice").status is ContactStatus.OFFBOARDED  # type: ignore[union-attr]
    assert [e["contact_id"] for e in events.of_type("ContactOffboarded")] == ["alice"]
    assert sorted(result.removals_started) == ["p0", "p1", "p2", "p4"]
    assert result.already_removing == ["p3"]
    assert {g.status for g in any_store.grants_of_contact("alice")} == {S.DELETION_PENDING}
    assert len(workflows.starts) == 4
    # ... each with one removal_requested (actor hr, reason offboarded) and contact.offboarded
    for p in ("p0", "p1", "p2", "p4"):
        entries = removal_entries(any_store, p)
        actions = sorted(a for a, _, _ in entries)
        assert actions == ["contact.offboarded", "grant.removal_requested"]
        removal = next(e for e in entries if e[0] == "grant.removal_requested")
        assert removal[1] == "hr"
        assert removal[2]["reason"] == "offboarded"


def test_a_duplicate_or_a_concurrent_source_changes_nothing_more(
    any_store: Store, service: OffboardingService, workflows: RecordingWorkflows, events
) -> None:
    # Given a contact with grants on five projects
    seed(any_store, *PROJECTS, ALICE)
    seed(any_store, *(grant(p, ALICE) for p in PROJECTS))

    # When HR (three times) and SCIM offboard it at the same moment
    def run(actor: Actor) -> None:
        service.offboard_contact(ALICE, actor)

    threads = [threading.Thread(target=run, args=(a,)) for a in (HR, HR, HR, SCIM)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    service.offboard_contact(any_store.get_contact("alice"), HR)  # type: ignore[arg-type]

    # Then each grant has exactly one removal_requested, one execution, one event in all
    for p in PROJECTS:
        actions = [a for a, _, _ in removal_entries(any_store, p.project_id)]
        assert actions.count("grant.removal_requested") == 1
        assert actions.count("contact.offboarded") == 1
    assert len(workflows.starts) == 5
    assert len(events.of_type("ContactOffboarded")) == 1


def test_a_pending_activation_is_removed_once_it_settled(
    any_store: Store,
    service: OffboardingService,
    workflows: RecordingWorkflows,
    follow_ups: RecordingFollowUps,
    events: RecordingEvents,
) -> None:
    # Given a grant still being activated
    seed(any_store, PROJECTS[0], ALICE)
    seed(any_store, grant(PROJECTS[0], ALICE, S.ACTIVATION_PENDING))

    # When the contact is offboarded
    result = service.offboard_contact(ALICE, HR, reason="offboarded")

    # Then the round waits for it and schedules a follow-up
    assert result.waiting == ["p0"]
    assert not result.done
    [(revocation, delay)] = follow_ups.scheduled
    assert (revocation.round, delay) == (1, module.WAIT_SECONDS)

    # When its completion step runs, it refuses: the run undoes and fails the grant
    steps = GrantSteps(any_store, FakeJira(), RecordingMailer(), events, "https://portal")
    pending = any_store.get_grant("p0", "alice")
    assert pending is not None
    with pytest.raises(ContactOffboarded):
        steps.complete_activation(replace(GrantJob.for_grant(pending), account_id="acc-1"))
    GrantLifecycle(any_store, events).fail(pending, OFFBOARDED_ERROR)

    # And the follow-up round removes the failed grant, actor hr, reason offboarded
    follow = service.continue_revocation(revocation)
    assert follow.removals_started == ["p0"]
    assert follow.done
    removal = next(e for e in removal_entries(any_store, "p0") if e[0] == "grant.removal_requested")
    assert removal[1:] == ("hr", {**removal[2], "reason": "offboarded"})


def test_a_round_is_bounded_and_the_rest_follows(
    any_store: Store,
    service: OffboardingService,
    follow_ups: RecordingFollowUps,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given rounds of two grants and a contact with five
    monkeypatch.setattr(module, "ROUND_SIZE", 2)
    seed(any_store, *PROJECTS, ALICE)
    seed(any_store, *(grant(p, ALICE) for p in PROJECTS))

    # When it is offboarded, and each follow-up runs as the queue delivers it
    result = service.offboard_contact(ALICE, HR)
    rounds = 1
    while follow_ups.scheduled:
        revocation, delay = follow_ups.scheduled.pop(0)
        assert delay == 0
        result = service.continue_revocation(revocation)
        rounds += 1

    # Then three rounds removed them all
    assert rounds == 3
    assert result.done
    assert {g.status for g in any_store.grants_of_contact("alice")} == {S.DELETION_PENDING}


def test_offboarding_an_unknown_or_reactivated_contact_stops(
    any_store: Store, service: OffboardingService
) -> None:
    # Given an offboarded contact reactivated (SCIM active: true) before a follow-up round
    seed(any_store, PROJECTS[0], ALICE)
    service.offboard_contact(ALICE, SCIM)
    again = service.reactivate_contact(any_store.get_contact("alice"), SCIM)  # type: ignore[arg-type]
    assert again.status is ContactStatus.ACTIVE
    seed(any_store, grant(PROJECTS[0], ALICE))  # granted again after reactivation

    # When the old follow-up round arrives
    revocation = Revocation("alice", SCIM, "offboarding", "offboarded", "tok", "2026-01-01", 1)
    result = OffboardingService(
        any_store, RecordingWorkflows(), RecordingEvents(), RecordingFollowUps()
    ).continue_revocation(revocation)

    # Then the new grant stays
    assert result.removals_started == []
    assert any_store.get_grant("p0", "alice").status is S.ACTIVATED  # type: ignore[union-attr]


def test_an_offboarded_contact_cannot_be_granted_even_in_a_race(any_store: Store) -> None:
    # Given a manager adding a grant who read the contact while it was still active
    seed(any_store, PROJECTS[0], ALICE)
    grants = GrantService(
        any_store, RecordingWorkflows(), RecordingMailer(), RecordingEvents(), "https://reset"
    )
    manager = principal(Role.PROJECT_MANAGER)
    reads = any_store.read_for_grant("p0", contact_id="alice")
    uow = any_store.unit_of_work()
    uow.change_contact_status("alice", ContactStatus.OFFBOARDED)
    uow.commit()
    original = any_store.read_for_grant
    calls = iter([reads])

    def stale_then_fresh(*args, **kwargs):  # type: ignore[no-untyped-def]
        return next(calls, None) or original(*args, **kwargs)

    any_store.read_for_grant = stale_then_fresh  # type: ignore[method-assign]

    # When the grant commits after the offboarding: it loses, reads again, gets a 422
    with pytest.raises(ContactOffboarded):
        grants.add(manager, "p0", AddGrant(contact_id="alice"))
    assert any_store.get_grant("p0", "alice") is None


def test_retrying_a_failed_grant_of_an_offboarded_contact_is_refused(any_store: Store) -> None:
    # Given a failed activation of a contact offboarded since
    seed(any_store, PROJECTS[0], replace(ALICE, status=ContactStatus.OFFBOARDED))
    seed(any_store, grant(PROJECTS[0], ALICE, S.ACTIVATION_FAILED))
    grants = GrantService(
        any_store, RecordingWorkflows(), RecordingMailer(), RecordingEvents(), "https://reset"
    )
    manager: Principal = principal(Role.PROJECT_MANAGER)

    # When a manager retries it, or adds it again
    with pytest.raises(ContactOffboarded):
        grants.retry(manager, "p0", "alice")
    with pytest.raises(ContactOffboarded):
        grants.add(manager, "p0", AddGrant(contact_id="alice"))

    # Then it stays failed
    assert any_store.get_grant("p0", "alice").status is S.ACTIVATION_FAILED  # type: ignore[union-attr]


def test_company_change_keeps_grants_of_the_new_company_and_external_links(
    any_store: Store, service: OffboardingService, workflows: RecordingWorkflows
) -> None:
    # Given a contact of the customer, linked as an external of OTHER, with grants on:
    # a customer+integrator project, an OTHER project, and a project of a third company
    mine = project("mine", organization_id="o1")  # customer CUSTOMER, integrator INTEGRATOR
    others = project("theirs", organization_id="o2", customer_company_id=OTHER)
    third = project("third", organization_id="o3", customer_company_id="third-co")
    third = replace(third, integrator_company_id=None)
    bob = contact("bob", external_for=[OTHER])
    seed(any_store, mine, others, third, bob)
    seed(any_store, *(grant(p, bob) for p in (mine, others, third)))

    # When HR moves it to the integrator company
    result = service.change_company(bob, INTEGRATOR, HR, origin="evt-9")

    # Then its company changes; it keeps the integrator's project and the external one
    stored = any_store.get_contact("bob")
    assert stored is not None
    assert stored.company_id == INTEGRATOR
    assert sorted(result.kept) == ["mine", "theirs"]
    assert result.removals_started == ["third"]
    removal = next(
        e for e in removal_entries(any_store, "third") if e[0] == "grant.removal_requested"
    )
    assert removal[1] == "hr"
    assert removal[2]["reason"] == "company_changed"
    assert removal[2]["company_id"] == INTEGRATOR


def test_company_change_to_none_keeps_only_external_links(
    any_store: Store, service: OffboardingService
) -> None:
    # Given a customer contact linked as external of OTHER with grants on both companies' projects
    others = project("theirs", organization_id="o2", customer_company_id=OTHER)
    bob = contact("bob", external_for=[OTHER])
    seed(any_store, PROJECTS[0], others, bob)
    seed(any_store, grant(PROJECTS[0], bob), grant(others, bob))

    # When it leaves every company
    result = service.change_company(bob, None, HR)

    # Then only the external link's project keeps its grant
    assert (result.kept, result.removals_started) == (["theirs"], ["p0"])
    assert any_store.get_contact("bob").company_id is None  # type: ignore[union-attr]


def test_a_removal_that_failed_during_the_revocation_is_not_looped(
    any_store: Store,
    service: OffboardingService,
    events: RecordingEvents,
    workflows: RecordingWorkflows,
) -> None:
    # Given an offboarding whose removal of p0 then failed (Jira rejected it)
    seed(any_store, PROJECTS[0], ALICE)
    seed(any_store, grant(PROJECTS[0], ALICE))
    service.offboard_contact(ALICE, HR)
    removing = any_store.get_grant("p0", "alice")
    assert removing is not None
    GrantLifecycle(any_store, events).apply(
        removing, Move(S.DELETION_FAILED, error=OFFBOARDED_ERROR)
    )
    workflows.executions[str(removing.lifecycle_id)] = "SUCCEEDED"

    # When a follow-up round of that offboarding looks again
    revocation = Revocation("alice", HR, "offboarding", "offboarded", "evt", "2000-01-01", 1)
    revocation = replace(revocation, started_at=removing.updated_at)
    result = service.continue_revocation(revocation)

    # Then it is reported, not retried forever (the GrantFailed event alerts)
    assert result.failed == ["p0"]
    assert result.removals_started == []


def test_grants_of_other_contacts_and_companies_are_untouched(
    any_store: Store, service: OffboardingService
) -> None:
    carol = contact("carol", company=CUSTOMER)
    seed(any_store, PROJECTS[0], ALICE, carol)
    seed(any_store, grant(PROJECTS[0], ALICE), grant(PROJECTS[0], carol))
    service.offboard_contact(ALICE, HR)
    assert any_store.get_grant("p0", "carol").status is S.ACTIVATED  # type: ignore[union-attr]


def test_a_directory_sync_that_read_the_contact_before_its_offboarding_does_not_undo_it(
    any_store: Store, service: OffboardingService, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the console's directory sync read alice while she was active
    seed(any_store, ALICE)
    read_before = any_store.get_contact("alice")
    # ... and HR offboarded her before the sync wrote
    service.offboard_contact(ALICE, HR)
    monkeypatch.setattr(any_store, "get_contact", lambda contact_id: read_before)

    # When the sync writes what it read (a new name)
    spec = ContactSpec(email=ALICE.email, name="Alice B", company_id=ALICE.company_id)
    with pytest.raises(Conflict):
        ContactService(any_store).put(principal(Role.SERVICE, company=None), "alice", spec)

    # Then she stays offboarded (the sync is told to send it again)
    monkeypatch.undo()
    assert any_store.get_contact("alice").status is ContactStatus.OFFBOARDED  # type: ignore[union-attr]
