"""The drift check compares each project's JSM organization with its settled grants."""

from __future__ import annotations

from chalicelib.domain.drift import check_drift
from chalicelib.domain.models import GrantStatus
from chalicelib.errors import JiraUnavailable
from tests.fakes.builders import contact, grant, project
from tests.fakes.store import InMemoryStore


class Members:
    def __init__(self, members: dict[str, set[str]], fail: bool = False) -> None:
        self.members = members
        self.fail = fail

    def organization_members(self, organization_id: str) -> set[str]:
        if self.fail:
            raise JiraUnavailable("JSM is down")
        return self.members.get(organization_id, set())


def test_matching_organizations_report_nothing() -> None:
    p1 = project("p1")
    store = InMemoryStore()
    store.seed(p1, grant(p1, contact("c1"), jira_account_id="a1"))

    assert check_drift(store, Members({p1.organization_id: {"a1"}})) == []


def test_missing_and_unknown_members_are_reported_pending_ones_are_not() -> None:
    # Given one activated grant missing from JSM, a pending one half-way, and a stranger in JSM
    p1 = project("p1")
    store = InMemoryStore()
    store.seed(
        p1,
        grant(p1, contact("c1"), jira_account_id="a1"),
        grant(p1, contact("c2"), GrantStatus.ACTIVATION_PENDING, jira_account_id="a2"),
    )

    # When / Then
    [report] = check_drift(store, Members({p1.organization_id: {"a2", "stranger"}}))
    assert report.missing_in_jsm == ["a1"]
    assert report.unknown_in_jsm == ["stranger"]
    assert report.found == 2


def test_unreadable_organization_is_reported_as_an_error() -> None:
    store = InMemoryStore()
    store.seed(project("p1"))

    [report] = check_drift(store, Members({}, fail=True))

    assert report.error == "JSM is down"
    assert report.found == 0


def test_projects_sharing_an_organization_are_reported() -> None:
    # Given two projects linked (before organizations were claimed) to one organization, and a
    # third with its own
    store = InMemoryStore()
    store.seed(project("p1"), project("p2"), project("p3", organization_id="11"))

    # When the drift check runs with JSM matching every project's grants
    reports = check_drift(store, Members({}))

    # Then each sharing project is reported with the projects it shares with; the third is not
    assert {r.project_id: r.shares_organization_with for r in reports} == {
        "p1": ["p2"],
        "p2": ["p1"],
    }
    assert all(r.found == 1 for r in reports)
