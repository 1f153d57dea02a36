"""One JSM organization, one project (SPEC §1): the organization claim `put_project` writes with
the project, as one table of cases run against DynamoDB (moto) and against the in-memory fake."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from chalicelib.domain.ports import Store
from chalicelib.errors import StaleState
from chalicelib.store.repository import DynamoStore
from tests.fakes.builders import project
from tests.fakes.store import InMemoryStore

P1_O1 = project("p1", organization_id="101")


@pytest.fixture(params=["dynamodb", "memory"])
def store(request: pytest.FixtureRequest) -> Iterator[Store]:
    if request.param == "memory":
        yield InMemoryStore()
    else:
        request.getfixturevalue("stack")  # empty moto tables
        yield DynamoStore()


def put(store: Store, record=P1_O1, **kwargs: str | None) -> None:
    uow = store.unit_of_work()
    uow.put_project(record, **kwargs)
    uow.commit()


def test_a_new_project_claims_its_organization(store: Store) -> None:
    # When a project is stored / Then its organization is claimed by it, and the claim is not
    # mistaken for a project
    put(store)
    assert store.organization_owner("101") == "p1"
    assert store.organization_owner("999") is None
    assert [p.project_id for p in store.all_projects()] == ["p1"]


def test_another_project_cannot_claim_it(store: Store) -> None:
    # Given p1 with organization 101
    put(store)

    # When p2 is stored with organization 101 / Then the write loses, and nothing of it is stored
    with pytest.raises(StaleState):
        put(store, project("p2", organization_id="101"))
    assert store.get_project("p2") is None
    assert store.organization_owner("101") == "p1"


def test_the_same_project_stored_again_keeps_its_claim(store: Store) -> None:
    # Given p1 with organization 101
    put(store)

    # When p1 is stored again with it (an upsert), renamed
    put(store, project("p1", organization_id="101", name="Renamed"), expected_organization_id="101")

    # Then it is stored and still owns the organization
    stored = store.get_project("p1")
    assert stored is not None
    assert stored.name == "Renamed"
    assert store.organization_owner("101") == "p1"


def test_moving_to_another_organization_releases_the_old_claim(store: Store) -> None:
    # Given p1 with organization 101
    put(store)

    # When p1 moves to organization 102, releasing 101
    moved = project("p1", organization_id="102")
    put(store, moved, expected_organization_id="101", released_organization_id="101")

    # Then 102 is p1's and 101 is free for another project
    assert store.organization_owner("102") == "p1"
    assert store.organization_owner("101") is None
    put(store, project("p2", organization_id="101"))
    assert store.organization_owner("101") == "p2"


def test_of_two_concurrent_claims_the_second_commit_loses(store: Store) -> None:
    # Given two projects' writes prepared before either committed, for one organization
    first, second = store.unit_of_work(), store.unit_of_work()
    first.put_project(P1_O1)
    second.put_project(project("p2", organization_id="101"))

    # When both commit / Then the second loses and is not stored
    first.commit()
    with pytest.raises(StaleState):
        second.commit()
    assert store.get_project("p2") is None


def test_two_concurrent_moves_of_one_project_cannot_both_win(store: Store) -> None:
    # Given p1 with organization 101, and two moves of it prepared from that state
    put(store)
    to_102, to_103 = store.unit_of_work(), store.unit_of_work()
    for uow, target in ((to_102, "102"), (to_103, "103")):
        uow.put_project(
            project("p1", organization_id=target),
            expected_organization_id="101",
            released_organization_id="101",
        )

    # When both commit / Then the second loses: no claim is left behind for an organization
    # the project does not use
    to_102.commit()
    with pytest.raises(StaleState):
        to_103.commit()
    assert store.organization_owner("103") is None
    stored = store.get_project("p1")
    assert stored is not None
    assert stored.organization_id == "102"
