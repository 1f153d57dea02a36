"""Input rules that are not about roles: email domains (seed 004) and contact eligibility."""

from __future__ import annotations

from ..errors import ContactOffboarded, FieldError, ValidationFailed
from .models import Contact, ContactStatus, Project


def email_domain(email: str) -> str:
    return email.rsplit("@", 1)[-1].lower()


def domain_allowed(project: Project, email: str) -> bool:
    """Empty `allowed_email_domains` allows any domain; otherwise an exact (case-blind) match."""
    allowed = {d.lower() for d in project.allowed_email_domains}
    return not allowed or email_domain(email) in allowed


def ensure_domain_allowed(project: Project, email: str, field: str) -> None:
    if not domain_allowed(project, email):
        allowed = ", ".join(sorted(project.allowed_email_domains))
        message = (
            f"{email_domain(email)} is not an allowed email domain of this project ({allowed})"
        )
        raise ValidationFailed(message, [FieldError(field, message)])


def ensure_active(contact: Contact, field: str) -> None:
    if contact.status is not ContactStatus.ACTIVE:
        message = "this contact is offboarded"
        raise ContactOffboarded(message, [FieldError(field, message)])
