"""Who may do what (SPEC §1 rules 2, 3 and 8, §2 "who"): the only place roles are interpreted."""

from __future__ import annotations

from ..errors import Forbidden
from .models import Contact, Principal, Project, Role

MANAGERS = (Role.PROJECT_MANAGER, Role.SUPERVISOR)


def is_member(principal: Principal, project: Project) -> bool:
    """Any user of the project's customer or integrator company, platform admins and services."""
    if principal.has_any(Role.PLATFORM_ADMIN, Role.SERVICE):
        return True
    return principal.company_id is not None and principal.company_id in project.company_ids


def ensure_member(principal: Principal, project: Project) -> None:
    if not is_member(principal, project):
        raise Forbidden("only members of the project's companies may see this project")


def acting_company(principal: Principal, project: Project) -> str:
    """The company a grant manager acts for on this project; Forbidden when none.

    Project managers and supervisors act for their own company, which must be the project's
    customer or integrator. A platform admin may do what a project manager may on any project and
    acts for the project's customer company (see docs/decisions.md).
    """
    if principal.has_any(Role.PLATFORM_ADMIN):
        return project.customer_company_id
    if principal.has_any(*MANAGERS) and principal.company_id in project.company_ids:
        return str(principal.company_id)
    raise Forbidden(
        "only project managers and supervisors of the project's customer or integrator company "
        "may manage helpdesk access"
    )


def ensure_may_change_grant(
    principal: Principal, project: Project, granted_by: str | None, contact: Contact | None
) -> None:
    """Rule 2: a grant belongs to the company that gave it. Its managers, managers of the
    contact's own company and platform admins may change it; linking someone's contact as an
    external gives a company no say over grants another company gave."""
    company = acting_company(principal, project)
    if principal.has_any(Role.PLATFORM_ADMIN) or company == granted_by:
        return
    if contact is not None and contact.company_id == company:
        return
    raise Forbidden("this grant was given by another company; its managers may change it")


def ensure_may_change_support_access(principal: Principal, project: Project) -> None:
    """Only a company admin of the customer company or the project's creator (seed 003)."""
    if principal.sub == project.created_by:
        return
    if (
        principal.has_any(Role.COMPANY_ADMIN)
        and principal.company_id == project.customer_company_id
    ):
        return
    raise Forbidden(
        "only an admin of the customer company or the project's creator may change support access"
    )


def ensure_role(principal: Principal, *roles: Role) -> None:
    if not principal.has_any(*roles):
        names = ", ".join(r.value for r in roles)
        raise Forbidden(f"this operation needs one of the roles: {names}")


def ensure_may_open_review(principal: Principal, project: Project) -> None:
    """Access reviews are opened by the customer company's managers, or a platform admin."""
    if principal.has_any(Role.PLATFORM_ADMIN):
        return
    if principal.has_any(*MANAGERS) and principal.company_id == project.customer_company_id:
        return
    raise Forbidden(
        "only project managers and supervisors of the project's customer company may open an "
        "access review"
    )


def ensure_may_request_access(principal: Principal, project: Project) -> None:
    """A console user of the project's customer or integrator company asks for themselves."""
    if principal.has_any(Role.CONSOLE_USER) and principal.company_id in project.company_ids:
        return
    raise Forbidden(
        "only console users of the project's customer or integrator company may ask for access"
    )


def may_decide_request(principal: Principal, project: Project, requester_company: str) -> bool:
    """Managers of the requester's company (on this project) and platform admins decide."""
    if principal.has_any(Role.PLATFORM_ADMIN):
        return True
    return (
        principal.has_any(*MANAGERS)
        and principal.company_id == requester_company
        and principal.company_id in project.company_ids
    )


def ensure_may_decide_request(
    principal: Principal, project: Project, requester_company: str, requester_id: str
) -> None:
    """Rule 11: a manager of the requester's company decides; never the requester."""
    if principal.sub == requester_id:
        raise Forbidden("nobody approves or denies their own access request")
    if not may_decide_request(principal, project, requester_company):
        raise Forbidden("only managers of the requester's company may decide this request")


def ensure_may_manage_scim_tokens(principal: Principal, company_id: str) -> None:
    """A company's SCIM tokens are minted and revoked by its company admins or a platform admin."""
    if principal.has_any(Role.PLATFORM_ADMIN):
        return
    if principal.has_any(Role.COMPANY_ADMIN) and principal.company_id == company_id:
        return
    raise Forbidden("only an admin of this company may manage its SCIM tokens")
