"""The vendor support-access switch of a project (seed 003, SPEC §1 rule 8)."""

from __future__ import annotations

from contextlib import suppress
from dataclasses import replace
from datetime import datetime, timedelta

from ..errors import Conflict, DependencyUnavailable, FieldError, ValidationFailed
from . import activity
from .authorization import ensure_may_change_support_access, ensure_member
from .changes import commit_change
from .events import SupportAccessChanged
from .models import Principal, Project, SupportAccess, iso, parse_iso, utc_now
from .ports import EventPublisher, Mailer, Store
from .projects import require_project

CONFIRMATION_WORD = "Support"
# How long a change's own request has to send its email before the sweeper sends it.
OWED_AFTER = timedelta(seconds=30)


class SupportAccessService:
    def __init__(
        self, store: Store, mailer: Mailer, events: EventPublisher, support_team_email: str
    ) -> None:
        self._store = store
        self._mailer = mailer
        self._events = events
        self._support_team_email = support_team_email

    def get(self, principal: Principal, project_id: str) -> SupportAccess:
        """For the project's members, and for its creator, who may switch it (seed 003)."""
        project = require_project(self._store, project_id)
        if principal.sub != project.created_by:
            ensure_member(principal, project)
        return project.support_access

    def change(
        self,
        principal: Principal,
        project_id: str,
        enabled: bool,
        reason: str | None,
        confirmation: str,
    ) -> SupportAccess:
        """Enable (with a reason) or disable, confirmed by the exact word `Support`.

        Repeating the current state changes nothing and sends nothing; enabling again with
        another reason records the new reason (a change like any other). The support team is
        emailed once the change is stored, and only by the request that stored it.
        """
        project = require_project(self._store, project_id)
        ensure_may_change_support_access(principal, project)
        errors = []
        if confirmation != CONFIRMATION_WORD:
            errors.append(
                FieldError("confirmation", f'type exactly "{CONFIRMATION_WORD}" to confirm')
            )
        if enabled and not (reason or "").strip():
            errors.append(FieldError("reason", "say why you need support"))
        if errors:
            raise ValidationFailed("the support access change is not confirmed", errors)
        current = project.support_access
        if current.enabled == enabled and (not enabled or current.reason == reason):
            return current

        changed = SupportAccess(
            enabled=enabled,
            reason=reason if enabled else None,
            changed_by=principal.email,
            changed_at=iso(utc_now()),
            notified=False,  # the support team's email is owed until it went out
        )
        uow = self._store.unit_of_work()
        uow.change_support_access(project_id, changed, expected=current)
        uow.append(
            activity.entry(
                project_id,
                "support_access.enabled" if enabled else "support_access.disabled",
                principal.as_actor(),
                detail={"reason": changed.reason},
            )
        )
        event = SupportAccessChanged(
            project_id=project_id,
            enabled=changed.enabled,
            reason=changed.reason,
            changed_by=changed.changed_by,
            changed_at=changed.changed_at,
        )
        if not commit_change(uow, self._events, event):
            raise Conflict("support access was changed meanwhile; reload and retry")
        # If SES fails now, the change stays stored and its email owed: the sweeper sends it.
        with suppress(DependencyUnavailable):
            self._deliver(replace(project, support_access=changed))
        return changed

    def deliver_owed_emails(self, now: datetime | None = None) -> int:
        """Send the support team's emails still owed for stored changes (the request that made
        the change crashed or SES failed); each change is emailed once. Returns how many."""
        now = now or utc_now()
        delivered = 0
        for project in self._store.projects_owing_support_email():
            changed_at = project.support_access.changed_at
            if changed_at is None or now - parse_iso(changed_at) < OWED_AFTER:
                continue  # its request may still be sending it
            try:
                self._deliver(project)
            except DependencyUnavailable:
                continue  # SES still failing: the next sweep tries again
            delivered += 1
        return delivered

    def _deliver(self, project: Project) -> None:
        """Email the support team about the project's current change, then clear the debt."""
        access = project.support_access
        assert access.changed_at is not None
        key = f"{project.project_id}@{access.changed_at}"
        self._mailer.send_support_access_changed(self._support_team_email, project, key)
        uow = self._store.unit_of_work()
        uow.mark_support_access_notified(project.project_id, access.changed_at)
        commit_change(uow, self._events, None)  # lost: a newer change owes its own email
