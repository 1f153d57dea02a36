"""Access requests (rule 11): asking, deciding and the TTL expiry job, against the in-memory store
and the DynamoDB store on the local stack's moto (its pending and due indexes included)."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from chalicelib.domain.access_requests import AccessRequestExpiryJob, AccessRequestService
from chalicelib.domain.grants import GrantService
from chalicelib.domain.models import AccessRequest, ContactStatus, GrantStatus, Role, utc_now
from chalicelib.domain.ports import Store
from chalicelib.errors import Conflict, ContactOffboarded, Forbidden
from tests.fakes.adapters import RecordingEvents, RecordingMailer, RecordingWorkflows
from tests.fakes.builders import INTEGRATOR, contact, grant, principal, project
from tests.fakes.store import InMemoryStore

PROJECT = project()
ALICE = contact("alice")  # a console user of the customer company
CAROL = contact("carol", INTEGRATOR)
ALICE_USER = principal(Role.CONSOLE_USER, sub="alice")
CAROL_USER = principal(Role.CONSOLE_USER, company=INTEGRATOR, sub="carol")
MANAGER = principal(Role.PROJECT_MANAGER, sub="u-manager")
INTEGRATOR_MANAGER = principal(Role.SUPERVISOR, company=INTEGRATOR, sub="u-integ")
TTL = timedelta(hours=1.5)


@pytest.fixture(params=["memory", "dynamodb"])
def any_store(request: pytest.FixtureRequest) -> Store:
    if request.param == "memory":
        store: Store = InMemoryStore()
    else:
        request.getfixturevalue("stack")
        from chalicelib.store.repository import DynamoStore  # noqa: PLC0415

        store = DynamoStore()
    uow = store.unit_of_work()
    uow.put_project(PROJECT)
    for c in (ALICE, CAROL):
        uow.create_contact(c)
    uow.commit()
    return store


class World:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.workflows, self.mailer, self.events = (
            RecordingWorkflows(),
            RecordingMailer(),
            RecordingEvents(),
        )
        grants = GrantService(store, self.workflows, self.mailer, self.events, reset_url="r")
        self.service = AccessRequestService(store, grants, self.mailer, self.events, TTL)

    def actions(self) -> list[str]:
        return sorted(e.action for e in self.store.activity("p1", None, 100, None).items)


def test_a_console_user_asks_once_and_expires_after_the_ttl(any_store: Store) -> None:
    world = World(any_store)
    asked = world.service.create(ALICE_USER, "p1", "I support the import team")
    assert (asked.status, asked.contact_id, asked.company_id) == ("pending", "alice", "acme")
    assert asked.expires_at > asked.requested_at
    assert [r.request_id for r in any_store.access_requests_of_project("p1", "pending")] == [
        asked.request_id
    ]
    assert world.actions() == ["access_request.created"]
    assert [kind for kind, _ in world.events.published] == ["AccessRequested"]
    # A second pending request of the same contact is a 409
    with pytest.raises(Conflict):
        world.service.create(ALICE_USER, "p1", "again")
    # Only console users of the project's companies may ask
    with pytest.raises(Forbidden):
        world.service.create(principal(Role.PROJECT_MANAGER, company="other"), "p1", "x")


def test_asking_with_a_grant_is_a_409(any_store: Store) -> None:
    uow = any_store.unit_of_work()
    uow.create_grant(grant(PROJECT, ALICE))
    uow.commit()
    with pytest.raises(Conflict):
        World(any_store).service.create(ALICE_USER, "p1", "please")


def test_approval_starts_the_activation_with_the_approver_as_requester(any_store: Store) -> None:
    world = World(any_store)
    asked = world.service.create(ALICE_USER, "p1", "I support the import team")
    expires = (utc_now() + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")

    approved = world.service.approve(MANAGER, "p1", asked.request_id, expires)

    assert (approved.status, approved.decided_by) == ("approved", "u-manager")
    granted = any_store.get_grant("p1", "alice")
    assert granted is not None
    assert granted.status is GrantStatus.ACTIVATION_PENDING
    assert granted.requested_by == "u-manager"
    assert granted.expires_at == expires.replace("Z", ".000Z")
    assert [(k, g.contact_id) for k, g in world.workflows.starts] == [("activation", "alice")]
    assert "access_request.approved" in world.actions()
    assert [(m.kind, m.to) for m in world.mailer.sent] == [("access_request_decision", ALICE.email)]
    assert any_store.access_requests_of_project("p1", "pending") == []
    with pytest.raises(Conflict):
        world.service.deny(MANAGER, "p1", asked.request_id, None)
    # The contact may not ask again while it has the grant
    with pytest.raises(Conflict):
        world.service.create(ALICE_USER, "p1", "again")


def test_deny_records_and_emails_the_decision(any_store: Store) -> None:
    world = World(any_store)
    asked = world.service.create(ALICE_USER, "p1", "please")
    denied = world.service.deny(MANAGER, "p1", asked.request_id, "not this quarter")
    assert denied.status == "denied"
    assert any_store.get_grant("p1", "alice") is None
    stored = any_store.get_access_request("p1", asked.request_id)
    assert stored is not None
    assert stored.status == "denied"
    assert [kind for kind, _ in world.events.published][-1] == "AccessRequestDecided"
    assert [m.kind for m in world.mailer.sent] == ["access_request_decision"]
    # Decided: the contact may ask again
    assert world.service.create(ALICE_USER, "p1", "please, now").status == "pending"


def test_who_decides(any_store: Store) -> None:
    world = World(any_store)
    asked = world.service.create(ALICE_USER, "p1", "please")
    # The requester never decides their own request, even as a manager
    as_manager = principal(Role.PROJECT_MANAGER, Role.CONSOLE_USER, sub="alice")
    with pytest.raises(Forbidden):
        world.service.approve(as_manager, "p1", asked.request_id, None)
    # A manager of the other project company may not decide for this company's contacts
    with pytest.raises(Forbidden):
        world.service.approve(INTEGRATOR_MANAGER, "p1", asked.request_id, None)
    with pytest.raises(Forbidden):
        world.service.deny(INTEGRATOR_MANAGER, "p1", asked.request_id, None)
    # ... nor see them; it sees its own company's
    carols = world.service.create(CAROL_USER, "p1", "me too")
    seen = world.service.list(INTEGRATOR_MANAGER, "p1")
    assert [r.request_id for r in seen] == [carols.request_id]
    assert [r.request_id for r in world.service.list(ALICE_USER, "p1")] == [asked.request_id]
    assert len(world.service.list(MANAGER, "p1", "pending")) == 1
    assert any_store.get_grant("p1", "alice") is None


def test_a_contact_offboarded_before_the_decision_cannot_be_approved(any_store: Store) -> None:
    world = World(any_store)
    asked = world.service.create(ALICE_USER, "p1", "please")
    uow = any_store.unit_of_work()
    uow.change_contact_status(ALICE.contact_id, ContactStatus.OFFBOARDED)
    uow.commit()
    with pytest.raises(ContactOffboarded):
        world.service.approve(MANAGER, "p1", asked.request_id, None)
    assert any_store.get_grant("p1", "alice") is None
    stored = any_store.get_access_request("p1", asked.request_id)
    assert stored is not None
    assert stored.status == "pending"


def test_two_expiry_jobs_at_once_expire_a_request_once(any_store: Store) -> None:
    world = World(any_store)
    asked = world.service.create(ALICE_USER, "p1", "please")
    world.service.create(CAROL_USER, "p1", "me too")
    jobs = [AccessRequestExpiryJob(any_store, world.events) for _ in range(2)]
    both_read = threading.Barrier(2)
    read = any_store.access_requests_due_by

    def reads_then_waits(until: str) -> list[AccessRequest]:
        found = read(until)
        both_read.wait(timeout=10)
        return found

    any_store.access_requests_due_by = reads_then_waits  # type: ignore[method-assign]
    at = utc_now() + TTL + timedelta(seconds=1)
    reports = []
    threads = [threading.Thread(target=lambda j=j: reports.append(j.run(at))) for j in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    any_store.access_requests_due_by = read  # type: ignore[method-assign]
    assert sum(r.expired for r in reports) == 2  # both requests, each once
    assert world.actions().count("access_request.expired") == 2
    stored = any_store.get_access_request("p1", asked.request_id)
    assert stored is not None
    assert stored.status == "expired"
    with pytest.raises(Conflict):
        world.service.approve(MANAGER, "p1", asked.request_id, None)
    assert AccessRequestExpiryJob(any_store, world.events).run(at).expired == 0


def test_a_request_is_not_expired_before_its_ttl(any_store: Store) -> None:
    world = World(any_store)
    world.service.create(ALICE_USER, "p1", "please")
    job = AccessRequestExpiryJob(any_store, world.events)
    assert job.run(utc_now() + TTL - timedelta(minutes=1)).expired == 0
