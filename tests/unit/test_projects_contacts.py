"""`ProjectService` (linking a project to its helpdesk) and `ContactService` (directory sync and
the "Add contact" form's lookups)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from chalicelib.domain.contacts import ContactService, ContactSpec, ContactSummary
from chalicelib.domain.models import ContactStatus, Role, SupportAccess
from chalicelib.domain.projects import ProjectService, ProjectSpec
from chalicelib.errors import Conflict, Forbidden, NotFound, ValidationFailed
from tests.fakes.builders import CUSTOMER, INTEGRATOR, OTHER, contact, grant, principal, project
from tests.fakes.store import InMemoryStore

SERVICE = principal(Role.SERVICE, company=None, sub="console-backend")
PM = principal(Role.PROJECT_MANAGER, company=CUSTOMER, sub="u-pm")
SPEC = ProjectSpec(
    name="Apollo",
    customer_company_id=CUSTOMER,
    service_desk_id="1",
    integrator_company_id=INTEGRATOR,
    created_by="u-creator",
    allowed_email_domains=["integ.example", "acme.example", "acme.example"],
)


@pytest.fixture
def projects(store, jira) -> ProjectService:
    return ProjectService(store, jira)


@pytest.fixture
def contacts(store) -> ContactService:
    return ContactService(store)


def _actions(store: InMemoryStore, project_id: str = "apollo") -> list[str]:
    return [e.action for e in reversed(store.activity(project_id, None, 100, None).items)]


# --- projects ---------------------------------------------------------------------------------


def test_put_project_creates_its_organization_and_links_the_helpdesk(projects, store, jira):
    # Given a service desk that exists in JSM and no organization given
    # When the console backend puts the project
    created, is_new = projects.put(SERVICE, "apollo", SPEC)

    # Then an organization named after it (SPEC §1: "<name> (<project_id>)") is created,
    # attached to the desk, and logged
    assert is_new
    organization = jira.organizations[created.organization_id]
    assert organization.name == "Apollo (apollo)"
    assert created.organization_id in jira.desk_organizations["1"]
    assert (created.service_desk_name, created.organization_name) == ("Support", "Apollo (apollo)")
    assert created.allowed_email_domains == ["acme.example", "integ.example"]
    assert store.get_project("apollo") == created
    assert _actions(store) == ["helpdesk.linked"]


def test_repeated_put_keeps_the_organization_and_logs_no_second_link(projects, store, jira):
    # Given a project put once
    first, _ = projects.put(SERVICE, "apollo", SPEC)

    # When the same PUT comes again
    second, is_new = projects.put(SERVICE, "apollo", SPEC)

    # Then it converges: same organization, none created, no second helpdesk.linked
    assert not is_new
    assert second.organization_id == first.organization_id
    assert jira.calls["create_organization"] == 1
    assert len(jira.organizations) == 1
    assert _actions(store) == ["helpdesk.linked"]


def test_put_keeps_the_support_access_switch(projects, store):
    # Given a project whose support access was enabled
    projects.put(SERVICE, "apollo", SPEC)
    uow = store.unit_of_work()
    enabled = store.get_project("apollo").support_access
    enabled.enabled, enabled.reason = True, "incident 42"
    uow.change_support_access("apollo", enabled, expected=SupportAccess())
    uow.commit()

    # When the console puts the project again
    again, _ = projects.put(SERVICE, "apollo", SPEC)

    # Then support access is untouched
    assert again.support_access.enabled is True
    assert store.get_project("apollo").support_access.reason == "incident 42"


def test_moving_to_another_desk_is_a_new_link(projects, store, jira):
    # Given a linked project and a second service desk
    projects.put(SERVICE, "apollo", SPEC)
    ops = jira.add_service_desk("OPS", "Operations")

    # When the project is put on the other desk
    moved, _ = projects.put(
        SERVICE,
        "apollo",
        ProjectSpec(name="Apollo", customer_company_id=CUSTOMER, service_desk_id=ops.id),
    )

    # Then its organization is attached there and the new link is logged
    assert moved.organization_id in jira.desk_organizations[ops.id]
    assert _actions(store) == ["helpdesk.linked", "helpdesk.linked"]


def test_put_with_an_existing_organization_uses_it(projects, jira):
    # Given an organization that exists in JSM
    organization = jira.create_organization("Shared org")

    # When the project is put with it
    linked, _ = projects.put(
        SERVICE,
        "apollo",
        ProjectSpec(
            name="Apollo",
            customer_company_id=CUSTOMER,
            service_desk_id="1",
            organization_id=organization.id,
        ),
    )

    # Then no organization is created and that one is attached
    assert linked.organization_id == organization.id
    assert jira.calls["create_organization"] == 1  # the one made in Given
    assert organization.id in jira.desk_organizations["1"]


def _with_organization(organization_id: str | None, name: str = "Apollo") -> ProjectSpec:
    return ProjectSpec(
        name=name,
        customer_company_id=CUSTOMER,
        service_desk_id="1",
        organization_id=organization_id,
    )


def test_projects_with_the_same_name_get_an_organization_each(projects, jira):
    # Given a project of one customer
    first, _ = projects.put(SERVICE, "pb", _with_organization(None, name="Beta project"))

    # When another customer's project with the same name is put (JSM returns the existing
    # organization for an existing name)
    other = ProjectSpec(name="Beta project", customer_company_id="zzz", service_desk_id="1")
    second, _ = projects.put(SERVICE, "pz", other)

    # Then each has its own organization, named after the project and its id
    assert first.organization_id != second.organization_id
    assert jira.organizations[second.organization_id].name == "Beta project (pz)"


def test_an_organization_linked_to_another_project_is_a_conflict(projects, store, jira):
    # Given a project linked to its organization
    first, _ = projects.put(SERVICE, "pb", _with_organization(None))
    before = store.snapshot()
    attached = jira.calls["attach_organization"]

    # When another project is put with that organization
    with pytest.raises(Conflict) as refused:
        projects.put(SERVICE, "pz", _with_organization(first.organization_id))

    # Then 409 naming the project that has it; nothing stored and nothing attached in JSM
    assert "pb" in refused.value.message
    assert store.snapshot() == before
    assert jira.calls["attach_organization"] == attached


def test_a_project_put_again_with_its_own_organization_keeps_it(projects, store, jira):
    # Given a project linked to the organization the service created for it
    first, _ = projects.put(SERVICE, "pb", _with_organization(None))

    # When it is put again naming that organization, and again without naming one
    named, created = projects.put(SERVICE, "pb", _with_organization(first.organization_id))
    unnamed, _ = projects.put(SERVICE, "pb", _with_organization(None))

    # Then the upsert converges on the same organization
    assert not created
    assert named.organization_id == unnamed.organization_id == first.organization_id
    assert store.organization_owner(first.organization_id) == "pb"


def test_a_project_moved_to_another_organization_frees_the_old_one(projects, store, jira):
    # Given a project moved from its first organization to another one
    first, _ = projects.put(SERVICE, "pb", _with_organization(None))
    other = jira.create_organization("Other org")
    projects.put(SERVICE, "pb", _with_organization(other.id))

    # When another project is put with the first organization
    linked, _ = projects.put(SERVICE, "pz", _with_organization(first.organization_id))

    # Then it may have it: the move released the claim
    assert linked.organization_id == first.organization_id
    assert store.organization_owner(first.organization_id) == "pz"
    assert store.organization_owner(other.id) == "pb"


def test_of_two_concurrent_claims_of_one_organization_one_wins(projects, store, jira):
    # Given an organization, and two PUTs that both read it as free before either committed
    organization = jira.create_organization("Contested")
    real_owner = store.organization_owner
    both_read = threading.Barrier(2)

    def owner_after_both_read(organization_id: str) -> str | None:
        owner: str | None = real_owner(organization_id)
        both_read.wait(timeout=5)
        return owner

    store.organization_owner = owner_after_both_read  # type: ignore[method-assign]

    def put(project_id: str) -> str:
        try:
            projects.put(SERVICE, project_id, _with_organization(organization.id))
        except Conflict:
            return "conflict"
        return "linked"

    # When both commit
    with ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = sorted(pool.map(put, ["pb", "pz"]))

    # Then exactly one project has the organization, the other got a 409 and was not stored
    assert outcomes == ["conflict", "linked"]
    owner = real_owner(organization.id)
    loser = "pz" if owner == "pb" else "pb"
    assert store.get_project(loser) is None


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        (
            ProjectSpec(name="Apollo", customer_company_id=CUSTOMER, service_desk_id="99"),
            "service_desk_id",
        ),
        (
            ProjectSpec(
                name="Apollo",
                customer_company_id=CUSTOMER,
                service_desk_id="1",
                organization_id="404",
            ),
            "organization_id",
        ),
    ],
    ids=["unknown service desk", "unknown organization"],
)
def test_put_with_unknown_helpdesk_ids_is_refused(projects, store, jira, spec, field):
    # Given an id JSM does not know
    before = store.snapshot()

    # When the project is put with it
    with pytest.raises(ValidationFailed) as refused:
        projects.put(SERVICE, "apollo", spec)

    # Then it is a 422 on that field; nothing is stored, created or attached in JSM
    assert [e.field for e in refused.value.errors] == [field]
    assert store.snapshot() == before
    assert jira.calls["create_organization"] == jira.calls["attach_organization"] == 0


@pytest.mark.parametrize(
    ("who", "allowed"),
    [
        (SERVICE, True),
        (principal(Role.PLATFORM_ADMIN, company=None), True),
        (PM, False),
        (principal(Role.COMPANY_ADMIN), False),
        (principal(Role.CONSOLE_USER), False),
    ],
    ids=["service", "platform admin", "project manager", "company admin", "console user"],
)
def test_only_the_service_and_platform_admins_put_projects(projects, store, jira, who, allowed):
    # Given a caller
    before = store.snapshot()

    # When they put a project
    # Then only the service and platform admins may, and a refusal touches nothing
    if allowed:
        projects.put(who, "apollo", SPEC)
        assert store.get_project("apollo") is not None
    else:
        with pytest.raises(Forbidden):
            projects.put(who, "apollo", SPEC)
        assert store.snapshot() == before
        assert sum(jira.calls.values()) == 0


def test_members_read_a_project(projects, store):
    # Given a project of the customer and the integrator
    store.seed(project("apollo"))

    # When members and others read it
    # Then members see it, others are forbidden, unknown projects are not found
    assert projects.get(principal(Role.CONSOLE_USER, company=INTEGRATOR), "apollo").name
    with pytest.raises(Forbidden):
        projects.get(principal(Role.PROJECT_MANAGER, company=OTHER), "apollo")
    with pytest.raises(NotFound):
        projects.get(PM, "nope")


# --- contacts ---------------------------------------------------------------------------------


def test_put_contact_creates_it_with_its_email(contacts, store):
    # Given / When the console syncs a new contact
    created, is_new = contacts.put(
        SERVICE,
        "c1",
        ContactSpec(
            email="ann@acme.example",
            name="Ann",
            company_id=CUSTOMER,
            console_user=True,
            groups=["ops"],
        ),
    )

    # Then it is stored and found by its email
    assert is_new
    assert store.get_contact("c1") == created
    assert store.find_contact_by_email("ann@acme.example") == created
    assert (created.status, created.external_for) == (ContactStatus.ACTIVE, [])


def test_put_contact_updates_it_keeping_links_and_status(contacts, store):
    # Given an offboarded contact linked as an external
    store.seed(
        contact(
            "c1",
            company=OTHER,
            email="ann@old.example",
            external_for=[CUSTOMER],
            status=ContactStatus.OFFBOARDED,
        )
    )

    # When the console syncs it with a new email and company
    updated, is_new = contacts.put(
        SERVICE, "c1", ContactSpec(email="ann@new.example", name="Ann B", company_id=INTEGRATOR)
    )

    # Then it is updated, the old email freed, links and status kept
    assert not is_new
    assert store.get_contact("c1") == updated
    assert (updated.external_for, updated.status) == ([CUSTOMER], ContactStatus.OFFBOARDED)
    assert store.find_contact_by_email("ann@new.example").contact_id == "c1"
    assert store.find_contact_by_email("ann@old.example") is None


def test_put_contact_with_another_contacts_email_is_a_conflict(contacts, store):
    # Given two contacts
    store.seed(contact("c1"), contact("c2"))
    before = store.snapshot()

    # When c2 is synced with c1's email
    with pytest.raises(Conflict):
        contacts.put(SERVICE, "c2", ContactSpec(email=contact("c1").email, name="C2"))

    # Then it is a 409 and nothing changes
    assert store.snapshot() == before


def test_only_the_service_syncs_contacts(contacts, store):
    # Given / When a platform admin puts a contact
    with pytest.raises(Forbidden):
        contacts.put(
            principal(Role.PLATFORM_ADMIN), "c1", ContactSpec(email="ann@acme.example", name="Ann")
        )

    # Then nothing is stored
    assert store.get_contact("c1") is None


def test_lookup_by_email_for_managers(contacts, store):
    # Given a contact
    ann = contact("ann")
    store.seed(ann)

    # When managers look emails up
    # Then they learn whether the contact exists; console users may not look
    assert contacts.lookup(PM, ann.email.upper()) == ann
    assert contacts.lookup(principal(Role.SUPERVISOR, company=OTHER), "x@y.example") is None
    with pytest.raises(Forbidden):
        contacts.lookup(principal(Role.CONSOLE_USER), ann.email)


def test_lookup_of_another_companys_contact_shows_only_who_it_is(contacts, store):
    # Given a customer contact with groups, linked as an external of the integrator, and a pure
    # external
    ann = contact("ann", groups=["devs"], external_for=[INTEGRATOR])
    pure = contact("pat", company=None, external_for=[CUSTOMER])
    store.seed(ann, pure)
    integrator_pm = principal(Role.PROJECT_MANAGER, company=INTEGRATOR)

    # When the integrator's manager looks them up / Then only id, name and email (rule 12)
    assert contacts.lookup(integrator_pm, ann.email) == ContactSummary("ann", "Ann", ann.email)
    assert contacts.lookup(PM, pure.email) == ContactSummary("pat", "Pat", pure.email)
    # And the contact's own company and platform admins see all of it
    assert contacts.lookup(PM, ann.email) == ann
    assert contacts.lookup(principal(Role.PLATFORM_ADMIN, company=None), ann.email) == ann


def test_eligible_contacts_exclude_granted_and_ineligible_ones(contacts, store):
    # Given customer contacts: granted, eligible, without Console User, offboarded; and others
    p1 = project()
    granted, eligible = contact("granted"), contact("eligible")
    store.seed(
        p1,
        granted,
        eligible,
        contact("no-cu", console_user=False),
        contact("gone", status=ContactStatus.OFFBOARDED),
        contact("ivan", company=INTEGRATOR),
        grant(p1, granted),
    )

    # When the customer's manager asks who can be added
    found = contacts.eligible(PM, p1.project_id)

    # Then only the customer's active Console Users without a grant are offered
    assert [c.contact_id for c in found] == ["eligible"]


def test_eligible_contacts_look_past_the_first_page_of_grants(contacts, store):
    # Given more grants than one page holds, the last one of a Console User
    p1 = project()
    late = contact("zz-late")
    store.seed(
        p1,
        late,
        contact("aa-free"),
        grant(p1, late),
        *(grant(p1, contact(f"g{n:03}")) for n in range(100)),
    )

    # When the eligible contacts are asked
    found = contacts.eligible(PM, p1.project_id)

    # Then the contact granted on the second page is excluded too
    assert [c.contact_id for c in found] == ["aa-free"]


@pytest.mark.parametrize(
    "who",
    [
        principal(Role.CONSOLE_USER),
        principal(Role.PROJECT_MANAGER, company=OTHER),
        principal(Role.SERVICE, company=None),
    ],
    ids=["console user", "manager of other company", "service"],
)
def test_eligible_contacts_are_for_the_project_managers(contacts, store, who):
    # Given a project
    store.seed(project())

    # When somebody who does not manage its grants asks
    # Then it is forbidden
    with pytest.raises(Forbidden):
        contacts.eligible(who, "p1")
