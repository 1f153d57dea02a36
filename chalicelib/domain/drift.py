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

from ..errors import JiraError
from .models import GrantStatus
from .ports import MemberReader, Store


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
