"""The contact directory as the console syncs it, and the lookups of the "Add contact" form."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ..errors import Conflict, StaleState
from .authorization import MANAGERS, acting_company, ensure_role
from .models import Contact, Principal, Role
from .ports import Store
from .projects import member_project


@dataclass(frozen=True)
class ContactSummary:
    """What a manager may see of another company's contact (rule 12): who it is, nothing more."""

    contact_id: str
    name: str
    email: str


def visible_contact(principal: Principal, contact: Contact) -> Contact | ContactSummary:
    """The whole contact for its own company and platform admins, else only its summary: its
    groups, company and external links are another company's business."""
    if Role.PLATFORM_ADMIN in principal.roles or (
        contact.company_id is not None and contact.company_id == principal.company_id
    ):
        return contact
    return ContactSummary(contact.contact_id, contact.name, contact.email)


@dataclass(frozen=True)
class ContactSpec:
    email: str
    name: str
    company_id: str | None = None
    console_user: bool = False
    groups: list[str] = field(default_factory=list)


class ContactService:
    def __init__(self, store: Store) -> None:
        self._store = store

    def put(self, principal: Principal, contact_id: str, spec: ContactSpec) -> tuple[Contact, bool]:
        """Directory sync (service only): create or update, keeping status and external links."""
        ensure_role(principal, Role.SERVICE)
        owner = self._store.find_contact_by_email(spec.email)
        if owner is not None and owner.contact_id != contact_id:
            raise Conflict(f"{spec.email} already belongs to contact {owner.contact_id}")
        existing = self._store.get_contact(contact_id)
        contact = Contact(
            contact_id=contact_id,
            email=spec.email,
            name=spec.name,
            company_id=spec.company_id,
            console_user=spec.console_user,
            groups=list(spec.groups),
        )
        if existing is not None:
            contact = replace(contact, external_for=existing.external_for, status=existing.status)
        uow = self._store.unit_of_work()
        uow.put_contact(contact, previous_email=existing.email if existing else None)
        try:
            uow.commit()
        except StaleState as exc:
            raise Conflict(
                f"{spec.email} already belongs to another contact, or the contact changed while"
                " it was synced (send it again)"
            ) from exc
        return contact, existing is None

    def lookup(self, principal: Principal, email: str) -> Contact | ContactSummary | None:
        """ "This contact exists in the portal": for the managers' Add contact form."""
        ensure_role(principal, *MANAGERS, Role.PLATFORM_ADMIN)
        contact = self._store.find_contact_by_email(email)
        return visible_contact(principal, contact) if contact else None

    def eligible(self, principal: Principal, project_id: str) -> list[Contact]:
        """The actor's company contacts with Console User and no grant on the project yet."""
        project = member_project(self._store, principal, project_id)
        company = acting_company(principal, project)
        granted = {g.contact_id for g in self._store.all_grants_of_project(project_id)}
        return [
            c for c in self._store.company_console_users(company) if c.contact_id not in granted
        ]
