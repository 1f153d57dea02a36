"""Domain objects → response models (the API's field names are the contract, not the domain's)."""

from __future__ import annotations

from ..domain.contacts import ContactSummary
from ..domain.grants import GrantView
from ..domain.models import ActivityEntry, Contact, Project, SupportAccess
from .models import (
    ActivityResponse,
    ActorResponse,
    ContactRef,
    ContactResponse,
    ContactSummaryResponse,
    GrantErrorResponse,
    GrantResponse,
    ProjectResponse,
    SupportAccessResponse,
)


def project(p: Project) -> ProjectResponse:
    return ProjectResponse(
        project_id=p.project_id,
        name=p.name,
        customer_company_id=p.customer_company_id,
        integrator_company_id=p.integrator_company_id,
        created_by=p.created_by,
        service_desk_id=p.service_desk_id,
        organization_id=p.organization_id,
        allowed_email_domains=p.allowed_email_domains,
        support_access=support_access(p.support_access),
    )


def contact_as_seen(c: Contact | ContactSummary) -> ContactResponse | ContactSummaryResponse:
    """A contact as the caller may see it (`domain.contacts.visible_contact`)."""
    if isinstance(c, ContactSummary):
        return ContactSummaryResponse(contact_id=c.contact_id, name=c.name, email=c.email)
    return contact(c)


def contact(c: Contact) -> ContactResponse:
    return ContactResponse(
        contact_id=c.contact_id,
        email=c.email,
        name=c.name,
        company_id=c.company_id,
        console_user=c.console_user,
        groups=c.groups,
        external_for=c.external_for,
        status=c.status.value,
    )


def grant(view: GrantView) -> GrantResponse:
    g = view.grant
    return GrantResponse(
        project_id=g.project_id,
        contact_id=g.contact_id,
        email=g.email,
        name=g.name,
        status=g.status.value,  # type: ignore[arg-type]  # REMOVED is never stored
        jira_account_id=g.jira_account_id,
        account_created=g.account_created,
        requested_by=g.requested_by,
        requested_at=g.requested_at,
        updated_at=g.updated_at,
        error=GrantErrorResponse(code=g.error.code, message=g.error.message) if g.error else None,
        expires_at=g.expires_at,
        granted_by_company_id=view.granted_by_company_id,
        outside_allowed_domains=view.outside_allowed_domains,
    )


def activity(e: ActivityEntry) -> ActivityResponse:
    return ActivityResponse(
        project_id=e.project_id,
        at=e.at,
        id=e.id,
        action=e.action,
        actor=ActorResponse(type=e.actor.type.value, id=e.actor.id, email=e.actor.email),
        contact=ContactRef(id=e.contact_id, email=e.contact_email) if e.contact_id else None,
        detail=e.detail,
    )


def support_access(access: SupportAccess) -> SupportAccessResponse:
    return SupportAccessResponse(
        enabled=access.enabled,
        reason=access.reason,
        changed_by=access.changed_by,
        changed_at=access.changed_at,
    )
