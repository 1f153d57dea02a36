"""A company's contacts as its identity provider manages them over SCIM (SPEC §4).

The token's company scopes everything: another company's contact is "not found", and a userName
(email) taken by any contact is a conflict that does not say whose. Deactivating (`active` false,
or DELETE) offboards the contact exactly as an HR event does, with the token as actor;
reactivating gives no grant back. A deleted user is offboarded and leaves the provider's view; a
later POST of its email by the same company adopts it again.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..errors import EmailTaken, FieldError, NotFound, StaleState, ValidationFailed
from .ids import new_ulid
from .models import Actor, ActorType, Contact, ContactStatus, ScimToken
from .ports import ContactOffboarding, ScimStore
from .typed_text import NAME_MAX_LENGTH, text_problem

EXTERNAL_ID_MAX_LENGTH = 200
TAKEN = "a user with this userName already exists"


@dataclass(frozen=True)
class UserProfile:
    """What the provider says about a person: email (lower-case), name, its id, active."""

    email: str
    name: str
    external_id: str | None = None
    active: bool = True


@dataclass(frozen=True)
class UserQuery:
    """`filter=userName eq "…"` or `externalId eq "…"` (None: every user of the company)."""

    attribute: str  # "userName" | "externalId" | "id"
    value: str


def actor_of(token: ScimToken) -> Actor:
    return Actor(type=ActorType.SCIM, id=token.token_id)


def _check(profile: UserProfile) -> None:
    errors = []
    problem = text_problem(profile.name, NAME_MAX_LENGTH)
    if problem:
        errors.append(FieldError("name", problem))
    if profile.external_id is not None:
        problem = text_problem(profile.external_id, EXTERNAL_ID_MAX_LENGTH)
        if problem:
            errors.append(FieldError("externalId", problem))
    if errors:
        raise ValidationFailed("the user is not valid", errors)


class ScimUserService:
    def __init__(self, store: ScimStore, offboarding: ContactOffboarding) -> None:
        self._store = store
        self._offboarding = offboarding

    def get(self, token: ScimToken, contact_id: str) -> Contact:
        contact = self._store.get_contact(contact_id)
        if contact is None or contact.company_id != token.company_id or contact.scim_deleted:
            raise NotFound("not found")
        return contact

    def list(self, token: ScimToken, query: UserQuery | None) -> list[Contact]:
        """The company's users matching `query`, in a stable order (by id) for paging."""
        if query is not None and query.attribute == "userName":
            found = self._store.find_contact_by_email(query.value.lower())
            candidates = [found] if found else []
        else:
            candidates = self._store.company_contacts(token.company_id)
        users = [c for c in candidates if c.company_id == token.company_id and not c.scim_deleted]
        if query is not None and query.attribute == "externalId":
            users = [c for c in users if c.external_id == query.value]
        if query is not None and query.attribute == "id":
            users = [c for c in users if c.contact_id == query.value]
        return sorted(users, key=lambda c: c.contact_id)

    def create(self, token: ScimToken, profile: UserProfile) -> Contact:
        """A new contact of the token's company (not a console user); 409 if the email is taken
        (by any company's contact, unless it is one this company's provider deleted)."""
        _check(profile)
        existing = self._store.find_contact_by_email(profile.email)
        if existing is not None:
            if existing.company_id != token.company_id or not existing.scim_deleted:
                raise EmailTaken(TAKEN)
            return self._apply(token, existing, profile)
        status = ContactStatus.ACTIVE if profile.active else ContactStatus.OFFBOARDED
        contact = Contact(
            contact_id=new_ulid(),
            email=profile.email,
            name=profile.name,
            company_id=token.company_id,
            external_id=profile.external_id,
            status=status,
        )
        uow = self._store.unit_of_work()
        uow.create_contact(contact)
        try:
            uow.commit()
        except StaleState as exc:  # the email was claimed a moment ago
            raise EmailTaken(TAKEN) from exc
        return contact

    def replace(self, token: ScimToken, contact_id: str, profile: UserProfile) -> Contact:
        """PUT (and PATCH, once applied): the profile, then offboarding or reactivation."""
        _check(profile)
        return self._apply(token, self.get(token, contact_id), profile)

    def delete(self, token: ScimToken, contact_id: str) -> None:
        """Offboard the contact, then hide it from the provider (a retry finds it still there
        if offboarding failed)."""
        contact = self.get(token, contact_id)
        self._offboarding.offboard_contact(contact, actor_of(token))
        self._write_profile(contact, replace(contact, scim_deleted=True))

    def _apply(self, token: ScimToken, current: Contact, profile: UserProfile) -> Contact:
        wanted = replace(
            current,
            email=profile.email,
            name=profile.name,
            external_id=profile.external_id,
            scim_deleted=False,
        )
        if wanted.email != current.email:
            owner = self._store.find_contact_by_email(wanted.email)
            if owner is not None and owner.contact_id != current.contact_id:
                raise EmailTaken(TAKEN)
        contact = self._write_profile(current, wanted)
        if not profile.active:
            # Also when already offboarded: a repeat finishes what an earlier one left.
            self._offboarding.offboard_contact(contact, actor_of(token))
            contact = replace(contact, status=ContactStatus.OFFBOARDED)
        elif contact.status is ContactStatus.OFFBOARDED:
            contact = self._offboarding.reactivate_contact(contact, actor_of(token))
        return contact

    def _write_profile(self, current: Contact, wanted: Contact) -> Contact:
        if wanted == current:
            return current
        uow = self._store.unit_of_work()
        uow.update_contact_profile(current, wanted)
        try:
            uow.commit()
        except StaleState as exc:
            if wanted.email != current.email:
                raise EmailTaken(TAKEN) from exc
            raise
        return wanted
