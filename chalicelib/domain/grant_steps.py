"""The steps of the activation and removal workflows, one method per ASL task.

Every step is idempotent: Jira answers "already a member" / "not a member" as success, and the
terminal steps are conditional on the grant still being in this lifecycle, so a step retried by
Step Functions (or re-run after a crash) never duplicates a grant, an email or an activity entry.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ..errors import DependencyUnavailable, StaleState
from . import activity
from .changes import commit_change
from .events import ExternalContactUnlinked
from .grant_lifecycle import FAILED_OF, HOLDS_SERVICE_DESK, PENDING, GrantLifecycle, Move
from .models import SYSTEM_ACTOR, Grant, GrantError, GrantStatus
from .offboarding import refuse_offboarded
from .ports import CustomerDirectory, EventPublisher, Mailer, Store


@dataclass(frozen=True)
class GrantJob:
    """The state-machine input every step receives (built by `workflows.starter`)."""

    project_id: str
    contact_id: str
    lifecycle_id: str
    email: str
    name: str
    service_desk_id: str
    organization_id: str
    account_id: str | None = None
    account_created: bool = False

    @classmethod
    def from_event(cls, event: dict[str, Any]) -> GrantJob:
        customer = event.get("customer") or {}
        # The EnsureCustomer task's payload, kept whole under `result` (it may be a pace).
        customer = customer.get("result", customer) or {}
        return cls(
            project_id=event["project_id"],
            contact_id=event["contact_id"],
            lifecycle_id=event["lifecycle_id"],
            email=event["email"],
            name=event["name"],
            service_desk_id=event["service_desk_id"],
            organization_id=event["organization_id"],
            account_id=customer.get("account_id") or event.get("account_id"),
            account_created=bool(customer.get("created", False)),
        )

    @classmethod
    def for_grant(cls, grant: Grant) -> GrantJob:
        assert grant.lifecycle_id is not None
        return cls(
            project_id=grant.project_id,
            contact_id=grant.contact_id,
            lifecycle_id=grant.lifecycle_id,
            email=grant.email,
            name=grant.name,
            service_desk_id=grant.service_desk_id,
            organization_id=grant.organization_id,
            account_id=grant.jira_account_id,
        )

    def to_input(self) -> dict[str, Any]:
        return asdict(self)


class GrantSteps:
    def __init__(
        self,
        store: Store,
        jira: CustomerDirectory,
        mailer: Mailer,
        events: EventPublisher,
        portal_url: str,
    ) -> None:
        self._store = store
        self._jira = jira
        self._mailer = mailer
        self._events = events
        self._lifecycle = GrantLifecycle(store, events)
        self._portal_url = portal_url

    # --- activation ---------------------------------------------------------------------------

    def ensure_customer(self, job: GrantJob) -> dict[str, Any]:
        """Find or create the JSM customer. "Created" means by this grant's runs: noted on the
        grant before the create call, so a create whose answer timed out (JSM applied it, the
        retry finds the account) still counts as created and gets its welcome email."""
        account, created = self._jira.ensure_customer(
            job.email, job.name, before_create=lambda: self._note_creating(job)
        )
        if not created:
            grant = self._current(job)
            created = bool(grant and grant.account_created)
        return {"account_id": account.account_id, "created": created}

    def add_to_service_desk(self, job: GrantJob) -> None:
        self._jira.add_to_service_desk(job.service_desk_id, self._account(job))

    def add_to_organization(self, job: GrantJob) -> None:
        self._jira.add_to_organization(job.organization_id, self._account(job))

    def complete_activation(self, job: GrantJob) -> dict[str, Any]:
        """`activation_pending → activated`; the welcome email only for a new JSM account.

        The email goes first and is deduplicated by lifecycle id, so a crash after it (or a
        retried step) neither loses nor repeats it; the transition then records the outcome once.
        """
        grant = self._current(job)
        if grant is None or grant.status is not GrantStatus.ACTIVATION_PENDING:
            return {"activated": False, "email_sent": False, "email_failed": False}
        # Offboarded while this ran: the run fails and takes back what it added (rule 9).
        refuse_offboarded(self._store.get_contact(job.contact_id))
        # A failed earlier run may have created the account: its welcome email is still owed.
        created = job.account_created or grant.account_created
        email_failed = False
        if created:
            try:
                self._send_welcome(grant)
            except DependencyUnavailable:
                # SES refused (sandbox, unverified sender): the Jira work stands, the grant
                # activates, and the email is owed to the sweeper's separate retry.
                email_failed = True
        detail: dict[str, Any] = {"jira_account_id": job.account_id, "account_created": created}
        if email_failed:
            detail["email_failed"] = True
        move = Move(
            GrantStatus.ACTIVATED,
            detail=detail,
            jira_account_id=job.account_id,
            account_created=created,
            welcome_owed=email_failed,
        )
        activated = self._lifecycle.apply(grant, move) is not None
        return {
            "activated": activated,
            "email_sent": created and not email_failed,
            "email_failed": email_failed,
        }

    def deliver_owed_welcome_emails(self) -> int:
        """Send the welcome emails SES refused when their grants activated (the sweeper's
        separate retry); each once, by lifecycle run. Returns how many went out."""
        sent = 0
        for grant in self._store.grants_owing_welcome():
            if grant.status is not GrantStatus.ACTIVATED:
                continue
            try:
                self._send_welcome(grant)
            except DependencyUnavailable:
                continue  # still refused: the next sweep tries again
            if self._lifecycle.welcome_sent(grant):
                sent += 1
        return sent

    def _send_welcome(self, grant: Grant) -> None:
        project = self._store.get_project(grant.project_id)
        self._mailer.send_activation(
            grant.email,
            grant.name,
            project.name if project else grant.project_id,
            self._portal_url,
            dedup_key=str(grant.lifecycle_id),
        )

    def undo_activation(self, job: GrantJob) -> dict[str, Any]:
        """Compensation of a failed activation: take back what it added in JSM (rule 4).

        Runs before the failure is recorded, so the grant still holds the desk reference and
        is left out of the sharing check; the desk stays when another grant holds it.
        """
        if not job.account_id:
            return {"undone": False}
        self._jira.remove_from_organization(job.organization_id, job.account_id)
        left = self._leave_desk_unless_shared(job)
        return {"undone": True, **left}

    # --- removal ------------------------------------------------------------------------------

    def leave_organization(self, job: GrantJob) -> None:
        if job.account_id:
            self._jira.remove_from_organization(job.organization_id, job.account_id)

    def leave_service_desk(self, job: GrantJob) -> dict[str, Any]:
        """Leave the desk unless another grant of the contact still uses it (projects share)."""
        if not job.account_id:
            return {"left": False, "shared_with": []}
        return self._leave_desk_unless_shared(job)

    def complete_removal(self, job: GrantJob) -> dict[str, Any]:
        """Delete the grant, then unlink an external whose last link to that company went."""
        grant = self._current(job)
        if grant is None or grant.status is not GrantStatus.DELETION_PENDING:
            return {"removed": False}
        if self._lifecycle.apply(grant, Move(GrantStatus.REMOVED)) is None:
            return {"removed": False}
        return {"removed": True, "unlinked": self._unlink_if_last(grant)}

    def _leave_desk_unless_shared(self, job: GrantJob) -> dict[str, Any]:
        """Take the account off the desk unless another project's grant holds it there.

        Re-checked after the call and repaired: a grant of the same contact on the same desk
        committed while our (slow) removal was in flight had its `add` undone by it, so the
        account goes back (rule 4: its activation must not end `activated` off the desk).
        """
        assert job.account_id is not None
        sharing = self._desk_holders(job)
        if not sharing:
            self._jira.remove_from_service_desk(job.service_desk_id, job.account_id)
            sharing = self._desk_holders(job)
            if not sharing:
                return {"left": True, "shared_with": []}
        # Held by another grant: make sure the account is there (repairs a racing removal).
        self._jira.add_to_service_desk(job.service_desk_id, job.account_id)
        return {"left": False, "shared_with": sharing}

    def _desk_holders(self, job: GrantJob) -> list[str]:
        """Other projects whose grant of this contact holds the job's service desk.

        The strongly consistent reference set answers for every grant written since it exists;
        the contact index (re-read item by item) for grants older than that.
        """
        held = self._store.referencing_projects(job.contact_id, "desk", job.service_desk_id)
        held |= {
            g.project_id
            for g in self._grants_of_contact(job.contact_id)
            if g.service_desk_id == job.service_desk_id and g.status in HOLDS_SERVICE_DESK
        }
        held.discard(job.project_id)
        return sorted(held)

    def _unlink_if_last(self, grant: Grant) -> bool:
        company = grant.granted_by_company_id
        contact = self._store.get_contact(grant.contact_id)
        if company is None or contact is None or company not in contact.external_for:
            return False
        if any(
            g.granted_by_company_id == company for g in self._grants_of_contact(grant.contact_id)
        ):
            return False
        uow = self._store.unit_of_work()
        # Conditional on no grant of that company referencing the contact, in the same
        # transaction: a grant added by email on another project a moment ago keeps the link.
        uow.unlink_external(contact.contact_id, company)
        uow.append(
            activity.entry(
                grant.project_id,
                "contact.external_unlinked",
                SYSTEM_ACTOR,
                contact_id=contact.contact_id,
                contact_email=contact.email,
                detail={"company_id": company},
            )
        )
        event = ExternalContactUnlinked(
            contact_id=contact.contact_id, company_id=company, project_id=grant.project_id
        )
        return commit_change(uow, self._events, event)

    # --- failure ------------------------------------------------------------------------------

    def fail(self, job: GrantJob, error: GrantError) -> dict[str, Any]:
        """Record a caught error: the pending grant becomes `*_failed` with the error."""
        grant = self._current(job)
        if grant is None or grant.status not in PENDING:
            return {"recorded": False}
        failed = self._lifecycle.fail(
            grant,
            error,
            jira_account_id=job.account_id,
            account_created=job.account_created or grant.account_created,
        )
        return {"recorded": failed is not None, "status": FAILED_OF[grant.status].value}

    # --- internals ----------------------------------------------------------------------------

    def _note_creating(self, job: GrantJob) -> None:
        grant = self._current(job)
        if (
            grant is None
            or grant.status is not GrantStatus.ACTIVATION_PENDING
            or not self._lifecycle.note_account_creation(grant)
        ):
            raise StaleState("the grant left this activation before its account was created")

    def _current(self, job: GrantJob) -> Grant | None:
        """The grant, if it is still in this job's lifecycle."""
        grant = self._store.get_grant(job.project_id, job.contact_id)
        if grant is None or grant.lifecycle_id != job.lifecycle_id:
            return None
        return grant

    def _grants_of_contact(self, contact_id: str) -> list[Grant]:
        """The contact's grants as they are now.

        The contact index is eventually consistent: it may still list a grant just deleted, or an
        older status of one (two removals running at once), so each listed grant is read again.
        """
        listed = self._store.grants_of_contact(contact_id)
        current = (self._store.get_grant(g.project_id, g.contact_id) for g in listed)
        return [g for g in current if g is not None]

    @staticmethod
    def _account(job: GrantJob) -> str:
        if not job.account_id:
            raise ValueError("the workflow input carries no JSM account id")
        return job.account_id
