"""The service's entities and value objects, as the rest of the code sees them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal


def utc_now() -> datetime:
    return datetime.now(UTC)


def parse_iso(text: str) -> datetime:
    """The moment an `iso()` timestamp names."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def iso(moment: datetime) -> str:
    """ISO-8601 UTC with milliseconds, the one timestamp format of the API and the activity log."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Role(StrEnum):
    CONSOLE_USER = "console_user"
    PROJECT_MANAGER = "project_manager"
    SUPERVISOR = "supervisor"
    COMPANY_ADMIN = "company_admin"
    PLATFORM_ADMIN = "platform_admin"
    SERVICE = "service"


class GrantStatus(StrEnum):
    ACTIVATION_PENDING = "activation_pending"
    ACTIVATED = "activated"
    ACTIVATION_FAILED = "activation_failed"
    DELETION_PENDING = "deletion_pending"
    DELETION_FAILED = "deletion_failed"
    REMOVED = "removed"  # never stored: a removed grant's item is deleted


class ContactStatus(StrEnum):
    ACTIVE = "active"
    OFFBOARDED = "offboarded"


class ActorType(StrEnum):
    USER = "user"
    HR = "hr"
    SCIM = "scim"
    SYSTEM = "system"


@dataclass(frozen=True)
class Principal:
    """Who is calling the API, from the verified JWT."""

    sub: str
    email: str
    company_id: str | None
    roles: frozenset[Role]

    def has_any(self, *roles: Role) -> bool:
        return bool(self.roles.intersection(roles))

    def as_actor(self) -> Actor:
        return Actor(type=ActorType.USER, id=self.sub, email=self.email)


@dataclass(frozen=True)
class Actor:
    """Who made a change, as the activity log records it."""

    type: ActorType
    id: str | None = None
    email: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type.value, "id": self.id, "email": self.email}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Actor:
        return cls(type=ActorType(data["type"]), id=data.get("id"), email=data.get("email"))


SYSTEM_ACTOR = Actor(type=ActorType.SYSTEM, id="helpdesk-access")


@dataclass
class Contact:
    contact_id: str
    email: str
    name: str
    company_id: str | None = None
    console_user: bool = False
    groups: list[str] = field(default_factory=list)
    external_for: list[str] = field(default_factory=list)
    status: ContactStatus = ContactStatus.ACTIVE
    # The company's identity provider's id of this person (SCIM `externalId`), and whether the
    # provider deleted it (SCIM DELETE: offboarded and gone from its view; a POST may adopt it
    # again).
    external_id: str | None = None
    scim_deleted: bool = False

    def belongs_to(self, company_id: str | None) -> bool:
        """A company's own contact, or an external linked to it."""
        return company_id is not None and (
            self.company_id == company_id or company_id in self.external_for
        )


@dataclass
class SupportAccess:
    enabled: bool = False
    reason: str | None = None
    changed_by: str | None = None
    changed_at: str | None = None
    # False from a change until the support team's email about it went out: the outbox of
    # rule 8, stored with the change itself (`SupportAccessService.deliver_owed_emails`).
    notified: bool = True


@dataclass
class Project:
    project_id: str
    name: str
    customer_company_id: str
    service_desk_id: str
    organization_id: str
    integrator_company_id: str | None = None
    created_by: str | None = None
    allowed_email_domains: list[str] = field(default_factory=list)
    support_access: SupportAccess = field(default_factory=SupportAccess)
    # Display names read from JSM when the helpdesk was linked, so the Helpdesk tab can show
    # them while JSM is down.
    service_desk_name: str | None = None
    organization_name: str | None = None

    @property
    def company_ids(self) -> set[str]:
        return {c for c in (self.customer_company_id, self.integrator_company_id) if c}


@dataclass
class GrantError:
    code: str
    message: str


@dataclass
class Grant:
    project_id: str
    contact_id: str
    status: GrantStatus
    email: str
    name: str
    requested_by: str
    requested_at: str
    updated_at: str
    service_desk_id: str
    organization_id: str
    # The company whose manager gave this grant: its managers may change it (rule 2), and an
    # external's link to that company lives as long as some grant it gave does (rule 5).
    # None on grants written before it was stored: `GrantService` derives it from the requester.
    granted_by_company_id: str | None = None
    jira_account_id: str | None = None
    account_created: bool = False
    error: GrantError | None = None
    expires_at: str | None = None
    # Name of the Step Functions execution running (or last run) for this grant's lifecycle.
    lifecycle_id: str | None = None
    # When the last password reset email went out (at most one per RESET_INTERVAL, rule 6).
    reset_sent_at: str | None = None
    # The welcome email could not be sent when the grant activated (SES refused): the sweeper
    # sends it (`GrantSteps.deliver_owed_welcome_emails`); the grant stays activated meanwhile.
    welcome_owed: bool = False
    # The `expires_at` whose reminder email went out (one reminder per expiry, `domain.expiry`).
    expiry_reminded_for: str | None = None


@dataclass(frozen=True)
class ActivityEntry:
    project_id: str
    at: str
    id: str
    action: str
    actor: Actor
    contact_id: str | None = None
    contact_email: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ActivityFilter:
    """Which entries of a project's log to read besides the contact: some actions, a time
    window (`since` <= at < `until`). Empty means everything."""

    actions: frozenset[str] = frozenset()
    since: datetime | None = None
    until: datetime | None = None


EVERY_ENTRY = ActivityFilter()


Decision = Literal["keep", "revoke"]


@dataclass(frozen=True)
class ReviewItem:
    """One reviewed grant: who, the run it was reviewed in, and the decision (None = open)."""

    contact_id: str
    email: str
    name: str
    lifecycle_id: str | None
    granted_by_company_id: str | None
    decision: Decision | None = None
    decided_by: str | None = None
    decided_at: str | None = None


@dataclass(frozen=True)
class Review:
    review_id: str
    project_id: str
    status: Literal["open", "closed"]
    opened_by: str
    opened_at: str
    due_at: str
    closed_at: str | None = None
    items: list[ReviewItem] = field(default_factory=list)

    def item(self, contact_id: str) -> ReviewItem | None:
        return next((i for i in self.items if i.contact_id == contact_id), None)


RequestStatus = Literal["pending", "approved", "denied", "expired"]


@dataclass(frozen=True)
class AccessRequest:
    """A contact asking for access to a project (rule 11); `expires_at`: when a request still
    pending expires. `company_id`: the requester's company, whose managers decide."""

    request_id: str
    project_id: str
    contact_id: str
    email: str
    name: str
    company_id: str
    reason: str
    status: RequestStatus
    requested_at: str
    expires_at: str
    decided_by: str | None = None
    decided_at: str | None = None
    grant_expires_at: str | None = None


@dataclass(frozen=True)
class ScimToken:
    """A company's SCIM bearer token as stored: only its SHA-256 (`token_hash`), never the token."""

    token_id: str
    company_id: str
    token_hash: str
    created_at: str
    created_by: str
    revoked_at: str | None = None
    revoked_by: str | None = None
