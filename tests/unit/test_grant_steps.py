"""`GrantSteps`, the workflow tasks: each step idempotent, each outcome recorded once, and a step
of a lifecycle that is no longer the grant's current one changing nothing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from chalicelib.domain.grant_lifecycle import GrantLifecycle, Move
from chalicelib.domain.grant_steps import GrantJob, GrantSteps
from chalicelib.domain.models import Contact, GrantError, GrantStatus, Project
from chalicelib.errors import JiraUnavailable
from tests.fakes.adapters import RecordingEvents
from tests.fakes.builders import CUSTOMER, INTEGRATOR, OTHER, contact, grant, project
from tests.fakes.store import InMemoryStore

S = GrantStatus
PORTAL = "https://helpdesk.example/servicedesk/customer/portal/1"
ALICE = contact("alice")
ERIN = contact("erin", company=OTHER, external_for=[CUSTOMER])  # linked to the customer
REJECTED = GrantError("JiraRejected", "the account cannot be added")


@pytest.fixture
def p1(store, jira):
    """Project p1 on service desk 1 with its own organization (as `PUT /projects` leaves it)."""
    organization = jira.create_organization("Project p1")
    jira.attach_organization("1", organization.id)
    linked = project("p1", organization_id=organization.id)
    store.seed(linked, ALICE, ERIN)
    return linked


@pytest.fixture
def p2(store, jira):
    """Project p2 sharing service desk 1, with an organization of its own."""
    organization = jira.create_organization("Project p2")
    linked = project("p2", organization_id=organization.id)
    store.seed(linked)
    return linked


@pytest.fixture
def steps(store, jira, mailer, events) -> GrantSteps:
    return GrantSteps(store, jira, mailer, events, portal_url=PORTAL)


def _job(
    store: InMemoryStore,
    of_project: Project,
    of_contact: Contact,
    status: GrantStatus,
    **overrides: Any,
) -> GrantJob:
    """Seed a grant in `status` and return the job its workflow received."""
    seeded = grant(of_project, of_contact, status, **overrides)
    store.seed(seeded)
    return GrantJob.for_grant(seeded)


def _through_jira(steps: GrantSteps, job: GrantJob) -> GrantJob:
    """The activation steps before completion, feeding the customer on like the ASL does."""
    customer = steps.ensure_customer(job)
    job = GrantJob.from_event({**job.to_input(), "customer": customer})
    steps.add_to_service_desk(job)
    steps.add_to_organization(job)
    return job


def _actions(store: InMemoryStore, project_id: str = "p1") -> list[str]:
    return [e.action for e in reversed(store.activity(project_id, None, 100, None).items)]


# --- activation -------------------------------------------------------------------------------


def test_activation_creates_the_customer_and_completes_once(steps, store, jira, mailer, events, p1):
    # Given a pending grant whose contact has no JSM account yet
    job = _through_jira(steps, _job(store, p1, ALICE, S.ACTIVATION_PENDING))

    # When the activation completes, and the step runs a second time
    first = steps.complete_activation(job)
    second = steps.complete_activation(job)

    # Then the account is a customer of the desk and the organization, activated once
    assert first == {"activated": True, "email_sent": True, "email_failed": False}
    assert second == {"activated": False, "email_sent": False, "email_failed": False}
    assert job.account_id in jira.desk_customers["1"]
    assert job.account_id in jira.organization_users[p1.organization_id]
    stored = store.get_grant("p1", ALICE.contact_id)
    assert (stored.status, stored.jira_account_id, stored.account_created) == (
        S.ACTIVATED,
        job.account_id,
        True,
    )
    assert _actions(store) == ["grant.activated"]
    assert [(m.kind, m.to, m.project_name, m.link) for m in mailer.sent] == [
        ("activation", ALICE.email, p1.name, PORTAL)
    ]
    assert [kind for kind, _ in events.published] == ["GrantActivated"]


def test_no_welcome_email_for_an_existing_helpdesk_account(steps, store, jira, mailer, events, p1):
    # Given the contact already has a JSM account (another helpdesk, say)
    jira.ensure_customer(ALICE.email, ALICE.name)
    job = _through_jira(steps, _job(store, p1, ALICE, S.ACTIVATION_PENDING))

    # When the activation completes
    result = steps.complete_activation(job)

    # Then it is activated without an email
    assert result == {"activated": True, "email_sent": False, "email_failed": False}
    assert store.get_grant("p1", ALICE.contact_id).account_created is False
    assert mailer.sent == []
    assert [kind for kind, _ in events.published] == ["GrantActivated"]


def test_welcome_email_still_owed_after_an_earlier_run_created_the_account(
    steps, store, jira, mailer, p1
):
    # Given a retried activation whose failed first run created the JSM account
    jira.ensure_customer(ALICE.email, ALICE.name)
    job = _through_jira(steps, _job(store, p1, ALICE, S.ACTIVATION_PENDING, account_created=True))

    # When it completes
    result = steps.complete_activation(job)

    # Then the welcome email goes out after all
    assert result["email_sent"] is True
    assert [m.kind for m in mailer.sent] == ["activation"]


def test_jira_failures_propagate_for_the_workflow_to_retry(steps, store, jira, p1):
    # Given JSM is down for organization changes
    jira.fail("add_to_organization", JiraUnavailable("JSM answered 503", 503), times=1)
    job = _job(store, p1, ALICE, S.ACTIVATION_PENDING)
    customer = steps.ensure_customer(job)
    job = replace(job, account_id=customer["account_id"])

    # When the step runs, then again once JSM is back
    with pytest.raises(JiraUnavailable):
        steps.add_to_organization(job)
    steps.add_to_organization(job)

    # Then the error reached the caller and the retry succeeded
    assert jira.calls["add_to_organization"] == 2
    assert job.account_id in jira.organization_users[p1.organization_id]


def test_a_step_needing_an_account_refuses_a_job_without_one(steps, store, p1):
    # Given a job that skipped ensure_customer
    job = _job(store, p1, ALICE, S.ACTIVATION_PENDING)

    # When the desk step runs
    # Then it refuses instead of calling JSM with no account
    with pytest.raises(ValueError, match="account"):
        steps.add_to_service_desk(job)


# --- failure ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pending", "failed", "action"),
    [
        (S.ACTIVATION_PENDING, S.ACTIVATION_FAILED, "grant.activation_failed"),
        (S.DELETION_PENDING, S.DELETION_FAILED, "grant.removal_failed"),
    ],
)
def test_fail_records_the_error_and_the_account_once(
    steps, store, events, p1, pending, failed, action
):
    # Given a pending grant whose run found JSM account acc-7 and created it
    job = replace(_job(store, p1, ALICE, pending), account_id="acc-7", account_created=True)

    # When the caught error is recorded, twice (a retried Catch step)
    first = steps.fail(job, REJECTED)
    second = steps.fail(job, REJECTED)

    # Then the grant is failed with the error and the account, logged and announced once
    assert first == {"recorded": True, "status": failed.value}
    assert second == {"recorded": False}
    stored = store.get_grant("p1", ALICE.contact_id)
    assert (stored.status, stored.error, stored.jira_account_id, stored.account_created) == (
        failed,
        REJECTED,
        "acc-7",
        True,
    )
    assert _actions(store) == [action]
    entry = store.activity("p1", None, 1, None).items[0]
    assert entry.detail == {
        "error": {"code": "JiraRejected", "message": "the account cannot be added"},
        "execution": job.lifecycle_id,
    }
    assert events.published == [
        (
            "GrantFailed",
            {
                "project_id": "p1",
                "contact_id": ALICE.contact_id,
                "status": failed.value,
                "error": {"code": "JiraRejected", "message": "the account cannot be added"},
                "lifecycle_id": job.lifecycle_id,
                "jira_account_id": "acc-7",
            },
        )
    ]


# --- removal ----------------------------------------------------------------------------------


def test_leave_organization_takes_the_account_out(steps, store, jira, p1):
    # Given an account in the project's organization
    account, _ = jira.ensure_customer(ALICE.email, ALICE.name)
    jira.add_to_organization(p1.organization_id, account.account_id)
    job = _job(store, p1, ALICE, S.DELETION_PENDING, jira_account_id=account.account_id)

    # When the removal leaves the organization
    steps.leave_organization(job)

    # Then the account is no longer a member
    assert jira.organization_users[p1.organization_id] == set()


@pytest.mark.parametrize(
    ("other_status", "left"),
    [
        (S.ACTIVATION_PENDING, False),
        (S.ACTIVATED, False),
        # A failed activation took back what it added (rule 4): it holds nothing.
        (S.ACTIVATION_FAILED, True),
        (S.DELETION_FAILED, False),
        (S.DELETION_PENDING, True),
    ],
)
def test_the_desk_is_kept_while_another_grant_on_it_holds_it(
    steps, store, jira, p1, p2, other_status, left
):
    # Given the contact's account is a desk customer through p1 and p2 (same service desk)
    account, _ = jira.ensure_customer(ALICE.email, ALICE.name)
    jira.add_to_service_desk("1", account.account_id)
    store.seed(grant(p2, ALICE, other_status, jira_account_id=account.account_id))
    job = _job(store, p1, ALICE, S.DELETION_PENDING, jira_account_id=account.account_id)

    # When p1's removal reaches the desk step
    result = steps.leave_service_desk(job)

    # Then the desk is left only when the p2 grant does not hold it (is itself being removed)
    assert result == {"left": left, "shared_with": [] if left else ["p2"]}
    assert (account.account_id not in jira.desk_customers["1"]) is left
    assert jira.calls["remove_from_service_desk"] == int(left)


def test_concurrent_removals_leave_the_desk_despite_a_lagging_index(
    steps, store, jira, monkeypatch, p1, p2
):
    # Given p2's grant was just moved to deletion_pending (offboarding revokes every grant at
    # once) but the contact index (a DynamoDB GSI) still lists it as activated
    account, _ = jira.ensure_customer(ALICE.email, ALICE.name)
    jira.add_to_service_desk("1", account.account_id)
    store.seed(grant(p2, ALICE, S.ACTIVATED, jira_account_id=account.account_id))
    listed = store.grants_of_contact(ALICE.contact_id)
    GrantLifecycle(store, RecordingEvents()).apply(listed[0], Move(S.DELETION_PENDING))
    job = _job(store, p1, ALICE, S.DELETION_PENDING, jira_account_id=account.account_id)
    monkeypatch.setattr(store, "grants_of_contact", lambda contact_id: listed)

    # When p1's removal reaches the desk step
    result = steps.leave_service_desk(job)

    # Then the stale status does not keep the account on the desk
    assert result == {"left": True, "shared_with": []}
    assert account.account_id not in jira.desk_customers["1"]


def test_a_grant_on_another_desk_does_not_hold_this_one(steps, store, jira, p1):
    # Given another grant of the contact on a project with a different service desk
    account, _ = jira.ensure_customer(ALICE.email, ALICE.name)
    elsewhere = project("p3", service_desk_id=jira.add_service_desk("OPS", "Ops").id)
    store.seed(elsewhere, grant(elsewhere, ALICE, S.ACTIVATED))
    job = _job(store, p1, ALICE, S.DELETION_PENDING, jira_account_id=account.account_id)

    # When p1's removal reaches the desk step
    # Then the desk is left
    assert steps.leave_service_desk(job) == {"left": True, "shared_with": []}


def test_without_an_account_there_is_nothing_to_leave(steps, store, jira, p1):
    # Given a grant whose activation failed before any JSM account was found
    job = _job(store, p1, ALICE, S.DELETION_PENDING)

    # When the removal steps run
    steps.leave_organization(job)
    result = steps.leave_service_desk(job)

    # Then JSM is not called
    assert result == {"left": False, "shared_with": []}
    assert jira.calls["remove_from_organization"] == jira.calls["remove_from_service_desk"] == 0


def test_removing_an_externals_last_grant_through_a_company_unlinks_it(steps, store, events, p1):
    # Given the only grant of an external linked to the customer, being removed
    job = _job(store, p1, ERIN, S.DELETION_PENDING, jira_account_id="acc-1")

    # When the removal completes
    result = steps.complete_removal(job)

    # Then the grant is gone, the external unlinked from the customer, both logged and announced
    assert result == {"removed": True, "unlinked": True}
    assert store.get_grant("p1", ERIN.contact_id) is None
    assert store.get_contact(ERIN.contact_id).external_for == []
    assert _actions(store) == ["grant.removed", "contact.external_unlinked"]
    assert [kind for kind, _ in events.published] == ["GrantRemoved", "ExternalContactUnlinked"]
    assert events.of_type("ExternalContactUnlinked") == [
        {"contact_id": ERIN.contact_id, "company_id": CUSTOMER, "project_id": "p1"}
    ]


def test_an_external_stays_linked_while_another_grant_through_the_company_remains(
    steps, store, events, p1, p2
):
    # Given an external with grants through the customer on p1 and p2
    store.seed(grant(p2, ERIN, S.ACTIVATED))
    job = _job(store, p1, ERIN, S.DELETION_PENDING)

    # When the p1 grant's removal completes
    result = steps.complete_removal(job)

    # Then it stays linked to the customer
    assert result == {"removed": True, "unlinked": False}
    assert store.get_contact(ERIN.contact_id).external_for == [CUSTOMER]
    assert _actions(store) == ["grant.removed"]
    assert [kind for kind, _ in events.published] == ["GrantRemoved"]


def test_a_grant_through_another_company_does_not_keep_the_link(steps, store, p1, p2):
    # Given an external linked to the customer and the integrator, granted through each once
    linked_twice = replace(
        ERIN, contact_id="erin2", email="erin2@other.example", external_for=[CUSTOMER, INTEGRATOR]
    )
    store.seed(linked_twice, grant(p2, linked_twice, S.ACTIVATED, granted_by_company_id=INTEGRATOR))
    job = _job(store, p1, linked_twice, S.DELETION_PENDING)

    # When the customer's grant is removed
    steps.complete_removal(job)

    # Then only the customer's link goes
    assert store.get_contact("erin2").external_for == [INTEGRATOR]


def test_removing_an_externals_last_grant_unlinks_it_despite_a_lagging_index(
    steps, store, monkeypatch, p1
):
    # Given the contact index (a DynamoDB GSI, eventually consistent) still lists the grant
    job = _job(store, p1, ERIN, S.DELETION_PENDING)
    before_delete = store.grants_of_contact(ERIN.contact_id)
    monkeypatch.setattr(store, "grants_of_contact", lambda contact_id: before_delete)

    # When the removal completes
    result = steps.complete_removal(job)

    # Then the deleted grant does not count as one keeping the link
    assert result == {"removed": True, "unlinked": True}
    assert store.get_contact(ERIN.contact_id).external_for == []


def test_removing_a_company_contacts_grant_unlinks_nothing(steps, store, events, p1):
    # Given a grant of the customer's own contact, being removed
    job = _job(store, p1, ALICE, S.DELETION_PENDING)

    # When the removal completes twice (a retried step)
    first = steps.complete_removal(job)
    second = steps.complete_removal(job)

    # Then the grant is removed once and no link is touched
    assert first == {"removed": True, "unlinked": False}
    assert second == {"removed": False}
    assert _actions(store) == ["grant.removed"]
    assert [kind for kind, _ in events.published] == ["GrantRemoved"]


# --- stale lifecycles -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "step"),
    [
        (S.ACTIVATION_PENDING, "complete_activation"),
        (S.ACTIVATION_PENDING, "fail"),
        (S.DELETION_PENDING, "complete_removal"),
        (S.DELETION_PENDING, "fail"),
    ],
)
def test_a_step_of_an_older_lifecycle_changes_nothing(
    steps, store, mailer, events, p1, status, step
):
    # Given a grant now in a newer lifecycle than the job's
    job = replace(
        _job(store, p1, ERIN, status),
        lifecycle_id="p1-erin-L0",
        account_id="acc-1",
        account_created=True,
    )
    before = store.snapshot()

    # When the old lifecycle's terminal step runs
    runs: dict[str, Callable[[], dict[str, Any]]] = {
        "complete_activation": lambda: steps.complete_activation(job),
        "complete_removal": lambda: steps.complete_removal(job),
        "fail": lambda: steps.fail(job, REJECTED),
    }
    result = runs[step]()

    # Then it reports that nothing happened, and nothing did
    assert not any(v is True for v in result.values())
    assert store.snapshot() == before
    assert (mailer.sent, events.published) == ([], [])
