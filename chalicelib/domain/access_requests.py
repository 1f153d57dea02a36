"""Access requests (rule 11): a contact asks for access, a manager of its company decides.

A request is pending until a manager of the requester's company approves or denies it, or until
its TTL passes (the scheduled job expires it). Approval commits the request's decision in the
same transaction as the new grant (`GrantService.add` with the approver as `requested_by`), so
an approval never exists without its grant starting, nor a grant without its approval. Every
decision is conditional on the request still being pending: of two deciders (or a decider and
the job) exactly one wins. A lock item keeps one pending request per contact and project.
"""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from ..errors import Conflict, DependencyUnavailable, FieldError, NotFound, ValidationFailed
from . import activity
from .authorization import (
    ensure_may_decide_request,
    ensure_may_request_access,
    may_decide_request,
)
from .changes import commit_change
from .events import AccessRequestDecided, AccessRequested
from .expiry import valid_expiry
from .grants import AddGrant, GrantService
from .ids import new_ulid
from .models import SYSTEM_ACTOR, AccessRequest, ActivityEntry, Actor, Principal, Role, iso, utc_now
from .policies import ensure_active
from .ports import EventPublisher, Mailer, Store, UnitOfWork
from .projects import member_project

STATUSES = ("pending", "approved", "denied", "expired")


def _decided_event(request: AccessRequest) -> AccessRequestDecided:
    return AccessRequestDecided(
        project_id=request.project_id,
        request_id=request.request_id,
        contact_id=request.contact_id,
        status=request.status,
        decided_by=request.decided_by,
    )


def _decision_entry(request: AccessRequest, actor: Actor, detail: dict[str, Any]) -> ActivityEntry:
    return activity.entry(
        request.project_id,
        f"access_request.{request.status}",
        actor,
        contact_id=request.contact_id,
        contact_email=request.email,
        detail={"request_id": request.request_id, **detail},
    )


class AccessRequestService:
    """The access-request use cases the API offers: ask, list, approve, deny."""

    def __init__(
        self,
        store: Store,
        grants: GrantService,
        mailer: Mailer,
        events: EventPublisher,
        ttl: timedelta,
    ) -> None:
        self._store = store
        self._grants = grants
        self._mailer = mailer
        self._events = events
        self._ttl = ttl

    def create(self, principal: Principal, project_id: str, reason: str) -> AccessRequest:
        project = member_project(self._store, principal, project_id)
        ensure_may_request_access(principal, project)
        contact = self._store.get_contact(principal.sub)
        if contact is None or contact.company_id != principal.company_id:
            message = "you are not a contact of your company in the portal directory"
            raise ValidationFailed(message, [FieldError("contact_id", message)])
        ensure_active(contact, "contact_id")
        existing = self._store.get_grant(project_id, contact.contact_id)
        if existing is not None:
            raise Conflict(f"you already have a grant on this project ({existing.status.value})")
        now = utc_now()
        request = AccessRequest(
            request_id=f"q-{new_ulid(now)}".lower(),
            project_id=project_id,
            contact_id=contact.contact_id,
            email=contact.email,
            name=contact.name,
            company_id=str(contact.company_id),
            reason=reason,
            status="pending",
            requested_at=iso(now),
            expires_at=iso(now + self._ttl),
        )
        uow = self._store.unit_of_work()
        uow.create_access_request(request)
        uow.append(
            activity.entry(
                project_id,
                "access_request.created",
                principal.as_actor(),
                contact_id=contact.contact_id,
                contact_email=contact.email,
                detail={"request_id": request.request_id, "reason": reason},
                at=now,
            )
        )
        event = AccessRequested(
            project_id=project_id,
            request_id=request.request_id,
            contact_id=contact.contact_id,
            company_id=request.company_id,
            expires_at=request.expires_at,
        )
        if not commit_change(uow, self._events, event):
            raise Conflict("you already have a pending access request on this project")
        return request

    def list(
        self, principal: Principal, project_id: str, status: str | None = None
    ) -> list[AccessRequest]:
        """Managers see their company's contacts' requests, platform admins all, anyone else
        of the project's companies their own."""
        project = member_project(self._store, principal, project_id)
        if status is not None and status not in STATUSES:
            message = f"status must be one of {', '.join(STATUSES)}"
            raise ValidationFailed(message, [FieldError("status", message)])
        found = self._store.access_requests_of_project(project_id, status)
        return [
            r
            for r in found
            if r.contact_id == principal.sub
            or (
                principal.has_any(Role.PLATFORM_ADMIN, Role.PROJECT_MANAGER, Role.SUPERVISOR)
                and may_decide_request(principal, project, r.company_id)
            )
        ]

    def approve(
        self, principal: Principal, project_id: str, request_id: str, expires_at: str | None
    ) -> AccessRequest:
        request = self._decidable(principal, project_id, request_id)
        contact = self._store.get_contact(request.contact_id)
        if contact is None:
            raise NotFound(f"contact {request.contact_id} is no longer in the directory")
        ensure_active(contact, "contact_id")  # offboarded since it asked: 422
        grant_expiry = valid_expiry(expires_at)
        decided = replace(
            request,
            status="approved",
            decided_by=principal.sub,
            decided_at=iso(utc_now()),
            grant_expires_at=grant_expiry,
        )

        def approval(uow: UnitOfWork) -> None:
            uow.decide_access_request(request, decided)
            uow.append(_decision_entry(decided, principal.as_actor(), {"expires_at": grant_expiry}))

        add = AddGrant(contact_id=request.contact_id, expires_at=grant_expiry)
        self._grants.add(principal, project_id, add, with_writes=approval)
        self._events.publish(_decided_event(decided))
        self._tell_requester(decided)
        return decided

    def deny(
        self, principal: Principal, project_id: str, request_id: str, reason: str | None
    ) -> AccessRequest:
        request = self._decidable(principal, project_id, request_id)
        decided = replace(
            request, status="denied", decided_by=principal.sub, decided_at=iso(utc_now())
        )
        uow = self._store.unit_of_work()
        uow.decide_access_request(request, decided)
        uow.append(_decision_entry(decided, principal.as_actor(), {"reason": reason}))
        if not commit_change(uow, self._events, _decided_event(decided)):
            raise Conflict("the request was decided or expired meanwhile; reload it")
        self._tell_requester(decided)
        return decided

    def _decidable(self, principal: Principal, project_id: str, request_id: str) -> AccessRequest:
        project = member_project(self._store, principal, project_id)
        request = self._store.get_access_request(project_id, request_id)
        if request is None:
            raise NotFound(f"project {project_id} has no access request {request_id}")
        ensure_may_decide_request(principal, project, request.company_id, request.contact_id)
        if request.status != "pending":
            raise Conflict(f"the request is {request.status}, not pending")
        return request

    def _tell_requester(self, request: AccessRequest) -> None:
        project = self._store.get_project(request.project_id)
        # The decision stands and is in the log (the requester also sees it in the list); the
        # mailer logs a failed send.
        with suppress(DependencyUnavailable):
            self._mailer.send_access_request_decision(
                request.email,
                request.name,
                project.name if project else request.project_id,
                request,
            )


@dataclass
class RequestExpiryReport:
    expired: int = 0
    lost_races: int = 0


class AccessRequestExpiryJob:
    """The scheduled job: a request still pending at its `expires_at` expires."""

    def __init__(self, store: Store, events: EventPublisher) -> None:
        self._store = store
        self._events = events

    def run(self, now: datetime | None = None) -> RequestExpiryReport:
        now = now or utc_now()
        report = RequestExpiryReport()
        for request in self._store.access_requests_due_by(iso(now)):
            if request.status != "pending":
                continue
            expired = replace(request, status="expired", decided_at=iso(now))
            uow = self._store.unit_of_work()
            uow.decide_access_request(request, expired)
            uow.append(_decision_entry(expired, SYSTEM_ACTOR, {"ttl_ended": request.expires_at}))
            try:
                won = commit_change(uow, self._events, _decided_event(expired))
            except Conflict:
                won = False
            if won:
                report.expired += 1
            else:
                report.lost_races += 1  # decided or expired by someone else a moment ago
        return report
