"""The steps of the activation and removal workflows, one method per ASL task.

Every step is idempotent: Jira answers "already a member" / "not a member" as success, and the
terminal steps are conditional on the grant still being in this lifecycle, so a step retried by
Step Functions (or re-run after a crash) never duplicates a grant, an email or an activity entry.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ..errors import StaleState
from . import activity
from .grant_lifecycle import ACTIVITY_ACTION, HOLDS_SERVICE_DESK
from .models import SYSTEM_ACTOR, Grant, GrantError, GrantStatus, Project
from .outcomes import record_failure
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
        self._portal_url = portal_url

    # --- activation ---------------------------------------------------------------------------

    def ensure_customer(self, job: GrantJob) -> dict[str, Any]:
        account, created = self._jira.ensure_customer(job.email, job.name)
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
            return {"activated": False, "email_sent": False}
        # A failed earlier run may have created the account: its welcome email is still owed.
        created = job.account_created or grant.account_created
        if created:
            project = self._store.get_project(job.project_id)
            self._mailer.send_activation(
                job.email,
                job.name,
                _name(project, job),
                self._portal_url,
                dedup_key=job.lifecycle_id,
            )
        uow = self._store.unit_of_work()
        uow.transition_grant(
            grant,
            GrantStatus.ACTIVATED,
            expected_lifecycle=job.lifecycle_id,
            jira_account_id=job.account_id,
            account_created=created,
        )
        uow.append(
            activity.entry(
                job.project_id,
                ACTIVITY_ACTION[GrantStatus.ACTIVATED],
                SYSTEM_ACTOR,
                contact_id=job.contact_id,
                contact_email=job.email,
                detail={
                    "jira_account_id": job.account_id,
                    "account_created": created,
                    "execution": job.lifecycle_id,
                },
            )
        )
        try:
            uow.commit()
        except StaleState:
            return {"activated": False, "email_sent": created}
        self._events.publish("GrantActivated", _event(job))
        return {"activated": True, "email_sent": created}

    # --- removal ------------------------------------------------------------------------------

    def leave_organization(self, job: GrantJob) -> None:
        if job.account_id:
            self._jira.remove_from_organization(job.organization_id, job.account_id)

    def leave_service_desk(self, job: GrantJob) -> dict[str, Any]:
        """Leave the desk unless another grant of the contact still uses it (projects share)."""
        if not job.account_id:
            return {"left": False, "shared_with": []}
        sharing = [
            g.project_id
            for g in self._grants_of_contact(job.contact_id)
            if g.project_id != job.project_id
            and g.service_desk_id == job.service_desk_id
            and g.status in HOLDS_SERVICE_DESK
        ]
        if not sharing:
            self._jira.remove_from_service_desk(job.service_desk_id, job.account_id)
        return {"left": not sharing, "shared_with": sharing}

    def complete_removal(self, job: GrantJob) -> dict[str, Any]:
        """Delete the grant, then unlink an external whose last link to that company went."""
        grant = self._current(job)
        if grant is None or grant.status is not GrantStatus.DELETION_PENDING:
            return {"removed": False}
        uow = self._store.unit_of_work()
        uow.delete_grant(grant, expected_lifecycle=job.lifecycle_id)
        uow.append(
            activity.entry(
                job.project_id,
                ACTIVITY_ACTION[GrantStatus.REMOVED],
                SYSTEM_ACTOR,
                contact_id=job.contact_id,
                contact_email=job.email,
                detail={"execution": job.lifecycle_id},
            )
        )
        try:
            uow.commit()
        except StaleState:
            return {"removed": False}
        self._events.publish("GrantRemoved", _event(job))
        return {"removed": True, "unlinked": self._unlink_if_last(grant)}

    def _unlink_if_last(self, grant: Grant) -> bool:
        company = grant.via_company_id
        contact = self._store.get_contact(grant.contact_id)
        if company is None or contact is None or company not in contact.external_for:
            return False
        if any(g.via_company_id == company for g in self._grants_of_contact(grant.contact_id)):
            return False
        uow = self._store.unit_of_work()
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
        try:
            uow.commit()
        except StaleState:
            return False
        self._events.publish(
            "ExternalContactUnlinked",
            {
                "contact_id": contact.contact_id,
                "company_id": company,
                "project_id": grant.project_id,
            },
        )
        return True

    # --- failure ------------------------------------------------------------------------------

    def fail(self, job: GrantJob, error: GrantError) -> dict[str, Any]:
        """Record a caught error: the pending grant becomes `*_failed` with the error."""
        grant = self._current(job)
        if grant is None or grant.status not in (
            GrantStatus.ACTIVATION_PENDING,
            GrantStatus.DELETION_PENDING,
        ):
            return {"recorded": False}
        failed = (
            GrantStatus.ACTIVATION_FAILED
            if grant.status is GrantStatus.ACTIVATION_PENDING
            else GrantStatus.DELETION_FAILED
        )
        recorded = record_failure(
            self._store,
            self._events,
            grant,
            failed,
            error,
            jira_account_id=job.account_id,
            account_created=job.account_created or grant.account_created,
        )
        return {"recorded": recorded, "status": failed.value}

    # --- internals ----------------------------------------------------------------------------

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


def _event(job: GrantJob) -> dict[str, Any]:
    return {
        "project_id": job.project_id,
        "contact_id": job.contact_id,
        "jira_account_id": job.account_id,
        "lifecycle_id": job.lifecycle_id,
    }


def _name(project: Project | None, job: GrantJob) -> str:
    return project.name if project else job.project_id
