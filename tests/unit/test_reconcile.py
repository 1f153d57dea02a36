"""`POST /projects/{id}/reconcile` in the domain: missing and extra accounts, repaired and
removed only when asked, each with its activity entry."""

from __future__ import annotations

import pytest

from chalicelib.domain.drift import DriftRepair
from chalicelib.domain.models import GrantStatus, Principal, Role
from chalicelib.errors import Forbidden
from chalicelib.jira import JsmAccount
from tests.fakes.builders import contact, grant, project
from tests.fakes.store import InMemoryStore

ADMIN = Principal("root-1", "root@platform.example", "platform", frozenset({Role.PLATFORM_ADMIN}))
PM = Principal("pm-1", "pm@acme.example", "acme", frozenset({Role.PROJECT_MANAGER}))


class Jsm:
    def __init__(self, organization: dict[str, str], desk: set[str]) -> None:
        self.organization = dict(organization)  # account id -> email
        self.desk = set(desk)
        self.calls: list[tuple[str, str]] = []

    def organization_accounts(self, organization_id: str) -> list[JsmAccount]:
        return [JsmAccount(a, e, e) for a, e in self.organization.items()]

    def service_desk_customers(self, service_desk_id: str) -> set[str]:
        return set(self.desk)

    def add_to_organization(self, organization_id: str, account_id: str) -> None:
        self.calls.append(("add_org", account_id))
        self.organization[account_id] = "?"

    def add_to_service_desk(self, service_desk_id: str, account_id: str) -> None:
        self.calls.append(("add_desk", account_id))
        self.desk.add(account_id)

    def remove_from_organization(self, organization_id: str, account_id: str) -> None:
        self.calls.append(("remove_org", account_id))
        self.organization.pop(account_id, None)


@pytest.fixture
def world() -> tuple[InMemoryStore, Jsm]:
    # Given c1 fine, c2 missing from the organization, c3 missing from both, a pending c4
    # missing (not settled: not reported) and a stranger in the organization
    p1 = project("p1")
    store = InMemoryStore()
    store.seed(
        p1,
        grant(p1, contact("c1"), jira_account_id="a1"),
        grant(p1, contact("c2"), jira_account_id="a2"),
        grant(p1, contact("c3"), jira_account_id="a3"),
        grant(p1, contact("c4"), GrantStatus.ACTIVATION_PENDING, jira_account_id="a4"),
    )
    jsm = Jsm({"a1": "c1@x.example", "stranger": "s@evil.example"}, {"a1", "a2"})
    return store, jsm


def actions(store: InMemoryStore) -> list[str]:
    return [e.action for e in store.activity("p1", None, 100, None).items]


def test_report_only_changes_nothing(world: tuple[InMemoryStore, Jsm]) -> None:
    store, jsm = world
    result = DriftRepair(store, jsm).reconcile(ADMIN, "p1", repair=False, remove_extra=False)
    assert [(m.contact_id, m.jira_account_id, m.where) for m in result.missing] == [
        ("c2", "a2", ["organization"]),
        ("c3", "a3", ["organization", "service_desk"]),
    ]
    assert [(e.jira_account_id, e.email) for e in result.extra] == [("stranger", "s@evil.example")]
    assert result.repaired == []
    assert result.removed == []
    assert jsm.calls == []
    assert "drift.repaired" not in actions(store)


def test_repair_readds_the_missing_where_they_are_missing(world: tuple[InMemoryStore, Jsm]) -> None:
    store, jsm = world
    result = DriftRepair(store, jsm).reconcile(ADMIN, "p1", repair=True, remove_extra=False)
    assert result.repaired == ["c2", "c3"]
    assert sorted(jsm.calls) == [("add_desk", "a3"), ("add_org", "a2"), ("add_org", "a3")]
    assert actions(store).count("drift.repaired") == 2
    assert result.removed == []
    assert "stranger" in jsm.organization


def test_remove_extra_takes_the_stranger_out(world: tuple[InMemoryStore, Jsm]) -> None:
    store, jsm = world
    result = DriftRepair(store, jsm).reconcile(ADMIN, "p1", repair=False, remove_extra=True)
    assert result.removed == ["stranger"]
    assert jsm.calls == [("remove_org", "stranger")]
    [entry] = list(store.activity("p1", None, 100, None).items)
    assert entry.action == "drift.extra_removed"
    assert entry.detail == {"jira_account_id": "stranger", "email": "s@evil.example"}


def test_only_platform_admins_reconcile(world: tuple[InMemoryStore, Jsm]) -> None:
    store, jsm = world
    with pytest.raises(Forbidden):
        DriftRepair(store, jsm).reconcile(PM, "p1", repair=True, remove_extra=True)
    assert jsm.calls == []
