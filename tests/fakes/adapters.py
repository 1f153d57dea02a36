"""Recording fakes of the outbound ports: events, mail, workflows and JSM (Jira Service Management).

Each behaves like its real adapter where the domain can tell the difference (the mailer sends an
activation email once per dedup key, a duplicate workflow start is harmless, JSM calls are
idempotent and unknown ids raise `JiraNotFound`), records what it was asked to do, and can be told
to fail the way the real one fails.
"""

from __future__ import annotations

import copy
import itertools
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chalicelib.domain.events import DomainEvent
from chalicelib.domain.models import AccessRequest, Grant, GrantStatus, Project
from chalicelib.errors import (
    DependencyUnavailable,
    JiraNotFound,
    JiraRejected,
    JiraUnavailable,
)
from chalicelib.jira import JsmAccount, Organization, ServiceDesk


class RecordingEvents:
    """`EventPublisher` keeping every published `(detail_type, detail)` in order."""

    def __init__(self) -> None:
        self.published: list[tuple[str, dict[str, Any]]] = []

    def publish(self, event: DomainEvent) -> None:
        self.published.append((event.detail_type(), event.detail()))

    def of_type(self, detail_type: str) -> list[dict[str, Any]]:
        return [detail for kind, detail in self.published if kind == detail_type]


@dataclass(frozen=True)
class SentEmail:
    kind: str  # activation | password_reset | support_access | expiry_reminder
    to: str
    project_name: str
    link: str | None = None


class RecordingMailer:
    """`Mailer` keeping every email sent; `failing = True` makes sending raise like SES down."""

    def __init__(self) -> None:
        self.sent: list[SentEmail] = []
        self.failing = False
        self._activation_keys: set[str] = set()

    def send_activation(
        self, to: str, name: str, project_name: str, portal_url: str, dedup_key: str
    ) -> None:
        """Once per `dedup_key`, like `SesMailer`'s run-once guard (a failed send is not kept)."""
        if dedup_key in self._activation_keys:
            return
        self._send(SentEmail("activation", to, project_name, portal_url))
        self._activation_keys.add(dedup_key)

    def send_password_reset(self, to: str, name: str, project_name: str, reset_url: str) -> None:
        self._send(SentEmail("password_reset", to, project_name, reset_url))

    def send_support_access_changed(self, to: str, project: Project, dedup_key: str) -> None:
        """Once per `dedup_key`, like `SesMailer`'s run-once guard (a failed send is not kept)."""
        if dedup_key in self._activation_keys:
            return
        self._send(SentEmail("support_access", to, project.name))
        self._activation_keys.add(dedup_key)

    def send_expiry_reminder(
        self, to: str, name: str, project_name: str, expires_at: str, dedup_key: str
    ) -> None:
        """Once per `dedup_key`, like `SesMailer`'s run-once guard (a failed send is not kept)."""
        if dedup_key in self._activation_keys:
            return
        self._send(SentEmail("expiry_reminder", to, project_name, expires_at))
        self._activation_keys.add(dedup_key)

    def send_access_request_decision(
        self, to: str, name: str, project_name: str, request: AccessRequest
    ) -> None:
        """Once per request, like `SesMailer`'s run-once guard."""
        key = f"request#{request.project_id}#{request.request_id}"
        if key in self._activation_keys:
            return
        self._send(SentEmail("access_request_decision", to, project_name, request.status))
        self._activation_keys.add(key)

    def _send(self, email: SentEmail) -> None:
        if self.failing:
            raise DependencyUnavailable(f"the {email.kind} email could not be sent")
        self.sent.append(email)


_PENDING_FOR = {
    "activation": GrantStatus.ACTIVATION_PENDING,
    "removal": GrantStatus.DELETION_PENDING,
}


class RecordingWorkflows:
    """`WorkflowStarter` recording `(kind, grant)` starts; `failing = True` refuses every start.

    A start under a lifecycle id already started is a no-op, as `ExecutionAlreadyExists` is for
    `StepFunctionsStarter`. `executions` maps lifecycle ids to their Step Functions status.
    """

    def __init__(self) -> None:
        self.starts: list[tuple[str, Grant]] = []
        self.executions: dict[str, str] = {}
        self.failing = False

    def start_activation(self, grant: Grant) -> None:
        self._start("activation", grant)

    def start_removal(self, grant: Grant) -> None:
        self._start("removal", grant)

    def execution_status(self, grant: Grant) -> str | None:
        return self.executions.get(grant.lifecycle_id or "")

    def is_running(self, lifecycle_id: str) -> bool:
        return self.executions.get(lifecycle_id) == "RUNNING"

    def _start(self, kind: str, grant: Grant) -> None:
        if self.failing:
            raise DependencyUnavailable("Step Functions is unreachable")
        assert grant.lifecycle_id is not None
        pending = _PENDING_FOR[kind]
        assert grant.status is pending, f"{kind} started for a {grant.status.value} grant"
        if grant.lifecycle_id in self.executions:
            return
        self.executions[grant.lifecycle_id] = "RUNNING"
        self.starts.append((kind, copy.deepcopy(grant)))


class FakeJira:
    """`CustomerDirectory` and `HelpdeskDirectory` over in-memory JSM state.

    Starts like the JSM emulator: one service desk `1` ("Support", `SUP`), no customers, no
    organizations. `calls` counts calls per method name; `fail(method, error, times)` makes the
    next `times` calls of `method` (every call when `times` is None) raise `error`.
    """

    def __init__(self) -> None:
        self.customers: dict[str, JsmAccount] = {}  # by account id
        self.service_desks: dict[str, ServiceDesk] = {}
        self.desk_customers: dict[str, set[str]] = {}
        self.desk_organizations: dict[str, set[str]] = {}
        self.organizations: dict[str, Organization] = {}
        self.organization_users: dict[str, set[str]] = {}
        self.calls: Counter[str] = Counter()
        self._faults: dict[str, tuple[Exception, int | None]] = {}
        self._ids = itertools.count(1)
        self.add_service_desk("SUP", "Support")

    # --- test controls ------------------------------------------------------------------------

    def add_service_desk(self, project_key: str, project_name: str) -> ServiceDesk:
        desk_id = str(len(self.service_desks) + 1)
        desk = ServiceDesk(desk_id, project_key, project_name)
        self.service_desks[desk_id] = desk
        self.desk_customers[desk_id] = set()
        self.desk_organizations[desk_id] = set()
        return desk

    lost_create_answers = 0  # how many creates JSM applies but whose answer times out

    def fail(self, method: str, error: Exception, times: int | None = None) -> None:
        self._faults[method] = (error, times)

    # --- CustomerDirectory --------------------------------------------------------------------

    def ensure_customer(
        self, email: str, display_name: str, before_create: Callable[[], None] | None = None
    ) -> tuple[JsmAccount, bool]:
        self._call("ensure_customer")
        existing = self._account_for(email)
        if existing is not None:
            return existing, False
        if before_create is not None:
            before_create()
        account = JsmAccount(f"acc-{next(self._ids)}", email, display_name)
        self.customers[account.account_id] = account
        if self.lost_create_answers:
            # JSM applied the create, but its answer never reached us (a client timeout).
            self.lost_create_answers -= 1
            raise JiraUnavailable("read timed out", None)
        return account, True

    def add_to_service_desk(self, service_desk_id: str, account_id: str) -> None:
        self._call("add_to_service_desk")
        self._desk(service_desk_id)
        self._customer(account_id)
        self.desk_customers[service_desk_id].add(account_id)

    def remove_from_service_desk(self, service_desk_id: str, account_id: str) -> None:
        self._call("remove_from_service_desk")
        self._desk(service_desk_id)
        self.desk_customers[service_desk_id].discard(account_id)

    def add_to_organization(self, organization_id: str, account_id: str) -> None:
        self._call("add_to_organization")
        self._organization(organization_id)
        self._customer(account_id)
        self.organization_users[organization_id].add(account_id)

    def remove_from_organization(self, organization_id: str, account_id: str) -> None:
        self._call("remove_from_organization")
        self._organization(organization_id)
        self.organization_users[organization_id].discard(account_id)

    # --- HelpdeskDirectory --------------------------------------------------------------------

    def get_service_desk(self, service_desk_id: str) -> ServiceDesk:
        self._call("get_service_desk")
        return self._desk(service_desk_id)

    def get_organization(self, organization_id: str) -> Organization:
        self._call("get_organization")
        return self._organization(organization_id)

    def create_organization(self, name: str) -> Organization:
        """JSM returns the existing organization when the name is taken."""
        self._call("create_organization")
        same = next((o for o in self.organizations.values() if o.name == name), None)
        if same is not None:
            return same
        organization = Organization(str(next(self._ids)), name)
        self.organizations[organization.id] = organization
        self.organization_users[organization.id] = set()
        return organization

    def attach_organization(self, service_desk_id: str, organization_id: str) -> None:
        self._call("attach_organization")
        self._desk(service_desk_id)
        self._organization(organization_id)
        self.desk_organizations[service_desk_id].add(organization_id)

    # --- internals ----------------------------------------------------------------------------

    def _call(self, method: str) -> None:
        self.calls[method] += 1
        fault = self._faults.get(method)
        if fault is None:
            return
        error, times = fault
        if times is not None:
            if times <= 1:
                del self._faults[method]
            else:
                self._faults[method] = (error, times - 1)
        raise error

    def _account_for(self, email: str) -> JsmAccount | None:
        wanted = email.lower()
        return next((a for a in self.customers.values() if a.email.lower() == wanted), None)

    def _desk(self, service_desk_id: str) -> ServiceDesk:
        desk = self.service_desks.get(service_desk_id)
        if desk is None:
            raise JiraNotFound(f"service desk {service_desk_id} does not exist", 404)
        return desk

    def _organization(self, organization_id: str) -> Organization:
        organization = self.organizations.get(organization_id)
        if organization is None:
            raise JiraNotFound(f"organization {organization_id} does not exist", 404)
        return organization

    def _customer(self, account_id: str) -> None:
        if account_id not in self.customers:
            raise JiraRejected(f"account {account_id} does not exist", 400)
