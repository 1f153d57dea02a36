"""The messages of the HR queue (SPEC §4): HR events, and the follow-up rounds of a revocation.

`HrEvent` is the public contract HR systems send (through `POST /hr/events` or straight to the
queue); `FollowUpRound` is the service's own message continuing a revocation fan-out
(`domain.offboarding`). Both are strict: a message that is neither is malformed (DLQ).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

from .models import Actor, ActorType
from .offboarding import Kind, Revocation

# The ids an HR system gives its events; they key the idempotency records.
EventId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:@#/-]+$")]
ContactId = Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")]
Email = Annotated[str, Field(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")]


class HrEvent(BaseModel):
    """One HR event: `contact_id` or `email` names the contact; `company_id` is the new company
    of a `contact.company_changed` (null: the contact leaves every company)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: EventId
    type: Literal["contact.offboarded", "contact.company_changed"]
    contact_id: ContactId | None = None
    email: Email | None = None
    company_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")] | None = None
    occurred_at: datetime

    @model_validator(mode="before")
    @classmethod
    def _company_given(cls, data: Any) -> Any:
        if (
            isinstance(data, dict)
            and data.get("type") == "contact.company_changed"
            and "company_id" not in data
        ):
            raise ValueError("company_id is required for contact.company_changed")
        return data

    @model_validator(mode="after")
    def _names_the_contact(self) -> Self:
        if self.contact_id is None and self.email is None:
            raise ValueError("contact_id or email must name the contact")
        if self.occurred_at.tzinfo is None:
            raise ValueError("occurred_at needs a time zone (ISO-8601 with Z or an offset)")
        return self


class FollowUpRound(BaseModel):
    """The next round of a revocation fan-out, sent by the service to its own HR queue."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: EventId
    type: Literal["revocation.follow_up"] = "revocation.follow_up"
    contact_id: ContactId
    kind: Kind
    reason: str
    origin: str
    started_at: str
    round: int = Field(ge=1)
    actor_type: ActorType
    actor_id: str | None = None

    @classmethod
    def of(cls, revocation: Revocation) -> FollowUpRound:
        return cls(
            # One revocation's rounds: unique per contact, start and round (a SCIM token, the
            # origin of many revocations, would not be).
            id=f"{revocation.contact_id}@{revocation.started_at}#{revocation.kind}-{revocation.round}",
            contact_id=revocation.contact_id,
            kind=revocation.kind,
            reason=revocation.reason,
            origin=revocation.origin,
            started_at=revocation.started_at,
            round=revocation.round,
            actor_type=revocation.actor.type,
            actor_id=revocation.actor.id,
        )

    def revocation(self) -> Revocation:
        return Revocation(
            contact_id=self.contact_id,
            actor=Actor(type=self.actor_type, id=self.actor_id),
            kind=self.kind,
            reason=self.reason,
            origin=self.origin,
            started_at=self.started_at,
            round=self.round,
        )


HrMessage = Annotated[HrEvent | FollowUpRound, Field(discriminator="type")]
HR_MESSAGE: TypeAdapter[HrEvent | FollowUpRound] = TypeAdapter(HrMessage)
HR_EVENT: TypeAdapter[HrEvent] = TypeAdapter(HrEvent)
