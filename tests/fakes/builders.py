"""Builders of domain records for tests: sensible defaults, override what the test is about."""

from __future__ import annotations

from typing import Any

from chalicelib.domain.models import Contact, Grant, GrantStatus, Principal, Project, Role

CUSTOMER = "acme"
INTEGRATOR = "integ"
OTHER = "other"
DOMAINS = {CUSTOMER: "acme.example", INTEGRATOR: "integ.example", OTHER: "other.example"}
REQUESTED_AT = "2026-01-05T09:00:00.000Z"


def principal(*roles: Role, company: str | None = CUSTOMER, sub: str = "u-actor") -> Principal:
    return Principal(
        sub=sub, email=f"{sub}@example.com", company_id=company, roles=frozenset(roles)
    )


def project(project_id: str = "p1", **overrides: Any) -> Project:
    values: dict[str, Any] = {
        "project_id": project_id,
        "name": f"Project {project_id}",
        "customer_company_id": CUSTOMER,
        "integrator_company_id": INTEGRATOR,
        "created_by": "u-creator",
        "service_desk_id": "1",
        "organization_id": "10",
    }
    return Project(**{**values, **overrides})


def contact(contact_id: str, company: str | None = CUSTOMER, **overrides: Any) -> Contact:
    """A company's contact with the Console User profile (`company=None`: a pure external)."""
    domain = DOMAINS.get(company or "", "external.example")
    values: dict[str, Any] = {
        "contact_id": contact_id,
        "email": f"{contact_id}@{domain}",
        "name": contact_id.title(),
        "company_id": company,
        "console_user": True,
    }
    return Contact(**{**values, **overrides})


def grant(
    of_project: Project,
    of_contact: Contact,
    status: GrantStatus = GrantStatus.ACTIVATED,
    **overrides: Any,
) -> Grant:
    values: dict[str, Any] = {
        "project_id": of_project.project_id,
        "contact_id": of_contact.contact_id,
        "status": status,
        "email": of_contact.email,
        "name": of_contact.name,
        "requested_by": "u-actor",
        "requested_at": REQUESTED_AT,
        "updated_at": REQUESTED_AT,
        "service_desk_id": of_project.service_desk_id,
        "organization_id": of_project.organization_id,
        "granted_by_company_id": of_project.customer_company_id,
        "lifecycle_id": f"{of_project.project_id}-{of_contact.contact_id}-L1",
    }
    return Grant(**{**values, **overrides})
