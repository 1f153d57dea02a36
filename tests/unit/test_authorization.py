"""Who may do what (SPEC §1 rules 2 and 8, §2 "who"): roles × companies, table-driven."""

from __future__ import annotations

import pytest

from chalicelib.domain.authorization import (
    acting_company,
    ensure_may_change_grant,
    ensure_may_change_support_access,
    ensure_member,
    ensure_role,
    is_member,
)
from chalicelib.domain.models import Role
from chalicelib.errors import Forbidden
from tests.fakes.builders import CUSTOMER, INTEGRATOR, OTHER, contact, principal, project

R = Role
PROJECT = project(created_by="u-creator")

PRINCIPALS = {
    "pm of customer": principal(R.PROJECT_MANAGER, company=CUSTOMER),
    "supervisor of customer": principal(R.SUPERVISOR, company=CUSTOMER),
    "pm of integrator": principal(R.PROJECT_MANAGER, company=INTEGRATOR),
    "supervisor of integrator": principal(R.SUPERVISOR, company=INTEGRATOR),
    "pm of other company": principal(R.PROJECT_MANAGER, company=OTHER),
    "supervisor of other company": principal(R.SUPERVISOR, company=OTHER),
    "console user of customer": principal(R.CONSOLE_USER, company=CUSTOMER),
    "console user of other company": principal(R.CONSOLE_USER, company=OTHER),
    "company admin of customer": principal(R.COMPANY_ADMIN, company=CUSTOMER),
    "company admin of integrator": principal(R.COMPANY_ADMIN, company=INTEGRATOR),
    "platform admin": principal(R.PLATFORM_ADMIN, company=None),
    "service": principal(R.SERVICE, company=None),
    "manager without company": principal(R.PROJECT_MANAGER, company=None),
}

# who → (is a member, company they manage grants for or None when they may not)
EXPECTED = {
    "pm of customer": (True, CUSTOMER),
    "supervisor of customer": (True, CUSTOMER),
    "pm of integrator": (True, INTEGRATOR),
    "supervisor of integrator": (True, INTEGRATOR),
    "pm of other company": (False, None),
    "supervisor of other company": (False, None),
    "console user of customer": (True, None),
    "console user of other company": (False, None),
    "company admin of customer": (True, None),
    "company admin of integrator": (True, None),
    "platform admin": (True, CUSTOMER),
    "service": (True, None),
    "manager without company": (False, None),
}

CONTACTS = {
    "customer contact": contact("cust", company=CUSTOMER),
    "integrator contact": contact("integ", company=INTEGRATOR),
    "other company's contact": contact("oth", company=OTHER),
    "external linked to customer": contact("ext-c", company=OTHER, external_for=[CUSTOMER]),
    "pure external linked to integrator": contact("ext-i", company=None, external_for=[INTEGRATOR]),
    "pure external linked to other": contact("ext-o", company=None, external_for=[OTHER]),
}

# contact → the company that gave its grant on PROJECT
GRANTED_BY = {
    "customer contact": CUSTOMER,
    "integrator contact": CUSTOMER,  # the customer granted the integrator's own contact
    "other company's contact": CUSTOMER,
    "external linked to customer": INTEGRATOR,  # linked to the customer, granted by the integrator
    "pure external linked to integrator": INTEGRATOR,
    "pure external linked to other": OTHER,
}
# who → the contacts whose grant they may change on PROJECT (rule 2; everyone else: Forbidden):
# managers of the granting company, of the contact's own company, and platform admins
MAY_CHANGE = {
    "pm of customer": {
        "customer contact",
        "integrator contact",
        "other company's contact",
    },
    "pm of integrator": {
        "integrator contact",
        "external linked to customer",
        "pure external linked to integrator",
    },
    "platform admin": set(CONTACTS),
}
MAY_CHANGE["supervisor of customer"] = MAY_CHANGE["pm of customer"]
MAY_CHANGE["supervisor of integrator"] = MAY_CHANGE["pm of integrator"]


@pytest.mark.parametrize("who", list(PRINCIPALS))
def test_membership(who):
    # Given a caller and a project of the customer and the integrator
    caller = PRINCIPALS[who]

    # When membership is checked
    member = is_member(caller, PROJECT)

    # Then only users of both companies, platform admins and services are members
    assert member is EXPECTED[who][0]
    if not member:
        with pytest.raises(Forbidden):
            ensure_member(caller, PROJECT)


@pytest.mark.parametrize("who", list(PRINCIPALS))
def test_acting_company(who):
    # Given a caller
    caller = PRINCIPALS[who]
    expected = EXPECTED[who][1]

    # When the company they manage grants for is asked
    # Then managers act for their own company, platform admins for the customer, others may not
    if expected is None:
        with pytest.raises(Forbidden):
            acting_company(caller, PROJECT)
    else:
        assert acting_company(caller, PROJECT) == expected


def test_integrator_manager_may_not_act_on_a_project_without_integrator():
    # Given a project that has no integrator
    solo = project(integrator_company_id=None)

    # When a manager of the (former) integrator acts on it
    # Then it is forbidden
    with pytest.raises(Forbidden):
        acting_company(PRINCIPALS["pm of integrator"], solo)


@pytest.mark.parametrize("which", list(CONTACTS))
@pytest.mark.parametrize("who", list(PRINCIPALS))
def test_who_may_change_which_grant(who, which):
    # Given a caller, and a contact's grant given by GRANTED_BY[which]
    caller, target = PRINCIPALS[who], CONTACTS[which]

    # When the caller wants to change (remove, retry, reset) that grant
    # Then only the granting company, the contact's own company and platform admins may; being
    # linked to a company as an external gives it no say over another company's grant
    if which in MAY_CHANGE.get(who, set()):
        ensure_may_change_grant(caller, PROJECT, GRANTED_BY[which], target)
    else:
        with pytest.raises(Forbidden):
            ensure_may_change_grant(caller, PROJECT, GRANTED_BY[which], target)


@pytest.mark.parametrize(
    ("caller", "allowed"),
    [
        (principal(R.COMPANY_ADMIN, company=CUSTOMER), True),
        (principal(R.COMPANY_ADMIN, company=INTEGRATOR), False),
        (principal(R.COMPANY_ADMIN, company=OTHER), False),
        (principal(R.CONSOLE_USER, company=INTEGRATOR, sub="u-creator"), True),
        (principal(R.PROJECT_MANAGER, company=CUSTOMER), False),
        (principal(R.SUPERVISOR, company=CUSTOMER), False),
        (principal(R.PLATFORM_ADMIN, company=None), False),
        (principal(R.SERVICE, company=None), False),
    ],
)
def test_support_access_is_for_customer_admins_and_the_creator(caller, allowed):
    # Given a project created by u-creator
    # When a caller wants to change its support access
    # Then only a company admin of the customer or the creator may
    if allowed:
        ensure_may_change_support_access(caller, PROJECT)
    else:
        with pytest.raises(Forbidden):
            ensure_may_change_support_access(caller, PROJECT)


def test_a_project_without_creator_admits_nobody_by_creatorship():
    # Given a project without a recorded creator
    anonymous = project(created_by=None)

    # When a customer's project manager asks
    # Then being nobody's creator grants nothing
    with pytest.raises(Forbidden):
        ensure_may_change_support_access(principal(R.PROJECT_MANAGER), anonymous)


def test_ensure_role_names_the_roles_needed():
    # Given a console user
    caller = principal(R.CONSOLE_USER)

    # When an operation needs the service role
    with pytest.raises(Forbidden) as refused:
        ensure_role(caller, R.SERVICE, R.PLATFORM_ADMIN)

    # Then the refusal names the roles
    assert "service, platform_admin" in refused.value.message
    ensure_role(principal(R.SERVICE, R.CONSOLE_USER), R.SERVICE)
