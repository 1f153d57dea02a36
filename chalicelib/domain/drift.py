"""Drift check: does JSM still match the grants table? (report only; operators decide)

Access can change behind the service's back (an agent edits an organization in JSM). A daily
check compares each project's JSM organization with its activated grants and reports accounts
that should be there but are not, and accounts that are there without a grant. It also reports
projects that share one organization (SPEC §1 forbids it; projects linked before organizations
were claimed may), since each then sees the other's requests and members.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from ..errors import DependencyUnavailable, JiraError
from . import activity
from .authorization import ensure_role
from .models import Grant, GrantStatus, Principal, Role, utc_now
from .models import iso as iso_time
from .ports import DriftJsm, MemberReader, Store
from .projects import existing_project

ORGANIZATION = "organization"
SERVICE_DESK = "service_desk"


@dataclass
class ProjectDrift:
    project_id: str
    missing_in_jsm: list[str] = field(default_factory=list)  # activated grants, no membership
    unknown_in_jsm: list[str] = field(default_factory=list)  # members without a grant
    # failed activations whose account is still a member: their take-back did not finish
    left_over_in_jsm: list[str] = field(default_factory=list)
    shares_organization_with: list[str] = field(default_factory=list)  # other project ids
    error: str | None = None

    @property
    def found(self) -> int:
        return (
            len(self.missing_in_jsm)
            + len(self.unknown_in_jsm)
            + len(self.left_over_in_jsm)
            + len(self.shares_organization_with)
        )


def check_drift(store: Store, jira: MemberReader) -> list[ProjectDrift]:
    """One report per project whose organization differs from its grants, is shared with another
    project, or could not be read."""
    reports = []
    projects = store.all_projects()
    by_organization: dict[str, list[str]] = defaultdict(list)
    for project in projects:
        by_organization[project.organization_id].append(project.project_id)
    for project in projects:
        grants = store.all_grants_of_project(project.project_id)
        # Pending and failed grants may legitimately be half-way: only settled ones are compared.
        settled = {g.jira_account_id for g in grants if g.status is GrantStatus.ACTIVATED}
        known = {g.jira_account_id for g in grants if g.jira_account_id}
        failed = {
            g.jira_account_id
            for g in grants
            if g.status is GrantStatus.ACTIVATION_FAILED and g.jira_account_id
        }
        report = ProjectDrift(project.project_id)
        report.shares_organization_with = sorted(
            p for p in by_organization[project.organization_id] if p != project.project_id
        )
        try:
            members = jira.organization_members(project.organization_id)
        except JiraError as exc:
            report.error = exc.message
        else:
            report.missing_in_jsm = sorted(a for a in settled - members if a)
            report.unknown_in_jsm = sorted(members - known)
            report.left_over_in_jsm = sorted(failed & members)
        if report.found or report.error:
            reports.append(report)
    return reports


# --- on demand: POST /projects/{id}/reconcile -------------------------------------------------


@dataclass(frozen=True)
class MissingAccount:
    contact_id: str
    email: str
    jira_account_id: str
    where: list[str]  # "organization", "service_desk"


@dataclass(frozen=True)
class ExtraAccount:
    jira_account_id: str
    email: str


@dataclass
class Reconciliation:
    checked_at: str
    missing: list[MissingAccount] = field(default_factory=list)
    extra: list[ExtraAccount] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)  # contact ids
    removed: list[str] = field(default_factory=list)  # jira account ids


class DriftRepair:
    """Compares one project's organization and service desk in JSM with its grants and, when
    asked, re-adds the missing and removes the extra (the JSM calls are made here, in the API
    function: a handful per project, see docs/decisions.md)."""

    def __init__(self, store: Store, jira: DriftJsm) -> None:
        self._store = store
        self._jira = jira

    def reconcile(
        self, principal: Principal, project_id: str, *, repair: bool, remove_extra: bool
    ) -> Reconciliation:
        ensure_role(principal, Role.PLATFORM_ADMIN)
        project = existing_project(self._store.get_project(project_id), project_id)
        grants = self._store.all_grants_of_project(project_id)
        try:
            return self._reconcile(
                principal,
                project.project_id,
                project.organization_id,
                project.service_desk_id,
                grants,
                repair,
                remove_extra,
            )
        except JiraError as exc:
            raise DependencyUnavailable(f"JSM could not be read or changed: {exc.message}") from exc

    def _reconcile(
        self,
        principal: Principal,
        project_id: str,
        organization_id: str,
        service_desk_id: str,
        grants: list[Grant],
        repair: bool,
        remove_extra: bool,
    ) -> Reconciliation:
        accounts = self._jira.organization_accounts(organization_id)
        in_organization = {a.account_id for a in accounts}
        on_desk = self._jira.service_desk_customers(service_desk_id)
        result = Reconciliation(checked_at=iso_time(utc_now()))
        for grant in sorted(grants, key=lambda g: g.contact_id):
            account = grant.jira_account_id
            if grant.status is not GrantStatus.ACTIVATED or not account:
                continue
            where = [ORGANIZATION] * (account not in in_organization) + [SERVICE_DESK] * (
                account not in on_desk
            )
            if where:
                result.missing.append(MissingAccount(grant.contact_id, grant.email, account, where))
        known = {g.jira_account_id for g in grants if g.jira_account_id}
        result.extra = sorted(
            (ExtraAccount(a.account_id, a.email) for a in accounts if a.account_id not in known),
            key=lambda e: e.jira_account_id,
        )
        actor = principal.as_actor()
        if repair:
            for missing in result.missing:
                if ORGANIZATION in missing.where:
                    self._jira.add_to_organization(organization_id, missing.jira_account_id)
                if SERVICE_DESK in missing.where:
                    self._jira.add_to_service_desk(service_desk_id, missing.jira_account_id)
                self._store.append_activity(
                    activity.entry(
                        project_id,
                        "drift.repaired",
                        actor,
                        contact_id=missing.contact_id,
                        contact_email=missing.email,
                        detail={"jira_account_id": missing.jira_account_id, "where": missing.where},
                    )
                )
                result.repaired.append(missing.contact_id)
        if remove_extra:
            for extra in result.extra:
                self._jira.remove_from_organization(organization_id, extra.jira_account_id)
                self._store.append_activity(
                    activity.entry(
                        project_id,
                        "drift.extra_removed",
                        actor,
                        detail={"jira_account_id": extra.jira_account_id, "email": extra.email},
                    )
                )
                result.removed.append(extra.jira_account_id)
        return result
