"""Races and partial failures of the grant lifecycle found by adversarial testing (issue 10),
each replayed deterministically: the interleaving is forced at the exact read or call where
production timing put it, through the API use cases and the workflow steps together."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from chalicelib.domain.drift import check_drift
from chalicelib.domain.grant_lifecycle import GrantLifecycle
from chalicelib.domain.grant_steps import GrantJob, GrantSteps
from chalicelib.domain.grants import AddGrant, GrantService
from chalicelib.domain.models import Grant, GrantError, GrantStatus, Role
from chalicelib.errors import JiraUnavailable, StaleState
from tests.fakes.adapters import FakeJira, RecordingEvents, RecordingMailer, RecordingWorkflows
from tests.fakes.builders import CUSTOMER, OTHER, contact, principal, project
from tests.fakes.store import InMemoryStore

S = GrantStatus
PORTAL = "https://helpdesk.example/servicedesk/customer/portal/1"
PM = principal(Role.PROJECT_MANAGER, company=CUSTOMER, sub="u-pm")
ADMIN = principal(Role.PLATFORM_ADMIN, company=None, sub="u-admin")
ALICE = contact("alice")
ERIN = contact("erin", company=OTHER, external_for=[CUSTOMER], console_user=False)


class World:
    """One store and JSM shared by the API use cases and the workflow steps."""

    def __init__(self) -> None:
        self.store = InMemoryStore()
        self.jira = FakeJira()
        self.events = RecordingEvents()
        self.mailer = RecordingMailer()
        self.workflows = RecordingWorkflows()
        self.service = GrantService(
            self.store, self.workflows, self.mailer, self.events, reset_url="https://reset"
        )
        self.steps = GrantSteps(self.store, self.jira, self.mailer, self.events, PORTAL)
        self.projects = {}
        for project_id in ("pa", "pb"):  # two projects of acme on service desk 1
            organization = self.jira.create_organization(f"Project {project_id}")
            self.jira.attach_organization("1", organization.id)
            self.projects[project_id] = project(project_id, organization_id=organization.id)
        self.store.seed(*self.projects.values(), ALICE, ERIN)

    def grant(self, project_id: str, contact_id: str) -> Grant | None:
        return self.store.get_grant(project_id, contact_id)

    def job(self, project_id: str, contact_id: str) -> GrantJob:
        current = self.grant(project_id, contact_id)
        assert current is not None
        return GrantJob.for_grant(current)

    def activate(self, project_id: str, contact_id: str) -> None:
        """Run the activation workflow's steps as the state machine does."""
        job = self.job(project_id, contact_id)
        customer = self.steps.ensure_customer(job)
        job = GrantJob.from_event({**job.to_input(), "customer": customer})
        self.steps.add_to_service_desk(job)
        self.steps.add_to_organization(job)
        self.steps.complete_activation(job)
        self.workflows.executions[job.lifecycle_id] = "SUCCEEDED"

    def remove(self, project_id: str, contact_id: str) -> None:
        """Run the removal workflow's steps as the state machine does."""
        job = self.job(project_id, contact_id)
        self.steps.leave_organization(job)
        self.steps.leave_service_desk(job)
        self.steps.complete_removal(job)
        self.workflows.executions[job.lifecycle_id] = "SUCCEEDED"

    def activated(self, project_id: str, contact: Any) -> None:
        self.service.add(PM, project_id, AddGrant(email=contact.email))
        self.activate(project_id, contact.contact_id)


class Members:
    """The drift check's one JSM read, answered from the fake."""

    def __init__(self, jira: FakeJira) -> None:
        self._jira = jira

    def organization_members(self, organization_id: str) -> set[str]:
        return set(self._jira.organization_users[organization_id])


def once(action: Callable[[], object]) -> Callable[[], None]:
    done: list[bool] = []

    def run() -> None:
        if not done:
            done.append(True)
            action()

    return run


@pytest.fixture
def world() -> World:
    return World()


# --- an external's unlink vs its new grant on another project (rule 5) ------------------------


def test_a_grant_added_while_the_last_one_is_being_removed_keeps_the_external_link(
    world, monkeypatch
):
    # Given erin (another company's contact, linked to acme) with acme's only grant, on pa
    world.activated("pa", ERIN)
    world.service.remove(PM, "pa", ERIN.contact_id)
    job = world.job("pa", ERIN.contact_id)
    world.steps.leave_organization(job)
    world.steps.leave_service_desk(job)

    # When the removal, having found no other acme grant, is about to unlink her — and at that
    # very moment acme's manager adds her by email on pb
    original = world.store.grants_of_contact
    add_on_pb = once(lambda: world.service.add(PM, "pb", AddGrant(email=ERIN.email)))

    def listed_then_added(contact_id: str) -> list[Grant]:
        listed: list[Grant] = original(contact_id)
        add_on_pb()
        return listed

    monkeypatch.setattr(world.store, "grants_of_contact", listed_then_added)
    result = world.steps.complete_removal(job)

    # Then the unlink loses: erin stays linked, so her pb grant remains manageable by acme
    assert result == {"removed": True, "unlinked": False}
    assert CUSTOMER in world.store.get_contact(ERIN.contact_id).external_for
    assert world.grant("pb", ERIN.contact_id).status is S.ACTIVATION_PENDING
    monkeypatch.undo()
    world.activate("pb", ERIN.contact_id)
    world.service.remove(PM, "pb", ERIN.contact_id)  # acme's PM may remove it (no 403)
    world.service.get_grant(ADMIN, "pb", ERIN.contact_id)


def test_a_grant_added_just_after_the_unlink_links_the_external_again(world, monkeypatch):
    # Given erin's last acme grant, on pa, in its removal's last step
    world.activated("pa", ERIN)
    world.service.remove(PM, "pa", ERIN.contact_id)
    job = world.job("pa", ERIN.contact_id)

    # When acme's manager adds her by email on pb, having read her as linked, and the removal
    # unlinks her before that add commits
    original = world.store.get_grant
    finish_removal = once(lambda: world.steps.complete_removal(job))

    def removal_finishes_first(project_id: str, contact_id: str) -> Grant | None:
        if project_id == "pb":
            finish_removal()
        found: Grant | None = original(project_id, contact_id)
        return found

    monkeypatch.setattr(world.store, "get_grant", removal_finishes_first)
    world.service.add(PM, "pb", AddGrant(email=ERIN.email))
    monkeypatch.undo()

    # Then the add notices, links her again (recorded) and grants: nobody is left unmanageable
    assert CUSTOMER in world.store.get_contact(ERIN.contact_id).external_for
    assert world.grant("pb", ERIN.contact_id).status is S.ACTIVATION_PENDING
    pb = world.store.activity("pb", ERIN.contact_id, 10, None).items
    pa = world.store.activity("pa", ERIN.contact_id, 10, None).items
    assert "contact.external_unlinked" in [e.action for e in pa]
    assert [e.action for e in reversed(pb)] == ["contact.external_linked", "grant.requested"]


# --- one contact, one service desk, two projects (rule 4) -------------------------------------


def test_an_activation_during_a_slow_desk_removal_ends_on_the_desk(world, monkeypatch):
    # Given alice activated on pa (desk 1), and pa's removal under way
    world.activated("pa", ALICE)
    world.service.remove(PM, "pa", ALICE.contact_id)
    job = world.job("pa", ALICE.contact_id)
    world.steps.leave_organization(job)
    account = job.account_id

    # When pa's DELETE /servicedesk/1/customer is slow, and pb's activation of alice on the same
    # desk runs entirely while it is in flight (the DELETE lands last)
    original = world.jira.remove_from_service_desk

    def slow_delete(service_desk_id: str, account_id: str) -> None:
        world.activated("pb", ALICE)
        original(service_desk_id, account_id)

    monkeypatch.setattr(world.jira, "remove_from_service_desk", slow_delete)
    result = world.steps.leave_service_desk(job)
    world.steps.complete_removal(job)

    # Then the removal sees pb's grant after its call and puts the account back on the desk
    assert result == {"left": False, "shared_with": ["pb"]}
    assert world.grant("pb", ALICE.contact_id).status is S.ACTIVATED
    assert account in world.jira.desk_customers["1"]
    assert account in world.jira.organization_users[world.projects["pb"].organization_id]


def test_a_grant_created_before_the_desk_check_keeps_the_desk(world):
    # Given alice activated on pa, and pb's grant of alice just requested (not yet on the desk)
    world.activated("pa", ALICE)
    world.service.remove(PM, "pa", ALICE.contact_id)
    world.service.add(PM, "pb", AddGrant(contact_id=ALICE.contact_id))

    # When pa's removal runs
    world.remove("pa", ALICE.contact_id)

    # Then the desk is kept for pb, whose activation then completes on it
    world.activate("pb", ALICE.contact_id)
    account = world.grant("pb", ALICE.contact_id).jira_account_id
    assert account in world.jira.desk_customers["1"]


# --- partial failures must not lie (rule 4) ---------------------------------------------------


def test_a_customer_created_by_a_timed_out_call_counts_as_created(world):
    # Given alice's grant requested, and JSM applying the create but its answer timing out
    world.service.add(PM, "pa", AddGrant(contact_id=ALICE.contact_id))
    world.jira.lost_create_answers = 1
    job = world.job("pa", ALICE.contact_id)

    # When the step fails and Step Functions retries it
    with pytest.raises(JiraUnavailable):
        world.steps.ensure_customer(job)
    customer = world.steps.ensure_customer(job)

    # Then the retry, finding the account, still says this lifecycle created it
    assert customer["created"] is True
    job = GrantJob.from_event({**job.to_input(), "customer": customer})
    world.steps.add_to_service_desk(job)
    world.steps.add_to_organization(job)
    world.steps.complete_activation(job)
    stored = world.grant("pa", ALICE.contact_id)
    assert (stored.status, stored.account_created) == (S.ACTIVATED, True)
    assert [m.kind for m in world.mailer.sent] == ["activation"]


def test_an_existing_customer_is_not_called_created(world):
    # Given alice already has a JSM account (another service made it)
    world.jira.ensure_customer(ALICE.email, ALICE.name)
    world.service.add(PM, "pa", AddGrant(contact_id=ALICE.contact_id))

    # When her activation runs
    world.activate("pa", ALICE.contact_id)

    # Then no welcome email goes out
    assert world.grant("pa", ALICE.contact_id).account_created is False
    assert world.mailer.sent == []


def test_a_failed_activation_takes_back_what_it_added(world):
    # Given alice's activation added her to the desk, then failed on the organization step
    world.service.add(PM, "pa", AddGrant(contact_id=ALICE.contact_id))
    job = world.job("pa", ALICE.contact_id)
    job = GrantJob.from_event({**job.to_input(), "customer": world.steps.ensure_customer(job)})
    world.steps.add_to_service_desk(job)
    organization = world.projects["pa"].organization_id
    world.jira.organization_users[organization].add(str(job.account_id))  # half-applied

    # When the state machine compensates, then records the failure
    undone = world.steps.undo_activation(job)
    world.steps.fail(job, GrantError("JiraAuthError", "401"))

    # Then no access is left behind and the grant says failed
    assert undone == {"undone": True, "left": True, "shared_with": []}
    assert job.account_id not in world.jira.desk_customers["1"]
    assert job.account_id not in world.jira.organization_users[organization]
    assert world.grant("pa", ALICE.contact_id).status is S.ACTIVATION_FAILED


def test_the_take_back_keeps_a_desk_another_grant_holds(world):
    # Given alice activated on pb, and her activation on pa (same desk) failing
    world.activated("pb", ALICE)
    world.service.add(PM, "pa", AddGrant(contact_id=ALICE.contact_id))
    job = world.job("pa", ALICE.contact_id)
    job = GrantJob.from_event({**job.to_input(), "customer": world.steps.ensure_customer(job)})

    # When pa's run compensates
    undone = world.steps.undo_activation(job)

    # Then pb's desk membership stays
    assert undone == {"undone": True, "left": False, "shared_with": ["pb"]}
    assert job.account_id in world.jira.desk_customers["1"]


def test_the_drift_check_reports_what_a_failed_take_back_left(world):
    # Given a failed activation whose account is still in the organization (take-back failed)
    world.service.add(PM, "pa", AddGrant(contact_id=ALICE.contact_id))
    job = world.job("pa", ALICE.contact_id)
    job = GrantJob.from_event({**job.to_input(), "customer": world.steps.ensure_customer(job)})
    world.steps.add_to_organization(job)
    world.steps.fail(job, GrantError("JiraUnavailable", "timeout"))

    # When the drift check runs
    reports = check_drift(world.store, Members(world.jira))

    # Then it reports the leftover
    assert [(r.project_id, r.left_over_in_jsm) for r in reports] == [("pa", [job.account_id])]


def test_a_grant_that_left_the_run_is_not_created_for(world):
    # Given a grant whose activation run was superseded (failed and retried) mid-step
    world.service.add(PM, "pa", AddGrant(contact_id=ALICE.contact_id))
    stale = world.job("pa", ALICE.contact_id)
    current = world.grant("pa", ALICE.contact_id)
    GrantLifecycle(world.store, world.events).fail(current, GrantError("X", "y"))

    # When the stale run's customer step runs
    # Then it creates nothing for a grant that is no longer its own
    with pytest.raises(StaleState, match="left this activation"):
        world.steps.ensure_customer(stale)
    assert world.jira.customers == {}
