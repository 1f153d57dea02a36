"""`GrantService`: adding, removing, retrying and password resets, through the in-memory fakes.

Every refused request is checked to leave the store exactly as it was (SPEC §2: never a partial
change) and to start no workflow.
"""

from __future__ import annotations

import pytest

from chalicelib.domain.grant_lifecycle import GrantLifecycle, Move
from chalicelib.domain.grants import (
    FINISHING_RETRY_AFTER_SECONDS,
    PENDING_RETRY_AFTER_SECONDS,
    AddGrant,
    GrantService,
    NewContact,
)
from chalicelib.domain.models import ContactStatus, Grant, GrantError, GrantStatus, Role
from chalicelib.errors import (
    Conflict,
    ContactOffboarded,
    DependencyUnavailable,
    Forbidden,
    NotFound,
    ValidationFailed,
)
from tests.fakes.builders import CUSTOMER, INTEGRATOR, OTHER, contact, grant, principal, project
from tests.fakes.store import InMemoryStore

S = GrantStatus
RESET_URL = "https://portal.example/servicedesk/customer/user/forgotpassword"
START_FAILED = GrantError("WorkflowStartFailed", "Step Functions is unreachable")
PROJECT = project()
ALICE = contact("alice")  # customer, Console User
CAROL = contact("carol", console_user=False)  # customer, no Console User profile
OTTO = contact("otto", status=ContactStatus.OFFBOARDED)
IVAN = contact("ivan", company=INTEGRATOR)
ERIN = contact("erin", company=OTHER)  # another company's contact
PM = principal(Role.PROJECT_MANAGER, company=CUSTOMER, sub="u-pm")
INTEGRATOR_PM = principal(Role.SUPERVISOR, company=INTEGRATOR, sub="u-ipm")
OUTSIDER = principal(Role.PROJECT_MANAGER, company=OTHER, sub="u-out")


@pytest.fixture
def service(store, workflows, mailer, events) -> GrantService:
    store.seed(PROJECT, ALICE, CAROL, OTTO, IVAN, ERIN)
    return GrantService(store, workflows, mailer, events, reset_url=RESET_URL)


def _actions(store: InMemoryStore, contact_id: str | None = None) -> list[str]:
    """The project's activity actions, oldest first."""
    page = store.activity(PROJECT.project_id, contact_id, 100, None)
    return [e.action for e in reversed(page.items)]


def _stored(store: InMemoryStore, contact_id: str) -> Grant:
    stored = store.get_grant(PROJECT.project_id, contact_id)
    assert stored is not None
    return stored


# --- add --------------------------------------------------------------------------------------


def test_add_own_console_user_by_contact_id(service, store, workflows):
    # Given a Console User of the manager's company
    # When the manager adds them by contact id
    view = service.add(PM, PROJECT.project_id, AddGrant(contact_id=ALICE.contact_id))

    # Then the grant is pending, recorded and its activation started under its lifecycle id
    stored = _stored(store, ALICE.contact_id)
    assert view.grant == stored
    assert stored.status is S.ACTIVATION_PENDING
    assert stored.granted_by_company_id == CUSTOMER
    assert stored.requested_by == PM.sub
    assert (stored.service_desk_id, stored.organization_id) == ("1", "10")
    assert _actions(store) == ["grant.requested"]
    assert [(kind, g.lifecycle_id) for kind, g in workflows.starts] == [
        ("activation", stored.lifecycle_id)
    ]


def test_integrator_manager_adds_own_contact_for_the_integrator(service, store):
    # Given a Console User of the integrator
    # When the integrator's supervisor adds them
    service.add(INTEGRATOR_PM, PROJECT.project_id, AddGrant(contact_id=IVAN.contact_id))

    # Then the grant is made through the integrator
    assert _stored(store, IVAN.contact_id).granted_by_company_id == INTEGRATOR


@pytest.mark.parametrize(
    "contact_id",
    [CAROL.contact_id, ERIN.contact_id, IVAN.contact_id, OTTO.contact_id, "nobody"],
    ids=["no console user", "other company", "integrator", "offboarded", "unknown"],
)
def test_add_by_contact_id_needs_an_active_console_user_of_own_company(
    service, store, workflows, contact_id
):
    # Given a contact that is not an active Console User of the manager's company
    before = store.snapshot()

    # When the customer's manager adds it by contact id
    with pytest.raises(ValidationFailed) as refused:
        service.add(PM, PROJECT.project_id, AddGrant(contact_id=contact_id))

    # Then it is a 422 on contact_id and nothing is written or started
    assert [e.field for e in refused.value.errors] == ["contact_id"]
    assert store.snapshot() == before
    assert workflows.starts == []


def test_add_by_email_links_another_companys_contact_as_external(service, store):
    # Given a contact of another company
    # When the manager adds it by email
    view = service.add(PM, PROJECT.project_id, AddGrant(email=ERIN.email))

    # Then it becomes an external linked to the manager's company, in the same change
    assert store.get_contact(ERIN.contact_id).external_for == [CUSTOMER]
    assert view.grant.granted_by_company_id == CUSTOMER
    assert _actions(store) == ["contact.external_linked", "grant.requested"]
    linked = store.activity(PROJECT.project_id, ERIN.contact_id, 10, None).items[-1]
    assert linked.detail == {"company_id": CUSTOMER}
    assert linked.actor.id == PM.sub


def test_add_by_email_of_own_contact_links_nothing(service, store):
    # Given a customer contact without the Console User profile
    # When the customer's manager adds it by email
    service.add(PM, PROJECT.project_id, AddGrant(email=CAROL.email))

    # Then it is granted as the company's own contact
    assert store.get_contact(CAROL.contact_id).external_for == []
    assert _actions(store) == ["grant.requested"]


@pytest.mark.parametrize(
    "email", ["nobody@acme.example", OTTO.email], ids=["unknown", "offboarded"]
)
def test_add_by_email_needs_an_existing_active_contact(service, store, workflows, email):
    # Given an email of no active contact
    before = store.snapshot()

    # When the manager adds it by email
    with pytest.raises(ValidationFailed) as refused:
        service.add(PM, PROJECT.project_id, AddGrant(email=email))

    # Then it is a 422 on email and nothing changes
    assert [e.field for e in refused.value.errors] == ["email"]
    assert store.snapshot() == before
    assert workflows.starts == []


def test_add_by_unknown_email_says_to_create_the_contact(service):
    # Given / When an unknown email is added
    with pytest.raises(ValidationFailed) as refused:
        service.add(PM, PROJECT.project_id, AddGrant(email="nobody@acme.example"))

    # Then the message says how to proceed
    assert "new_contact" in refused.value.message


def test_add_new_company_contact(service, store):
    # Given a new person of the manager's company
    new = NewContact(email="nina@acme.example", name="Nina", kind="company", groups=["ops"])

    # When the manager adds it as a new contact
    view = service.add(PM, PROJECT.project_id, AddGrant(new_contact=new))

    # Then the contact is created in the company (without Console User) and granted
    created = store.find_contact_by_email("nina@acme.example")
    assert created.contact_id == view.grant.contact_id
    assert (created.company_id, created.console_user, created.groups, created.external_for) == (
        CUSTOMER,
        False,
        ["ops"],
        [],
    )
    assert _actions(store) == ["contact.created", "grant.requested"]
    entry = store.activity(PROJECT.project_id, created.contact_id, 10, None).items[-1]
    assert entry.detail == {"kind": "company", "company_id": CUSTOMER, "groups": ["ops"]}


def test_add_new_external_contact(service, store):
    # Given a new external person
    new = NewContact(
        email="xavier@external.example", name="Xavier", kind="external", groups=["ignored"]
    )

    # When the manager adds it as a new external
    service.add(PM, PROJECT.project_id, AddGrant(new_contact=new))

    # Then it has no company, is linked to the manager's company and has no groups
    created = store.find_contact_by_email("xavier@external.example")
    assert (created.company_id, created.external_for, created.groups) == (None, [CUSTOMER], [])
    assert _actions(store) == ["contact.created", "grant.requested"]


def test_add_new_contact_with_an_existing_email_is_a_conflict(service, store, workflows):
    # Given an existing contact's email
    before = store.snapshot()
    new = NewContact(email=ERIN.email, name="Erin again", kind="external")

    # When it is added as a new contact
    with pytest.raises(Conflict):
        service.add(PM, PROJECT.project_id, AddGrant(new_contact=new))

    # Then it is a 409 and nothing changes
    assert store.snapshot() == before
    assert workflows.starts == []


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (AddGrant(contact_id="alice"), "contact_id"),
        (AddGrant(email=ERIN.email), "email"),
        (
            AddGrant(new_contact=NewContact("nina@elsewhere.example", "Nina", "external")),
            "new_contact.email",
        ),
    ],
    ids=["contact_id", "email", "new_contact"],
)
def test_emails_outside_the_allowed_domains_are_refused(
    store, workflows, mailer, events, request_, field
):
    # Given a project that only allows two domains none of these emails is in
    limited = project(allowed_email_domains=["integ.example", "partner.example"])
    store.seed(limited, ALICE, ERIN)
    service = GrantService(store, workflows, mailer, events, reset_url=RESET_URL)
    before = store.snapshot()

    # When a contact is added in any of the three ways
    with pytest.raises(ValidationFailed) as refused:
        service.add(PM, limited.project_id, request_)

    # Then the 422 names the allowed domains and nothing changes
    assert "integ.example, partner.example" in refused.value.message
    assert [e.field for e in refused.value.errors] == [field]
    assert store.snapshot() == before
    assert workflows.starts == []


@pytest.mark.parametrize(
    "status", [S.ACTIVATION_PENDING, S.ACTIVATED, S.DELETION_PENDING, S.DELETION_FAILED]
)
def test_adding_a_contact_that_has_a_grant_is_a_conflict(service, store, workflows, status):
    # Given a grant of the contact that did not fail to activate
    store.seed(grant(PROJECT, ERIN, status))
    before = store.snapshot()

    # When the contact is added again (here by email, which would also link it)
    with pytest.raises(Conflict):
        service.add(PM, PROJECT.project_id, AddGrant(email=ERIN.email))

    # Then it is a 409 and not even the external link is written
    assert store.snapshot() == before
    assert workflows.starts == []


def test_adding_a_contact_whose_activation_failed_retries_it(service, store, workflows):
    # Given a grant whose activation failed
    failed = grant(
        PROJECT,
        ALICE,
        S.ACTIVATION_FAILED,
        jira_account_id="acc-9",
        error=GrantError("JiraRejected", "no"),
    )
    store.seed(failed)

    # When the contact is added again
    view = service.add(PM, PROJECT.project_id, AddGrant(contact_id=ALICE.contact_id))

    # Then the same grant goes back to pending under a new lifecycle, without its error
    stored = _stored(store, ALICE.contact_id)
    assert view.grant.lifecycle_id == stored.lifecycle_id != failed.lifecycle_id
    assert (stored.status, stored.error, stored.jira_account_id) == (
        S.ACTIVATION_PENDING,
        None,
        "acc-9",
    )
    assert _actions(store) == ["grant.requested"]
    assert store.activity(PROJECT.project_id, None, 1, None).items[0].detail["retry"] is True
    assert [g.lifecycle_id for _, g in workflows.starts] == [stored.lifecycle_id]


def test_platform_admin_adds_for_the_customer_company(service, store):
    # Given a platform admin of no project company
    admin = principal(Role.PLATFORM_ADMIN, company=None, sub="u-admin")

    # When they add another company's contact by email
    service.add(admin, PROJECT.project_id, AddGrant(email=ERIN.email))

    # Then the contact is linked to (and granted through) the customer company
    assert store.get_contact(ERIN.contact_id).external_for == [CUSTOMER]
    assert _stored(store, ERIN.contact_id).granted_by_company_id == CUSTOMER


# --- workflow start failures ------------------------------------------------------------------


def test_activation_that_cannot_start_fails_the_grant_visibly(service, store, workflows, events):
    # Given Step Functions refuses starts
    workflows.failing = True

    # When a contact is added
    with pytest.raises(DependencyUnavailable):
        service.add(PM, PROJECT.project_id, AddGrant(contact_id=ALICE.contact_id))

    # Then the grant is activation_failed with WorkflowStartFailed, logged and announced
    stored = _stored(store, ALICE.contact_id)
    assert stored.status is S.ACTIVATION_FAILED
    assert stored.error == START_FAILED
    assert _actions(store) == ["grant.requested", "grant.activation_failed"]
    assert events.of_type("GrantFailed") == [
        {
            "project_id": PROJECT.project_id,
            "contact_id": ALICE.contact_id,
            "status": "activation_failed",
            "error": {"code": "WorkflowStartFailed", "message": "Step Functions is unreachable"},
            "lifecycle_id": stored.lifecycle_id,
            "jira_account_id": None,
        }
    ]


def test_removal_that_cannot_start_fails_the_grant_visibly(service, store, workflows, events):
    # Given an activated grant and Step Functions refusing starts
    store.seed(grant(PROJECT, ALICE, S.ACTIVATED))
    workflows.failing = True

    # When the grant is removed
    with pytest.raises(DependencyUnavailable):
        service.remove(PM, PROJECT.project_id, ALICE.contact_id)

    # Then it is deletion_failed (retryable) with WorkflowStartFailed
    stored = _stored(store, ALICE.contact_id)
    assert (stored.status, stored.error) == (S.DELETION_FAILED, START_FAILED)
    assert _actions(store) == ["grant.removal_requested", "grant.removal_failed"]
    assert [e["status"] for e in events.of_type("GrantFailed")] == ["deletion_failed"]


# --- remove -----------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [S.ACTIVATED, S.ACTIVATION_FAILED, S.DELETION_FAILED])
def test_remove_starts_the_removal(service, store, workflows, status):
    # Given a grant that may be removed
    store.seed(grant(PROJECT, ALICE, status))

    # When the manager removes it
    view = service.remove(PM, PROJECT.project_id, ALICE.contact_id)

    # Then it is deletion_pending under a new lifecycle whose removal started
    stored = _stored(store, ALICE.contact_id)
    assert view.grant.status is stored.status is S.DELETION_PENDING
    assert _actions(store) == ["grant.removal_requested"]
    assert [(kind, g.lifecycle_id) for kind, g in workflows.starts] == [
        ("removal", stored.lifecycle_id)
    ]


def test_removing_twice_answers_the_same_and_logs_once(service, store, workflows):
    # Given a grant being removed after a first DELETE
    store.seed(grant(PROJECT, ALICE, S.ACTIVATED))
    first = service.remove(PM, PROJECT.project_id, ALICE.contact_id)
    after_first = store.snapshot()

    # When the DELETE is repeated
    second = service.remove(PM, PROJECT.project_id, ALICE.contact_id)

    # Then the answer is the same and nothing more is written or started
    assert second.grant.status is S.DELETION_PENDING
    assert second.grant.lifecycle_id == first.grant.lifecycle_id
    assert store.snapshot() == after_first
    assert _actions(store) == ["grant.removal_requested"]
    assert len(workflows.starts) == 1


def test_removing_during_activation_is_a_conflict_with_retry_after(service, store, workflows):
    # Given a grant being activated
    store.seed(grant(PROJECT, ALICE, S.ACTIVATION_PENDING))
    before = store.snapshot()

    # When the manager removes it
    with pytest.raises(Conflict) as refused:
        service.remove(PM, PROJECT.project_id, ALICE.contact_id)

    # Then it is a 409 telling when to retry, and nothing changes
    assert refused.value.retry_after == PENDING_RETRY_AFTER_SECONDS
    assert store.snapshot() == before
    assert workflows.starts == []


def test_removing_a_missing_grant_is_not_found(service):
    # Given / When / Then
    with pytest.raises(NotFound):
        service.remove(PM, PROJECT.project_id, ALICE.contact_id)


# --- retry ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("failed", "pending", "kind"),
    [
        (S.ACTIVATION_FAILED, S.ACTIVATION_PENDING, "activation"),
        (S.DELETION_FAILED, S.DELETION_PENDING, "removal"),
    ],
)
def test_retry_restarts_a_failed_lifecycle(service, store, workflows, failed, pending, kind):
    # Given a failed grant
    store.seed(grant(PROJECT, ALICE, failed, error=GrantError("JiraUnavailable", "down")))

    # When the manager retries it
    view = service.retry(PM, PROJECT.project_id, ALICE.contact_id)

    # Then it is pending again, without error, and its workflow runs
    stored = _stored(store, ALICE.contact_id)
    assert (view.grant.status, stored.status, stored.error) == (pending, pending, None)
    assert [(k, g.lifecycle_id) for k, g in workflows.starts] == [(kind, stored.lifecycle_id)]
    assert len(_actions(store)) == 1


@pytest.mark.parametrize("status", [S.ACTIVATION_PENDING, S.ACTIVATED, S.DELETION_PENDING])
def test_retry_of_a_grant_that_did_not_fail_is_a_conflict(service, store, workflows, status):
    # Given a grant that did not fail
    store.seed(grant(PROJECT, ALICE, status))
    before = store.snapshot()

    # When the manager retries it
    with pytest.raises(Conflict):
        service.retry(PM, PROJECT.project_id, ALICE.contact_id)

    # Then nothing changes
    assert store.snapshot() == before
    assert workflows.starts == []


def test_retrying_an_activation_outside_the_allowed_domains_is_refused(
    store, workflows, mailer, events
):
    # Given a failed activation of an email the project no longer allows
    limited = project(allowed_email_domains=["partner.example"])
    store.seed(limited, ALICE, grant(limited, ALICE, S.ACTIVATION_FAILED))
    service = GrantService(store, workflows, mailer, events, reset_url=RESET_URL)
    before = store.snapshot()

    # When the manager retries it
    with pytest.raises(ValidationFailed) as refused:
        service.retry(PM, limited.project_id, ALICE.contact_id)

    # Then it is refused like adding it again would be, and nothing changes
    assert "partner.example" in refused.value.message
    assert store.snapshot() == before
    assert workflows.starts == []


def test_retrying_a_removal_outside_the_allowed_domains_is_allowed(
    store, workflows, mailer, events
):
    # Given a failed removal of an email the project does not allow
    limited = project(allowed_email_domains=["partner.example"])
    store.seed(limited, ALICE, grant(limited, ALICE, S.DELETION_FAILED))
    service = GrantService(store, workflows, mailer, events, reset_url=RESET_URL)

    # When the manager retries it
    view = service.retry(PM, limited.project_id, ALICE.contact_id)

    # Then the removal runs again (taking access away is always allowed)
    assert view.grant.status is S.DELETION_PENDING
    assert view.outside_allowed_domains


# --- password reset ---------------------------------------------------------------------------


def test_password_reset_of_an_activated_grant(service, store, mailer):
    # Given an activated grant
    store.seed(grant(PROJECT, ALICE, S.ACTIVATED))

    # When the manager sends a password reset
    service.send_password_reset(PM, PROJECT.project_id, ALICE.contact_id)

    # Then the contact gets the reset link and the activity log says so
    assert [(m.kind, m.to, m.link) for m in mailer.sent] == [
        ("password_reset", ALICE.email, RESET_URL)
    ]
    assert _actions(store) == ["grant.password_reset_sent"]


@pytest.mark.parametrize("status", [s for s in S if s not in (S.ACTIVATED, S.REMOVED)])
def test_password_reset_needs_an_activated_grant(service, store, mailer, status):
    # Given a grant that is not activated
    store.seed(grant(PROJECT, ALICE, status))
    before = store.snapshot()

    # When the manager sends a password reset
    with pytest.raises(Conflict):
        service.send_password_reset(PM, PROJECT.project_id, ALICE.contact_id)

    # Then nothing is sent or written
    assert mailer.sent == []
    assert store.snapshot() == before


def test_password_reset_that_cannot_be_sent_records_nothing(service, store, mailer):
    # Given an activated grant and SES down
    store.seed(grant(PROJECT, ALICE, S.ACTIVATED))
    mailer.failing = True
    before = store.snapshot()

    # When the manager sends a password reset
    with pytest.raises(DependencyUnavailable):
        service.send_password_reset(PM, PROJECT.project_id, ALICE.contact_id)

    # Then no activity claims it was sent
    assert store.snapshot() == before


# --- who may ----------------------------------------------------------------------------------

COMMANDS = {
    "add": lambda s, who: s.add(who, PROJECT.project_id, AddGrant(email=ERIN.email)),
    "remove": lambda s, who: s.remove(who, PROJECT.project_id, ALICE.contact_id),
    "retry": lambda s, who: s.retry(who, PROJECT.project_id, ALICE.contact_id),
    "password reset": lambda s, who: s.send_password_reset(
        who, PROJECT.project_id, ALICE.contact_id
    ),
}


@pytest.mark.parametrize("status", [S.ACTIVATED, S.ACTIVATION_FAILED])
@pytest.mark.parametrize(
    "who",
    [
        OUTSIDER,
        principal(Role.CONSOLE_USER, company=CUSTOMER),
        principal(Role.COMPANY_ADMIN, company=CUSTOMER),
        principal(Role.SERVICE, company=None),
    ],
    ids=["manager of other company", "console user", "company admin", "service"],
)
@pytest.mark.parametrize("command", list(COMMANDS))
def test_only_managers_of_the_project_companies_change_grants(
    service, store, workflows, mailer, command, who, status
):
    # Given a grant of a customer contact
    store.seed(grant(PROJECT, ALICE, status))
    before = store.snapshot()

    # When somebody who does not manage grants on the project tries a command
    with pytest.raises(Forbidden):
        COMMANDS[command](service, who)

    # Then it is a 403 and nothing happens
    assert store.snapshot() == before
    assert (workflows.starts, mailer.sent) == ([], [])


@pytest.mark.parametrize("command", ["remove", "retry", "password reset"])
def test_integrator_manager_may_not_touch_the_customers_contacts(
    service, store, workflows, command
):
    # Given a failed grant of a customer contact
    store.seed(grant(PROJECT, ALICE, S.ACTIVATION_FAILED))
    before = store.snapshot()

    # When the integrator's supervisor acts on it
    with pytest.raises(Forbidden):
        COMMANDS[command](service, INTEGRATOR_PM)

    # Then it is a 403 and nothing changes
    assert store.snapshot() == before
    assert workflows.starts == []


# --- reads ------------------------------------------------------------------------------------


def test_members_read_grants_with_the_domain_flag(store, workflows, mailer, events):
    # Given a project allowing acme.example with grants inside and outside that domain
    limited = project(allowed_email_domains=["acme.example"])
    store.seed(limited, ALICE, ERIN, grant(limited, ALICE), grant(limited, ERIN))
    service = GrantService(store, workflows, mailer, events, reset_url=RESET_URL)
    reader = principal(Role.CONSOLE_USER, company=INTEGRATOR)

    # When a member of the integrator lists them and reads one
    page = service.list_grants(reader, limited.project_id, 10, None)
    one = service.get_grant(reader, limited.project_id, ERIN.contact_id)

    # Then grants outside the allowed domains are flagged
    assert [(v.grant.contact_id, v.outside_allowed_domains) for v in page.items] == [
        ("alice", False),
        ("erin", True),
    ]
    assert one.outside_allowed_domains


def test_grant_list_pages_with_a_cursor(service, store):
    # Given three grants
    store.seed(grant(PROJECT, ALICE), grant(PROJECT, CAROL), grant(PROJECT, ERIN))

    # When they are listed two at a time
    first = service.list_grants(PM, PROJECT.project_id, 2, None)
    second = service.list_grants(PM, PROJECT.project_id, 2, first.next_cursor)

    # Then the pages cover every grant once
    assert [v.grant.contact_id for v in first.items + second.items] == ["alice", "carol", "erin"]
    assert second.next_cursor is None


def test_activity_is_newest_first_and_filters_by_contact(service, store):
    # Given a few changes of two contacts
    service.add(PM, PROJECT.project_id, AddGrant(email=ERIN.email))
    service.add(PM, PROJECT.project_id, AddGrant(contact_id=ALICE.contact_id))

    # When the activity is read, whole and for one contact
    everything = service.activity(PM, PROJECT.project_id, None, 10, None)
    erins = service.activity(PM, PROJECT.project_id, ERIN.contact_id, 1, None)
    more = service.activity(PM, PROJECT.project_id, ERIN.contact_id, 1, erins.next_cursor)

    # Then it is newest first, and the filter pages through that contact's entries only
    ids = [e.id for e in everything.items]
    assert ids == sorted(ids, reverse=True)
    assert everything.items[0].contact_id == ALICE.contact_id
    assert [e.action for e in erins.items + more.items] == [
        "grant.requested",
        "contact.external_linked",
    ]
    assert more.next_cursor is None


def test_non_members_read_nothing(service, store):
    # Given a grant
    store.seed(grant(PROJECT, ALICE))

    # When a user of another company reads
    # Then every read is forbidden
    with pytest.raises(Forbidden):
        service.list_grants(OUTSIDER, PROJECT.project_id, 10, None)
    with pytest.raises(Forbidden):
        service.get_grant(OUTSIDER, PROJECT.project_id, ALICE.contact_id)
    with pytest.raises(Forbidden):
        service.activity(OUTSIDER, PROJECT.project_id, None, 10, None)


def test_unknown_project_and_grant_are_not_found(service):
    # Given / When / Then
    with pytest.raises(NotFound):
        service.get_grant(PM, "nope", ALICE.contact_id)
    with pytest.raises(NotFound):
        service.get_grant(PM, PROJECT.project_id, ALICE.contact_id)


# --- one run at a time ------------------------------------------------------------------------


@pytest.mark.parametrize("status", [S.ACTIVATED, S.ACTIVATION_FAILED])
def test_a_new_run_waits_for_the_previous_execution_to_end(service, store, workflows, status):
    # Given a grant whose run recorded its outcome but whose execution is still finishing
    finished = grant(PROJECT, ALICE, status)
    store.seed(finished)
    workflows.executions[finished.lifecycle_id] = "RUNNING"
    before = store.snapshot()

    # When the manager removes (or retries) it
    change = service.remove if status is S.ACTIVATED else service.retry
    with pytest.raises(Conflict) as refused:
        change(PM, PROJECT.project_id, ALICE.contact_id)

    # Then it is a 409 to retry in a moment, and nothing is written or started
    assert refused.value.retry_after == FINISHING_RETRY_AFTER_SECONDS
    assert store.snapshot() == before
    assert workflows.starts == []

    # When the execution has ended
    workflows.executions[finished.lifecycle_id] = "SUCCEEDED"

    # Then the same request starts the new run
    assert change(PM, PROJECT.project_id, ALICE.contact_id).grant.status.value.endswith("pending")
    assert len(workflows.starts) == 1


def test_adding_again_waits_for_the_removal_execution_to_end(service, store, workflows, events):
    # Given a grant just removed (item deleted) whose removal execution is still finishing
    store.seed(grant(PROJECT, ALICE, S.ACTIVATED))
    removing = service.remove(PM, PROJECT.project_id, ALICE.contact_id).grant
    GrantLifecycle(store, events).apply(removing, Move(S.REMOVED))
    before = store.snapshot()

    # When the manager adds the contact again
    with pytest.raises(Conflict) as refused:
        service.add(PM, PROJECT.project_id, AddGrant(contact_id=ALICE.contact_id))

    # Then it is a 409 to retry in a moment, and nothing is written or started
    assert refused.value.retry_after == FINISHING_RETRY_AFTER_SECONDS
    assert store.snapshot() == before
    assert [kind for kind, _ in workflows.starts] == ["removal"]

    # When the removal execution has ended, the add goes through
    workflows.executions[removing.lifecycle_id] = "SUCCEEDED"
    service.add(PM, PROJECT.project_id, AddGrant(contact_id=ALICE.contact_id))
    assert [kind for kind, _ in workflows.starts] == ["removal", "activation"]


def test_a_failed_grant_of_an_offboarded_contact_is_not_retried(service, store, workflows):
    # Given a failed activation of a contact who has since been offboarded
    store.seed(grant(PROJECT, OTTO, S.ACTIVATION_FAILED))
    before = store.snapshot()

    # When the manager retries it
    with pytest.raises(ContactOffboarded):
        service.retry(PM, PROJECT.project_id, OTTO.contact_id)

    # Then nothing changes and nothing starts (rule 9: offboarded contacts get no access back)
    assert store.snapshot() == before
    assert workflows.starts == []


def test_a_failed_removal_of_an_offboarded_contact_is_retried(service, store, workflows):
    # Given a failed removal of an offboarded contact
    store.seed(grant(PROJECT, OTTO, S.DELETION_FAILED))

    # When the manager retries it / Then the removal runs: taking access away is always allowed
    service.retry(PM, PROJECT.project_id, OTTO.contact_id)
    assert [kind for kind, _ in workflows.starts] == ["removal"]
