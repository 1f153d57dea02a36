"""Request and response models of the HTTP API (pydantic): validation and the OpenAPI schemas."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SkipValidation,
    StringConstraints,
    model_validator,
)

from ..domain.grant_batches import MAX_BATCH_ITEMS
from ..domain.typed_text import NAME_MAX_LENGTH, REASON_MAX_LENGTH, text_problem

ID_PATTERN = r"^[A-Za-z0-9._-]{1,64}$"
ID_RE = re.compile(ID_PATTERN)
# RFC 5321 "dot-atom" local parts (printable ASCII, no control characters or spaces).
EMAIL_PATTERN = r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$"
TIMESTAMP_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$"
DOMAIN_PATTERN = r"^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$"

Id = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
# ISO-8601 UTC, like every timestamp of the API.
Timestamp = Annotated[str, StringConstraints(pattern=TIMESTAMP_PATTERN)]
Email = Annotated[
    str, StringConstraints(pattern=EMAIL_PATTERN, max_length=254), AfterValidator(str.lower)
]


def _typed_text(max_length: int, min_length: int = 1) -> AfterValidator:
    """Rule 12 (`domain.typed_text`): names and reasons end up in emails."""

    def check(value: str) -> str:
        problem = text_problem(value, max_length, min_length)
        if problem:
            raise ValueError(problem)
        return value

    return AfterValidator(check)


TYPED_TEXT = "One line without control characters (it may end up in an email)."
Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=NAME_MAX_LENGTH),
    _typed_text(NAME_MAX_LENGTH),
    Field(description=TYPED_TEXT),
]
# Blank is allowed here: a reason is required only when support access is enabled (the domain).
Reason = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=REASON_MAX_LENGTH),
    _typed_text(REASON_MAX_LENGTH, min_length=0),
    Field(description=TYPED_TEXT),
]
# A reason that must be given (access requests): 1..500 characters.
RequiredReason = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=REASON_MAX_LENGTH),
    _typed_text(REASON_MAX_LENGTH),
    Field(description=TYPED_TEXT),
]
Domain = Annotated[
    str, StringConstraints(pattern=DOMAIN_PATTERN, max_length=253), AfterValidator(str.lower)
]
Group = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


class RequestModel(BaseModel):
    """Strict input: unknown fields and wrong JSON types are refused (422)."""

    # Validators are built on first use: the task Lambdas import the app but never parse a body.
    model_config = ConfigDict(extra="forbid", strict=True, defer_build=True)


class ResponseModel(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)


# --- requests -------------------------------------------------------------------------------


class PutProjectRequest(RequestModel):
    name: Name
    customer_company_id: Id
    integrator_company_id: Id | None = None
    created_by: Id | None = None
    service_desk_id: Annotated[str, StringConstraints(pattern=r"^[0-9]{1,18}$")]
    organization_id: Annotated[str, StringConstraints(pattern=r"^[0-9]{1,18}$")] | None = None
    allowed_email_domains: Annotated[list[Domain], Field(max_length=50)] = []


class PutContactRequest(RequestModel):
    email: Email
    name: Name
    company_id: Id | None = None
    console_user: bool = False
    groups: Annotated[list[Group], Field(max_length=50)] = []


class NewContactRequest(RequestModel):
    email: Email
    name: Name
    kind: Literal["company", "external"]
    groups: Annotated[list[Group], Field(max_length=50)] = []

    @model_validator(mode="after")
    def _groups_only_for_company(self) -> NewContactRequest:
        if self.kind == "external" and self.groups:
            raise ValueError("groups are only for company contacts")
        return self


class AddGrantRequest(RequestModel):
    contact_id: Id | None = None
    email: Email | None = None
    new_contact: NewContactRequest | None = None
    # When the access ends (rule 10): future, at most 366 days ahead (`domain.expiry`).
    expires_at: Timestamp | None = None

    @model_validator(mode="after")
    def _exactly_one_contact(self) -> AddGrantRequest:
        given = [self.contact_id, self.email, self.new_contact]
        if sum(value is not None for value in given) != 1:
            raise ValueError("give exactly one of contact_id, email, new_contact")
        return self


class GrantBatchRequest(RequestModel):
    """1..100 items in all. Each item is validated as its single call's input when it runs (a bad
    one is that item's 400/422 result, not the batch's), so only the lists are checked here."""

    add: Annotated[
        list[SkipValidation[AddGrantRequest]],
        Field(max_length=MAX_BATCH_ITEMS, description="as the body of POST .../grants"),
    ] = []
    remove: Annotated[
        list[SkipValidation[Id]],
        Field(max_length=MAX_BATCH_ITEMS, description="contact ids, as in DELETE .../grants/{id}"),
    ] = []

    @model_validator(mode="after")
    def _one_to_a_hundred_items(self) -> GrantBatchRequest:
        if not 1 <= len(self.add) + len(self.remove) <= MAX_BATCH_ITEMS:
            raise ValueError(f"a batch has 1 to {MAX_BATCH_ITEMS} items (add and remove together)")
        return self


class ChangeExpiryRequest(RequestModel):
    """`{"expires_at": ts}` moves the end of the access, `{"expires_at": null}` removes it."""

    expires_at: Timestamp | None


class OpenReviewRequest(RequestModel):
    """`{"due_at"}`: when undecided grants are removed (future, at most 90 days ahead)."""

    due_at: Timestamp


class ReviewDecisionRequest(RequestModel):
    decision: Literal["keep", "revoke"]


class CreateAccessRequestRequest(RequestModel):
    """A console user asks for access for themselves, saying why."""

    reason: RequiredReason


class ApproveAccessRequestRequest(RequestModel):
    """Optionally with when the granted access ends (future, at most 366 days ahead)."""

    expires_at: Timestamp | None = None


class DenyAccessRequestRequest(RequestModel):
    reason: Reason | None = None


class SupportAccessRequest(RequestModel):
    enabled: bool
    reason: Reason | None = None
    confirmation: str


# --- responses ------------------------------------------------------------------------------


class SupportAccessResponse(ResponseModel):
    enabled: bool
    reason: str | None
    changed_by: str | None
    changed_at: str | None


class ProjectResponse(ResponseModel):
    project_id: str
    name: str
    customer_company_id: str
    integrator_company_id: str | None
    created_by: str | None
    service_desk_id: str
    organization_id: str
    allowed_email_domains: list[str]
    support_access: SupportAccessResponse


class ContactResponse(ResponseModel):
    contact_id: str
    email: str
    name: str
    company_id: str | None
    console_user: bool
    groups: list[str]
    external_for: list[str]
    status: Literal["active", "offboarded"]


class ContactSummaryResponse(ResponseModel):
    """Another company's contact, as a manager's lookup shows it (rule 12)."""

    contact_id: str
    name: str
    email: str


class ContactLookupResponse(ResponseModel):
    exists: bool
    contact: ContactResponse | ContactSummaryResponse | None


class ContactList(ResponseModel):
    items: list[ContactResponse]
    next_cursor: str | None


class GrantErrorResponse(ResponseModel):
    code: str
    message: str


class GrantResponse(ResponseModel):
    project_id: str
    contact_id: str
    email: str
    name: str
    status: Literal[
        "activation_pending",
        "activated",
        "activation_failed",
        "deletion_pending",
        "deletion_failed",
    ]
    jira_account_id: str | None
    account_created: bool
    requested_by: str
    requested_at: str
    updated_at: str
    error: GrantErrorResponse | None
    expires_at: str | None
    granted_by_company_id: str | None
    outside_allowed_domains: bool


class ReviewItemResponse(ResponseModel):
    contact_id: str
    email: str
    name: str
    decision: Literal["keep", "revoke"] | None
    decided_by: str | None
    decided_at: str | None


class ReviewResponse(ResponseModel):
    review_id: str
    project_id: str
    status: Literal["open", "closed"]
    opened_by: str
    opened_at: str
    due_at: str
    closed_at: str | None
    items: list[ReviewItemResponse]


class ReviewList(ResponseModel):
    """Every review of the project, newest first, without their items."""

    items: list[ReviewResponse]
    next_cursor: str | None


class AccessRequestResponse(ResponseModel):
    request_id: str
    project_id: str
    contact_id: str
    email: str
    reason: str
    status: Literal["pending", "approved", "denied", "expired"]
    requested_at: str
    decided_by: str | None
    decided_at: str | None
    expires_at: str = Field(description="When the request expires if nobody decides it")
    grant_expires_at: str | None = Field(description="When the approved access ends, if set")


class AccessRequestList(ResponseModel):
    items: list[AccessRequestResponse]
    next_cursor: str | None


class GrantList(ResponseModel):
    items: list[GrantResponse]
    next_cursor: str | None


class ActorResponse(ResponseModel):
    type: Literal["user", "hr", "scim", "system"]
    id: str | None
    email: str | None


class ContactRef(ResponseModel):
    id: str
    email: str | None


class ActivityResponse(ResponseModel):
    project_id: str
    at: str
    id: str
    action: str
    actor: ActorResponse
    contact: ContactRef | None
    detail: dict[str, Any]


class ActivityList(ResponseModel):
    items: list[ActivityResponse]
    next_cursor: str | None


class ReconcileRequest(RequestModel):
    repair: bool = False
    remove_extra: bool = False


class MissingAccountResponse(ResponseModel):
    contact_id: str
    email: str
    jira_account_id: str
    where: list[Literal["organization", "service_desk"]]


class ExtraAccountResponse(ResponseModel):
    jira_account_id: str
    email: str


class ReconcileResponse(ResponseModel):
    checked_at: str
    missing: list[MissingAccountResponse]
    extra: list[ExtraAccountResponse]
    repaired: list[str]
    removed: list[str]


class HealthResponse(ResponseModel):
    status: Literal["ok"]


class HrEventAccepted(ResponseModel):
    """An HR event was verified and queued; the HR queue's consumer applies it."""

    id: str
    status: Literal["queued"]


class ProblemField(ResponseModel):
    field: str
    message: str


class Problem(ResponseModel):
    type: str
    title: str
    status: int
    detail: str
    errors: list[ProblemField] | None = None


def _absent(value: Any) -> bool:
    return value is None


class ItemProblem(Problem):
    """A grant batch item's problem: its single call's response body, with that response's
    `Retry-After` as `retry_after`. Members it does not have are left out, not null."""

    errors: list[ProblemField] | None = Field(default=None, exclude_if=_absent)
    retry_after: int | None = Field(
        default=None,
        exclude_if=_absent,
        description="seconds to wait before retrying the item (its call's Retry-After)",
    )


class GrantBatchResult(ResponseModel):
    """One item's outcome: a `grant` (2xx) or a `problem`, never both."""

    index: int = Field(description="the item's position in `add`, then `remove`, from 0")
    op: Literal["add", "remove"]
    contact_id: str | None = Field(description="null when an add's contact was not found")
    status: int = Field(description="the status its single call would have answered")
    grant: GrantResponse | None = Field(default=None, exclude_if=_absent)
    problem: ItemProblem | None = Field(default=None, exclude_if=_absent)


class GrantBatchResponse(ResponseModel):
    results: list[GrantBatchResult]


class NamedRef(ResponseModel):
    id: str
    name: str


class HelpdeskRequest(ResponseModel):
    key: str
    summary: str
    status: str
    created: str
    reporter: str


class HelpdeskResponse(ResponseModel):
    organization: NamedRef
    service_desk: NamedRef
    requests_url: str
    new_request_url: str
    latest_requests: list[HelpdeskRequest] | None
    requests_error: str | None


class ScimTokenCreated(ResponseModel):
    """A new SCIM token: `token` is shown this once (only its SHA-256 is stored)."""

    token_id: str
    token: str
    created_at: str


class ScimTokenResponse(ResponseModel):
    """A SCIM token as listed: never the token or its hash."""

    token_id: str
    created_at: str
    created_by: str
    revoked: bool
    revoked_at: str | None
    revoked_by: str | None


class ScimTokenList(ResponseModel):
    items: list[ScimTokenResponse]
    next_cursor: str | None
