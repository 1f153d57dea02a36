"""The domain events on the bus (SPEC §3): one typed model per `detail-type`.

Consumers rely on these shapes: `docs/events.md` publishes their JSON Schemas (generated from
these models, checked by `tests/contract/test_event_contract.py`), so a field is never renamed
or dropped silently. A model's class name is its EventBridge `detail-type`.
"""

from __future__ import annotations

from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict

from .models import Grant, GrantStatus


class DomainEvent(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    description: ClassVar[str] = ""

    @classmethod
    def detail_type(cls) -> str:
        return cls.__name__

    def detail(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class GrantEvent(DomainEvent):
    """What every grant event says: which grant, which JSM account, which lifecycle run."""

    project_id: str
    contact_id: str
    jira_account_id: str | None
    lifecycle_id: str | None

    @classmethod
    def of(cls, grant: Grant) -> Self:
        """The event of `grant` as just written (its fields read by name)."""
        return cls.model_validate(grant, from_attributes=True)


class GrantActivated(GrantEvent):
    """A grant reached `activated`: the contact may open requests on the project's helpdesk."""

    account_created: bool


class GrantRemoved(GrantEvent):
    """A grant's removal finished: its item is gone, the account left the project's helpdesk."""


class GrantError(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", from_attributes=True)

    code: str
    message: str


class GrantFailed(GrantEvent):
    """An activation or removal failed: the grant is `activation_failed`/`deletion_failed`."""

    status: GrantStatus
    error: GrantError


class ExternalContactUnlinked(DomainEvent):
    """An external contact lost its last grant given by a company and was unlinked from it."""

    contact_id: str
    company_id: str
    project_id: str


class ContactOffboarded(DomainEvent):
    """A contact was offboarded (HR event or SCIM deactivation): every grant it had goes to
    removal (`grant.removal_requested` with the same actor and `detail.reason`)."""

    contact_id: str
    actor_type: str  # "hr" or "scim"
    actor_id: str | None
    reason: str


class SupportAccessChanged(DomainEvent):
    """The vendor support-access switch of a project was turned on or off (seed 003)."""

    project_id: str
    enabled: bool
    reason: str | None
    changed_by: str | None
    changed_at: str | None


class DriftFound(DomainEvent):
    """The daily drift check found one project's JSM organization different from its grants
    (report only: `POST /projects/{id}/reconcile` repairs)."""

    project_id: str
    missing_in_jsm: list[str]  # account ids of activated grants that are not members
    unknown_in_jsm: list[str]  # members without a grant
    left_over_in_jsm: list[str]  # failed activations whose account is still a member
    shares_organization_with: list[str]  # other project ids
    found: int


class AccessReviewOpened(DomainEvent):
    """A project's manager opened an access review: one item per activated grant, to be decided
    by `due_at` (undecided grants are removed then)."""

    project_id: str
    review_id: str
    opened_by: str
    due_at: str
    items: int


class AccessReviewClosed(DomainEvent):
    """An access review reached its deadline and closed; its `undecided` grants were removed
    (reason `review_expired`), its `revoked` ones when they were decided."""

    project_id: str
    review_id: str
    kept: int
    revoked: int
    undecided: int


class AccessRequested(DomainEvent):
    """A contact asked for access to a project; managers of its company decide."""

    project_id: str
    request_id: str
    contact_id: str
    company_id: str
    expires_at: str


class AccessRequestDecided(DomainEvent):
    """An access request was approved (the grant's activation started), denied, or expired."""

    project_id: str
    request_id: str
    contact_id: str
    status: str
    decided_by: str | None


EVENT_TYPES: tuple[type[DomainEvent], ...] = (
    GrantActivated,
    GrantRemoved,
    GrantFailed,
    ExternalContactUnlinked,
    SupportAccessChanged,
    ContactOffboarded,
    DriftFound,
    AccessReviewOpened,
    AccessReviewClosed,
    AccessRequested,
    AccessRequestDecided,
)


def json_schemas() -> dict[str, dict[str, Any]]:
    """The JSON Schema of each event's `detail`, by `detail-type` (what `docs/events.md` shows)."""
    return {cls.detail_type(): cls.model_json_schema() for cls in EVENT_TYPES}
