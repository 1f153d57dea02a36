"""The small interfaces the domain depends on; `store/`, `events/`, `mail/`, `workflows/` and
`jira/` implement them, and `tests/fakes/` may too."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Literal, Protocol, TypeVar

from .events import DomainEvent
from .models import (
    EVERY_ENTRY,
    AccessRequest,
    ActivityEntry,
    ActivityFilter,
    Actor,
    Contact,
    ContactStatus,
    Grant,
    Project,
    Review,
    ReviewItem,
    ScimToken,
    SupportAccess,
)

T = TypeVar("T")
ReferenceKind = Literal["desk", "company"]


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


@dataclass(frozen=True)
class GrantReads:
    """What adding a grant reads, fetched in one round trip (`Store.read_for_grant`)."""

    project: Project | None
    contact: Contact | None = None  # by `contact_id`
    grant: Grant | None = None  # of (`project_id`, `contact_id`)
    email_owner: str | None = None  # the contact id that claims `email`
    last_run: LastRun | None = None  # of a removed grant of (`project_id`, `contact_id`)


@dataclass(frozen=True)
class LastRun:
    """The run that removed a grant (its item is gone): a new grant waits for its execution."""

    lifecycle_id: str
    ended_at: str


class UnitOfWork(Protocol):
    """A set of writes committed atomically (one DynamoDB transaction), or not at all."""

    def create_contact(self, contact: Contact) -> None: ...
    def put_contact(self, contact: Contact, previous_email: str | None) -> None: ...
    def put_project(
        self,
        project: Project,
        *,
        expected_organization_id: str | None = None,
        released_organization_id: str | None = None,
    ) -> None:
        """Create or replace a project and claim its organization for it alone (SPEC §1).

        The write loses (`StaleState` on commit) if another project claimed the organization,
        or if the stored project is linked to neither `expected_organization_id` (the one it was
        read with; None for a new project) nor the project's own organization.
        `released_organization_id`: a claim of this project to delete (it moved away).
        """
        ...

    def change_support_access(
        self, project_id: str, access: SupportAccess, *, expected: SupportAccess
    ) -> None:
        """Set the project's support access, if it still is `expected` (as last changed)."""
        ...

    def mark_support_access_notified(self, project_id: str, changed_at: str) -> None:
        """Clear the project's owed email, if its support access is still that change."""
        ...

    def change_contact_status(self, contact_id: str, status: ContactStatus) -> None:
        """Set the contact's status, if it exists and is not `status` already (offboarding and
        reactivation: of two sources changing it at once, one writes)."""
        ...

    def change_contact_company(
        self, contact_id: str, company_id: str | None, expected: str | None
    ) -> None:
        """Move the contact to `company_id` (None: none), if it is still in `expected`."""
        ...

    def require_active_contact(self, contact_id: str) -> None:
        """Commit only if the contact is still active (a condition, no write): a grant given
        while the contact is being offboarded loses instead of outliving it."""
        ...

    def link_external(self, contact_id: str, company_id: str) -> None:
        """Link, if the contact is active and not linked yet."""
        ...

    def unlink_external(self, contact_id: str, company_id: str) -> None:
        """Unlink, if still linked and no grant of that company references the contact."""
        ...

    def require_external_link(self, contact_id: str, company_id: str) -> None:
        """Commit only if the contact is still active and linked to that company (a condition,
        no write)."""
        ...

    def create_grant(self, grant: Grant) -> None: ...
    def transition_grant(
        self, current: Grant, new: Grant, *, expiry_unchanged: bool = False
    ) -> None:
        """Write `new`'s status and run fields, if the item still has `current`'s status and run
        (and, with `expiry_unchanged`, its `expires_at`). A grant whose removal starts leaves the
        expiry index."""
        ...

    def change_expiry(self, current: Grant, expires_at: str | None, updated_at: str) -> None:
        """Set (or, with None, clear) `expires_at` and forget its reminder, if the grant still
        has `current`'s status, run and `expires_at`; the grant enters or leaves the expiry
        index with it."""
        ...

    def mark_expiry_reminded(self, current: Grant) -> None:
        """Remember that `current.expires_at`'s reminder went out, if it is still the expiry."""
        ...

    def note_account_created(self, current: Grant) -> None:
        """Set `account_created`, if the grant is still in `current`'s status and run."""
        ...

    def delete_grant(self, current: Grant) -> None:
        """Delete the grant, if it still is `deletion_pending` in `current`'s run."""
        ...

    def claim_password_reset(self, current: Grant, at: str, *, previous_before: str) -> None:
        """Set `reset_sent_at` to `at`, if the grant is still activated and its last reset (if
        any) was sent before `previous_before`."""
        ...

    def release_password_reset(self, current: Grant, at: str) -> None:
        """Undo `claim_password_reset(at)` (its email could not be sent)."""
        ...

    def clear_welcome_owed(self, current: Grant) -> None:
        """Clear `welcome_owed`, if the grant is still activated in `current`'s run."""
        ...

    def record_last_run(self, grant: Grant, ended_at: str) -> None:
        """Remember the run that removed `grant` (see `GrantReads.last_run`)."""
        ...

    def reference(self, grant: Grant, kind: ReferenceKind, *, add: bool) -> None:
        """Add or drop the grant's project in one of its contact's reference sets (see
        `GrantLifecycle._keep_references`): `desk` keyed by service desk, `company` by the
        company that granted it."""
        ...

    def open_review(self, review: Review) -> None:
        """Store a new open review with its items, if the project has no open review."""
        ...

    def decide_review_item(self, review: Review, item: ReviewItem) -> None:
        """Record `item`'s decision, if the review is still open and the item undecided."""
        ...

    def close_review(self, review: Review) -> None:
        """Close the review (it leaves the due index, its project may open another), if it is
        still open."""
        ...

    def create_access_request(self, request: AccessRequest) -> None:
        """Store a new pending request, if its contact has no other pending request there."""
        ...

    def decide_access_request(self, current: AccessRequest, decided: AccessRequest) -> None:
        """Write `decided`'s status and decision, if the request is still pending (it leaves the
        pending and due indexes; the contact may ask again)."""
        ...

    def append(self, entry: ActivityEntry) -> None: ...
    def commit(self) -> None: ...


class Store(Protocol):
    def unit_of_work(self) -> UnitOfWork: ...
    def get_project(self, project_id: str) -> Project | None: ...
    def read_for_grant(
        self, project_id: str, *, contact_id: str | None = None, email: str | None = None
    ) -> GrantReads:
        """The project, the contact and its grant there, and who claims `email`: one batch read."""
        ...

    def organization_owner(self, organization_id: str) -> str | None:
        """The project that claimed this JSM organization, if any."""
        ...

    def get_contact(self, contact_id: str) -> Contact | None: ...
    def find_contact_by_email(self, email: str) -> Contact | None: ...
    def company_console_users(self, company_id: str) -> list[Contact]: ...
    def get_grant(self, project_id: str, contact_id: str) -> Grant | None: ...
    def grants_of_project(self, project_id: str, limit: int, cursor: str | None) -> Page[Grant]: ...
    def grants_of_contact(self, contact_id: str) -> list[Grant]: ...
    def all_grants_of_project(self, project_id: str) -> list[Grant]: ...
    def all_projects(self) -> list[Project]: ...
    def activity(
        self,
        project_id: str,
        contact_id: str | None,
        limit: int,
        cursor: str | None,
        where: ActivityFilter = EVERY_ENTRY,
    ) -> Page[ActivityEntry]: ...
    def all_activity(
        self, project_id: str, contact_id: str | None, where: ActivityFilter
    ) -> Iterator[ActivityEntry]:
        """Every matching entry, newest first, read a page at a time (a Query per page)."""
        ...

    def append_activity(self, entry: ActivityEntry) -> None: ...
    def pending_grants(self) -> list[Grant]: ...
    def grants_owing_welcome(self) -> list[Grant]:
        """Activated grants whose welcome email is still owed (a scan: sweeper only)."""
        ...

    def grants_expiring_by(self, until: str) -> list[Grant]:
        """Grants with `expires_at <= until` whose removal has not started (the sparse expiry
        index; eventually consistent: act through conditional writes only)."""
        ...

    def get_review(self, project_id: str, review_id: str) -> Review | None:
        """The review with its items (strongly consistent)."""
        ...

    def reviews_of_project(self, project_id: str) -> list[Review]:
        """The project's reviews, newest first, without their items."""
        ...

    def reviews_due_by(self, until: str) -> list[Review]:
        """Open reviews with `due_at <= until`, without items (the sparse due index;
        eventually consistent: read each again and act through conditional writes)."""
        ...

    def get_access_request(self, project_id: str, request_id: str) -> AccessRequest | None: ...
    def access_requests_of_project(
        self, project_id: str, status: str | None = None
    ) -> list[AccessRequest]:
        """The project's requests, newest first (pending ones from the sparse pending index)."""
        ...

    def access_requests_due_by(self, until: str) -> list[AccessRequest]:
        """Pending requests with `expires_at <= until` (the sparse due index; eventually
        consistent: act through conditional writes only)."""
        ...

    def projects_owing_support_email(self) -> list[Project]:
        """Projects whose last support-access change was not emailed yet (a scan: sweeper)."""
        ...

    def referencing_projects(self, contact_id: str, kind: ReferenceKind, key: str) -> set[str]:
        """The projects in one of the contact's reference sets (strongly consistent)."""
        ...


class EventPublisher(Protocol):
    def publish(self, event: DomainEvent) -> None: ...


class WorkflowStarter(Protocol):
    def start_activation(self, grant: Grant) -> None: ...
    def start_removal(self, grant: Grant) -> None: ...
    def execution_status(self, grant: Grant) -> str | None: ...
    def is_running(self, lifecycle_id: str) -> bool: ...


class Mailer(Protocol):
    def send_activation(
        self, to: str, name: str, project_name: str, portal_url: str, dedup_key: str
    ) -> None: ...
    def send_password_reset(
        self, to: str, name: str, project_name: str, reset_url: str
    ) -> None: ...
    def send_expiry_reminder(
        self, to: str, name: str, project_name: str, expires_at: str, dedup_key: str
    ) -> None:
        """Sent once per `dedup_key` (one grant's one expiry), however often it is attempted."""
        ...

    def send_support_access_changed(self, to: str, project: Project, dedup_key: str) -> None:
        """Sent once per `dedup_key` (one change), however often delivery is attempted."""
        ...

    def send_access_request_decision(
        self, to: str, name: str, project_name: str, request: AccessRequest
    ) -> None:
        """Sent once per request: the requester learns it was approved or denied."""
        ...


class CustomerDirectory(Protocol):
    """The JSM calls the grant workflows make (implemented by `jira.JsmClient`)."""

    def ensure_customer(
        self, email: str, display_name: str, before_create: Callable[[], None] | None = None
    ) -> tuple[Any, bool]: ...
    def add_to_service_desk(self, service_desk_id: str, account_id: str) -> None: ...
    def remove_from_service_desk(self, service_desk_id: str, account_id: str) -> None: ...
    def add_to_organization(self, organization_id: str, account_id: str) -> None: ...
    def remove_from_organization(self, organization_id: str, account_id: str) -> None: ...


class HelpdeskDirectory(Protocol):
    """The JSM calls that link a project to its helpdesk (implemented by `jira.JsmClient`)."""

    def get_service_desk(self, service_desk_id: str) -> Any: ...
    def get_organization(self, organization_id: str) -> Any: ...
    def create_organization(self, name: str) -> Any: ...
    def attach_organization(self, service_desk_id: str, organization_id: str) -> None: ...


class RequestReader(Protocol):
    """Reads a helpdesk's open requests (implemented by `jira.JsmClient`)."""

    def open_requests(
        self, service_desk_id: str, organization_id: str, limit: int
    ) -> list[Any]: ...


class JsmAccountView(Protocol):
    @property
    def account_id(self) -> str: ...
    @property
    def email(self) -> str: ...


class DriftJsm(Protocol):
    """The JSM reads and writes of `POST /projects/{id}/reconcile` (`jira.JsmClient`)."""

    def organization_accounts(self, organization_id: str) -> Sequence[JsmAccountView]: ...
    def service_desk_customers(self, service_desk_id: str) -> set[str]: ...
    def add_to_organization(self, organization_id: str, account_id: str) -> None: ...
    def add_to_service_desk(self, service_desk_id: str, account_id: str) -> None: ...
    def remove_from_organization(self, organization_id: str, account_id: str) -> None: ...


class MemberReader(Protocol):
    """The one JSM read the drift check makes (implemented by `jira.JsmClient`)."""

    def organization_members(self, organization_id: str) -> set[str]: ...


class ScimUnitOfWork(UnitOfWork, Protocol):
    """The writes of SCIM tokens and of the contacts a company's identity provider manages."""

    def create_scim_token(self, token: ScimToken) -> None:
        """Store the company's token row and its lookup by hash (both new)."""
        ...

    def revoke_scim_token(self, token: ScimToken) -> None:
        """Mark the token revoked (`token.revoked_at`/`revoked_by`) and delete its lookup by
        hash, if it is not revoked yet."""
        ...

    def update_contact_profile(self, current: Contact, new: Contact) -> None:
        """Write `new`'s email, name, `external_id` and `scim_deleted` (never its status,
        company or links), if the contact still has `current`'s email; moves the email claim."""
        ...


class ScimStore(Protocol):
    """What SCIM tokens and the SCIM view of a company's contacts read and write."""

    def unit_of_work(self) -> ScimUnitOfWork: ...
    def get_contact(self, contact_id: str) -> Contact | None: ...
    def find_contact_by_email(self, email: str) -> Contact | None: ...
    def company_contacts(self, company_id: str) -> list[Contact]:
        """Every contact whose own company is `company_id` (any status; not its externals)."""
        ...

    def scim_tokens_of_company(self, company_id: str) -> list[ScimToken]:
        """The company's tokens (revoked ones too), oldest first."""
        ...

    def get_scim_token(self, company_id: str, token_id: str) -> ScimToken | None: ...
    def scim_token_by_hash(self, token_hash: str) -> ScimToken | None:
        """The token with this SHA-256, if it exists and is not revoked."""
        ...


class ContactOffboarding(Protocol):
    """Offboarding and reactivating a contact (`domain.offboarding.OffboardingService`, the
    same code as HR events). Offboarding is idempotent: it looks at the grants again."""

    def offboard_contact(self, contact: Contact, actor: Actor) -> object: ...
    def reactivate_contact(self, contact: Contact, actor: Actor) -> Contact: ...
