"""Grant use cases the API offers: add, remove, retry, password reset, and the reads.

Each command validates, writes the new state and its activity entries in one unit of work, then
starts the lifecycle's workflow. When the workflow cannot be started the grant is moved to its
`*_failed` status at once (never left pending with nothing running) and the caller gets a 503.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Literal

from ..errors import (
    Conflict,
    DependencyUnavailable,
    FieldError,
    NotFound,
    ServiceError,
    TooLarge,
    TooManyRequests,
    ValidationFailed,
)
from . import activity
from .authorization import acting_company, ensure_may_change_grant, ensure_member
from .changes import commit_change
from .expiry import valid_expiry
from .grant_lifecycle import GrantLifecycle, Move, retry_target
from .ids import new_ulid
from .models import (
    EVERY_ENTRY,
    ActivityEntry,
    ActivityFilter,
    Contact,
    Grant,
    GrantError,
    GrantStatus,
    Principal,
    Project,
    iso,
    parse_iso,
    utc_now,
)
from .policies import domain_allowed, ensure_active, ensure_domain_allowed
from .ports import EventPublisher, GrantReads, Mailer, Page, Store, UnitOfWork, WorkflowStarter
from .projects import existing_project, member_project

# How long a client should wait before retrying a request refused because an activation runs.
PENDING_RETRY_AFTER_SECONDS = 5
# ... and before retrying one refused because the previous run's execution is still finishing.
FINISHING_RETRY_AFTER_SECONDS = 1
# A removal's execution ends within this of its outcome: a new grant of the same contact on the
# same project waits for it only inside it (no Step Functions call on the common path).
FINISHING_WINDOW = timedelta(minutes=5)
# How often `add` resolves the contact again after losing a race to a concurrent change.
ADD_ATTEMPTS = 2
# The statuses whose expiry may be changed (SPEC §2 PATCH .../grants/{contact_id}).
EXPIRY_CHANGEABLE = frozenset({GrantStatus.ACTIVATION_PENDING, GrantStatus.ACTIVATED})
# At most one password reset email per grant in this interval (rule 6).
RESET_INTERVAL = timedelta(minutes=5)


@dataclass(frozen=True)
class NewContact:
    email: str
    name: str
    kind: Literal["company", "external"]
    groups: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class AddGrant:
    """Exactly one of the three ways to name the contact (validated by the API model)."""

    contact_id: str | None = None
    email: str | None = None
    new_contact: NewContact | None = None
    expires_at: str | None = None


@dataclass(frozen=True)
class GrantView:
    """A grant as the API shows it, with what the domain computes for it."""

    grant: Grant
    outside_allowed_domains: bool
    granted_by_company_id: str | None


def _at_most(entries: Iterator[ActivityEntry], max_rows: int) -> Iterator[ActivityEntry]:
    for count, entry in enumerate(entries, start=1):
        if count > max_rows:
            raise TooLarge(
                f"more than {max_rows:,} entries match; ask for a narrower range "
                "(since/until, action or contact_id)"
            )
        yield entry


def _view(project: Project, grant: Grant, granted_by: str | None = None) -> GrantView:
    return GrantView(
        grant,
        not domain_allowed(project, grant.email),
        grant.granted_by_company_id or granted_by,
    )


class GrantService:
    def __init__(
        self,
        store: Store,
        workflows: WorkflowStarter,
        mailer: Mailer,
        events: EventPublisher,
        reset_url: str,
    ) -> None:
        self._store = store
        self._workflows = workflows
        self._mailer = mailer
        self._events = events
        self._lifecycle = GrantLifecycle(store, events)
        self._reset_url = reset_url

    # --- reads --------------------------------------------------------------------------------

    def project_for_member(self, principal: Principal, project_id: str) -> Project:
        return member_project(self._store, principal, project_id)

    def managed_project(self, principal: Principal, project_id: str) -> Project:
        """The project, if the principal may manage its grants (404, else 403): what every
        grant command checks first."""
        project = self.project_for_member(principal, project_id)
        acting_company(principal, project)
        return project

    def list_grants(
        self, principal: Principal, project_id: str, limit: int, cursor: str | None
    ) -> Page[GrantView]:
        project = self.project_for_member(principal, project_id)
        page = self._store.grants_of_project(project_id, limit, cursor)
        views = [_view(project, g, self._granted_by(g)) for g in page.items]
        return Page(items=views, next_cursor=page.next_cursor)

    def get_grant(self, principal: Principal, project_id: str, contact_id: str) -> GrantView:
        project = self.project_for_member(principal, project_id)
        grant = self._grant_or_404(project_id, contact_id)
        return _view(project, grant, self._granted_by(grant))

    def activity(
        self,
        principal: Principal,
        project_id: str,
        contact_id: str | None,
        limit: int,
        cursor: str | None,
        where: ActivityFilter = EVERY_ENTRY,
    ) -> Page[ActivityEntry]:
        self.project_for_member(principal, project_id)
        return self._store.activity(project_id, contact_id, limit, cursor, where)

    def export_activity(
        self,
        principal: Principal,
        project_id: str,
        contact_id: str | None,
        where: ActivityFilter,
        max_rows: int,
    ) -> Iterator[ActivityEntry]:
        """Every matching entry, newest first; TooLarge on reaching entry `max_rows + 1` (the
        caller has then sent nothing yet). Membership is checked before the first entry."""
        self.project_for_member(principal, project_id)
        return _at_most(self._store.all_activity(project_id, contact_id, where), max_rows)

    # --- commands -----------------------------------------------------------------------------

    def add(
        self,
        principal: Principal,
        project_id: str,
        request: AddGrant,
        with_writes: Callable[[UnitOfWork], None] | None = None,
    ) -> GrantView:
        """Give the contact access. `with_writes` adds the caller's writes (an access request's
        approval) to the grant's transaction: both commit, or neither."""
        # A lost race (the contact was unlinked or created meanwhile) is resolved once more
        # from fresh reads; a second loss is a 409 the client may retry.
        for _attempt in range(ADD_ATTEMPTS):
            reads = self._read_for_add(project_id, request)
            project = existing_project(reads.project, project_id)
            ensure_member(principal, project)
            company = acting_company(principal, project)
            request = replace(request, expires_at=valid_expiry(request.expires_at))
            grant = self._try_add(principal, project, company, request, reads, with_writes)
            if grant is not None:
                self._start(grant)
                return _view(project, grant)
        raise Conflict(
            "the contact or its grant changed while it was being requested; reload and retry",
            retry_after=FINISHING_RETRY_AFTER_SECONDS,
        )

    def _read_for_add(self, project_id: str, request: AddGrant) -> GrantReads:
        """Everything `add` decides on, in one batch read (two when named by email)."""
        if request.contact_id is not None:
            return self._store.read_for_grant(project_id, contact_id=request.contact_id)
        email = request.email or (request.new_contact.email if request.new_contact else None)
        reads = self._store.read_for_grant(project_id, email=email)
        if request.email is not None and reads.email_owner is not None:
            reads = self._store.read_for_grant(project_id, contact_id=reads.email_owner)
        return reads

    def _try_add(
        self,
        principal: Principal,
        project: Project,
        company: str,
        request: AddGrant,
        reads: GrantReads,
        with_writes: Callable[[UnitOfWork], None] | None = None,
    ) -> Grant | None:
        uow = self._store.unit_of_work()
        if with_writes is not None:
            with_writes(uow)
        contact = self._resolve_contact(principal, project, company, request, reads, uow)
        existing = reads.grant
        if existing is not None and existing.status is not GrantStatus.ACTIVATION_FAILED:
            raise Conflict(
                f"{contact.email} already has a grant on this project ({existing.status.value})"
            )
        move = Move(
            GrantStatus.ACTIVATION_PENDING,
            principal.as_actor(),
            detail={"retry": existing is not None},
        )
        if existing is not None:
            self._ensure_ended(existing.lifecycle_id)
            return self._lifecycle.apply(existing, move, uow=uow)
        if reads.last_run is not None and utc_now() - parse_iso(reads.last_run.ended_at) < (
            FINISHING_WINDOW
        ):
            # Removed a moment ago: its execution may still be finishing (event, unlink).
            self._ensure_ended(reads.last_run.lifecycle_id)
        now = iso(utc_now())
        new = Grant(
            project_id=project.project_id,
            contact_id=contact.contact_id,
            status=GrantStatus.ACTIVATION_PENDING,
            email=contact.email,
            name=contact.name,
            requested_by=principal.sub,
            requested_at=now,
            updated_at=now,
            service_desk_id=project.service_desk_id,
            organization_id=project.organization_id,
            granted_by_company_id=company,
            expires_at=request.expires_at,
        )
        return self._lifecycle.apply(None, move, new=new, uow=uow)

    def remove(self, principal: Principal, project_id: str, contact_id: str) -> GrantView:
        grant, project, _ = self._managed_grant(principal, project_id, contact_id)
        if grant.status is GrantStatus.DELETION_PENDING:
            return _view(project, grant)  # a repeated DELETE answers the same 202
        if grant.status is GrantStatus.ACTIVATION_PENDING:
            raise Conflict(
                "the grant is still being activated; remove it once that finished",
                retry_after=PENDING_RETRY_AFTER_SECONDS,
            )
        return _view(project, self._begin(principal, grant, GrantStatus.DELETION_PENDING))

    def change_expiry(
        self, principal: Principal, project_id: str, contact_id: str, expires_at: str | None
    ) -> GrantView:
        """Set or clear when the grant ends (rule 10): whoever may remove it may (rule 2).

        Only while it is being activated or activated; conditional on the grant as read (status,
        run and expiry), so a concurrent change — another PATCH, the expiry job starting the
        removal — is never lost: this request gets a 409 instead.
        """
        grant, project, _ = self._managed_grant(principal, project_id, contact_id)
        if grant.status not in EXPIRY_CHANGEABLE:
            raise Conflict(
                f"only a grant being activated or activated has an expiry to change "
                f"(this one is {grant.status.value})"
            )
        wanted = valid_expiry(expires_at)
        if wanted == grant.expires_at:
            return _view(project, grant)  # nothing changes: no write, no activity entry
        now = iso(utc_now())
        uow = self._store.unit_of_work()
        uow.change_expiry(grant, wanted, now)
        uow.append(
            activity.entry(
                project_id,
                "grant.expiry_changed",
                principal.as_actor(),
                contact_id=contact_id,
                contact_email=grant.email,
                detail={"old": grant.expires_at, "new": wanted},
            )
        )
        if not commit_change(uow, self._events, None):
            raise Conflict("the grant changed meanwhile; reload it and try again")
        changed = replace(grant, expires_at=wanted, updated_at=now, expiry_reminded_for=None)
        return _view(project, changed)

    def retry(self, principal: Principal, project_id: str, contact_id: str) -> GrantView:
        grant, project, contact = self._managed_grant(principal, project_id, contact_id)
        target = retry_target(grant.status)
        if target is None:
            raise Conflict(f"only a failed grant can be retried (this one is {grant.status.value})")
        uow = self._store.unit_of_work()
        if target is GrantStatus.ACTIVATION_PENDING:
            # Retrying an activation grants access again: rules 7 and 9 hold as when adding it,
            # also against an offboarding committed between this read and the write.
            if contact is not None:
                ensure_active(contact, "contact_id")
                uow.require_active_contact(contact.contact_id)
            ensure_domain_allowed(project, grant.email, "email")
        return _view(project, self._begin(principal, grant, target, uow))

    def send_password_reset(
        self, principal: Principal, project_id: str, contact_id: str
    ) -> GrantView:
        """Email the reset link: at most one per grant per `RESET_INTERVAL` (rule 6).

        The send is claimed on the grant first (a conditional write), so of concurrent requests
        one sends and the others get a 429; a send that fails gives the claim back.
        """
        grant, project, _ = self._managed_grant(principal, project_id, contact_id)
        if grant.status is not GrantStatus.ACTIVATED:
            raise Conflict(
                f"a password reset needs an activated grant (this one is {grant.status.value})"
            )
        now = utc_now()
        at = iso(now)
        claim = self._store.unit_of_work()
        claim.claim_password_reset(grant, at, previous_before=iso(now - RESET_INTERVAL))
        if not commit_change(claim, self._events, None):
            raise self._reset_too_soon(project_id, contact_id, now)
        try:
            self._mailer.send_password_reset(grant.email, grant.name, project.name, self._reset_url)
        except Exception:
            release = self._store.unit_of_work()
            release.release_password_reset(grant, at)
            commit_change(release, self._events, None)
            raise
        self._store.append_activity(
            activity.entry(
                project_id,
                "grant.password_reset_sent",
                principal.as_actor(),
                contact_id=contact_id,
                contact_email=grant.email,
            )
        )
        return _view(project, grant)

    # --- internals ----------------------------------------------------------------------------

    def _reset_too_soon(self, project_id: str, contact_id: str, now: datetime) -> ServiceError:
        """Why a reset claim lost: the last one is too recent (429), or the grant changed."""
        grant = self._store.get_grant(project_id, contact_id)
        if grant is None or grant.status is not GrantStatus.ACTIVATED or not grant.reset_sent_at:
            return Conflict("the grant changed meanwhile; reload it and try again")
        last = datetime.fromisoformat(grant.reset_sent_at.replace("Z", "+00:00"))
        wait = max(1, math.ceil((last + RESET_INTERVAL - now).total_seconds()))
        return TooManyRequests(
            f"a password reset was sent less than {RESET_INTERVAL.seconds // 60} minutes ago",
            retry_after=wait,
        )

    def _resolve_contact(
        self,
        principal: Principal,
        project: Project,
        company: str,
        request: AddGrant,
        reads: GrantReads,
        uow: UnitOfWork,
    ) -> Contact:
        actor = principal.as_actor()
        if request.contact_id is not None:
            contact = reads.contact
            if contact is None or contact.company_id != company or not contact.console_user:
                message = "not a contact of your company with the Console User profile"
                raise ValidationFailed(message, [FieldError("contact_id", message)])
            ensure_active(contact, "contact_id")
            ensure_domain_allowed(project, contact.email, "contact_id")
            uow.require_active_contact(contact.contact_id)  # not offboarded meanwhile
            return contact

        if request.email is not None:
            contact = reads.contact
            if contact is None:
                message = "no contact has this email; create it with new_contact"
                raise ValidationFailed(message, [FieldError("email", message)])
            ensure_active(contact, "email")
            ensure_domain_allowed(project, contact.email, "email")
            if not contact.belongs_to(company):
                uow.link_external(contact.contact_id, company)
                uow.append(
                    activity.entry(
                        project.project_id,
                        "contact.external_linked",
                        actor,
                        contact_id=contact.contact_id,
                        contact_email=contact.email,
                        detail={"company_id": company},
                    )
                )
            elif contact.company_id != company:
                # Linked now, and must still be when the grant commits: a removal on another
                # project may be unlinking it at this moment (rule 5).
                uow.require_external_link(contact.contact_id, company)
            else:
                uow.require_active_contact(contact.contact_id)  # not offboarded meanwhile
            return contact

        assert request.new_contact is not None  # the API model guarantees exactly one
        new = request.new_contact
        ensure_domain_allowed(project, new.email, "new_contact.email")
        if reads.email_owner is not None:
            raise Conflict(
                f"a contact with the email {new.email} already exists; add it by email instead"
            )
        is_company = new.kind == "company"
        contact = Contact(
            contact_id=f"c-{new_ulid()}".lower(),
            email=new.email,
            name=new.name,
            company_id=company if is_company else None,
            console_user=False,
            groups=list(new.groups) if is_company else [],
            external_for=[] if is_company else [company],
        )
        uow.create_contact(contact)
        uow.append(
            activity.entry(
                project.project_id,
                "contact.created",
                actor,
                contact_id=contact.contact_id,
                contact_email=contact.email,
                detail={"kind": new.kind, "company_id": company, "groups": contact.groups},
            )
        )
        return contact

    def _managed_grant(
        self, principal: Principal, project_id: str, contact_id: str
    ) -> tuple[Grant, Project, Contact | None]:
        project = self.managed_project(principal, project_id)
        grant = self._grant_or_404(project_id, contact_id)
        contact = self._store.get_contact(contact_id)
        ensure_may_change_grant(principal, project, self._granted_by(grant), contact)
        return grant, project, contact

    def _granted_by(self, grant: Grant) -> str | None:
        """The company that gave the grant; for a grant written before that was stored, the
        company of the manager who requested it (the backfill rule of SPEC v2 rule 2, applied
        when read: one contact read per such grant, none for grants written since)."""
        if grant.granted_by_company_id is not None:
            return grant.granted_by_company_id
        requester = self._store.get_contact(grant.requested_by)
        return requester.company_id if requester else None

    def _grant_or_404(self, project_id: str, contact_id: str) -> Grant:
        grant = self._store.get_grant(project_id, contact_id)
        if grant is None:
            raise NotFound(f"contact {contact_id} has no grant on project {project_id}")
        return grant

    def _begin(
        self,
        principal: Principal,
        grant: Grant,
        target: GrantStatus,
        uow: UnitOfWork | None = None,
    ) -> Grant:
        self._ensure_ended(grant.lifecycle_id)
        started = self._lifecycle.apply(grant, Move(target, principal.as_actor()), uow=uow)
        if started is None:
            if target is GrantStatus.ACTIVATION_PENDING:
                contact = self._store.get_contact(grant.contact_id)
                if contact is not None:
                    ensure_active(contact, "contact_id")  # offboarded meanwhile: 422
            raise Conflict("the grant changed meanwhile; reload it and try again")
        self._start(started)
        return started

    def _ensure_ended(self, lifecycle_id: str | None) -> None:
        """Refuse a new run while the grant's previous run's execution is still finishing.

        A run records its outcome in its last task, then publishes its event (and a removal may
        unlink an external contact) before its execution ends: a run started in that moment
        would run beside it, and its event could overtake the previous one.
        """
        if lifecycle_id and self._workflows.is_running(lifecycle_id):
            raise Conflict(
                "the previous change of this grant is still finishing; retry in a moment",
                retry_after=FINISHING_RETRY_AFTER_SECONDS,
            )

    def _start(self, grant: Grant) -> None:
        """Start the grant's workflow; on failure, fail the grant visibly instead of leaving it."""
        pending = grant.status
        try:
            if pending is GrantStatus.ACTIVATION_PENDING:
                self._workflows.start_activation(grant)
            else:
                self._workflows.start_removal(grant)
        except DependencyUnavailable as exc:
            error = GrantError(code="WorkflowStartFailed", message=exc.message)
            self._lifecycle.fail(grant, error)
            raise DependencyUnavailable(
                "the workflow could not be started; the grant is marked failed, retry it later"
            ) from exc
