"""`GrantBatches`: a batch's items run one by one as their single calls, each failure its own.

Through the in-memory fakes: a refused item leaves the store as it was for its contact, and the
items around it go on; a DynamoDB transaction conflict on one item is that item's 409.
"""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.domain.grant_batches import BatchItem, GrantBatches
from chalicelib.domain.grants import PENDING_RETRY_AFTER_SECONDS, AddGrant, GrantService
from chalicelib.domain.models import ContactStatus, GrantStatus, Role
from chalicelib.errors import (
    Conflict,
    ContactOffboarded,
    DependencyUnavailable,
    Forbidden,
    MalformedRequest,
    NotFound,
    ServiceError,
    ValidationFailed,
)
from tests.fakes.builders import CUSTOMER, INTEGRATOR, OTHER, contact, grant, principal, project
from tests.fakes.store import InMemoryStore

S = GrantStatus
PROJECT = project()
ALICE = contact("alice")
BOB = contact("bob")
CAROL = contact("carol", console_user=False)
DAVE = contact("dave")  # has an activated grant
IVAN = contact("ivan", company=INTEGRATOR)  # has an activated grant the integrator gave
PM = principal(Role.PROJECT_MANAGER, company=CUSTOMER, sub="u-pm")
OUTSIDER = principal(Role.PROJECT_MANAGER, company=OTHER, sub="u-out")
ADMIN = principal(Role.PLATFORM_ADMIN, company="platform", sub="u-root")


@pytest.fixture
def service(store, workflows, mailer, events) -> GrantService:
    store.seed(PROJECT, ALICE, BOB, CAROL, DAVE, IVAN)
    store.seed(grant(PROJECT, DAVE, S.ACTIVATED, granted_by_company_id=CUSTOMER))
    store.seed(grant(PROJECT, IVAN, S.ACTIVATED, granted_by_company_id=INTEGRATOR))
    return GrantService(store, workflows, mailer, events, reset_url="https://portal.example/r")


@pytest.fixture
def batches(service) -> GrantBatches:
    return GrantBatches(service)


def add(**named: Any) -> BatchItem:
    return BatchItem.adding(AddGrant(**named))


def remove(contact_id: str) -> BatchItem:
    return BatchItem.removing(contact_id)


def _status(store: InMemoryStore, contact_id: str) -> S | None:
    stored = store.get_grant(PROJECT.project_id, contact_id)
    return stored.status if stored else None


def _errors(outcomes) -> list[type[ServiceError] | None]:
    return [type(o.error) if o.error else None for o in outcomes]


def test_items_run_in_order_adds_then_removals_each_as_its_single_call(batches, store, workflows):
    # Given two Console Users without a grant and dave with an activated one
    # When a batch adds alice (by id) and bob (by email) and removes dave
    outcomes = batches.run(
        PM,
        PROJECT.project_id,
        [add(contact_id="alice"), add(email=BOB.email), remove("dave")],
    )

    # Then each item answers as its single call, in input order
    assert [(o.index, o.op, o.contact_id) for o in outcomes] == [
        (0, "add", "alice"),
        (1, "add", "bob"),
        (2, "remove", "dave"),
    ]
    assert _errors(outcomes) == [None, None, None]
    assert [o.view.grant.status for o in outcomes if o.view] == [
        S.ACTIVATION_PENDING,
        S.ACTIVATION_PENDING,
        S.DELETION_PENDING,
    ]
    assert [kind for kind, _ in workflows.starts] == ["activation", "activation", "removal"]


def test_one_bad_item_changes_nothing_and_the_others_go_on(batches, store, workflows):
    # Given carol has no Console User profile
    # When a batch adds alice, carol (by id: refused, 422) and bob
    outcomes = batches.run(
        PM,
        PROJECT.project_id,
        [add(contact_id="alice"), add(contact_id="carol"), add(contact_id="bob")],
    )

    # Then carol's item is the single call's 422, and alice and bob are being activated
    assert _errors(outcomes) == [None, ValidationFailed, None]
    assert [e.field for e in outcomes[1].error.errors] == ["contact_id"]  # type: ignore[union-attr]
    assert (_status(store, "alice"), _status(store, "carol"), _status(store, "bob")) == (
        S.ACTIVATION_PENDING,
        None,
        S.ACTIVATION_PENDING,
    )
    assert store.activity(PROJECT.project_id, "carol", 10, None).items == []
    assert len(workflows.starts) == 2


def test_each_item_is_authorized_and_refused_as_its_single_call(batches, store, service):
    # Given ivan's grant was given by the integrator, dave offboarded meanwhile, alice pending
    service.add(PM, PROJECT.project_id, AddGrant(contact_id="alice"))
    before = {c: _status(store, c) for c in ("alice", "ivan", "nobody")}

    # When the customer's manager removes ivan, nobody and alice, and adds dave again
    outcomes = batches.run(
        PM,
        PROJECT.project_id,
        [add(contact_id="dave"), remove("ivan"), remove("nobody"), remove("alice")],
    )

    # Then: 409 (dave has a grant), 403 (another company's grant), 404, 409 with Retry-After
    assert _errors(outcomes) == [Conflict, Forbidden, NotFound, Conflict]
    assert outcomes[3].error.retry_after == PENDING_RETRY_AFTER_SECONDS  # type: ignore[union-attr]
    assert {c: _status(store, c) for c in before} == before
    assert _status(store, "dave") is S.ACTIVATED


def test_an_offboarded_contact_is_its_own_problem(batches, store):
    store.seed(contact("otto", status=ContactStatus.OFFBOARDED))
    outcomes = batches.run(PM, PROJECT.project_id, [add(contact_id="otto")])
    assert _errors(outcomes) == [ContactOffboarded]


def test_the_same_contact_twice_the_second_is_refused_and_not_run(batches, store, workflows):
    # When a batch names alice three times (by id, by email, then her removal) and bob once
    outcomes = batches.run(
        PM,
        PROJECT.project_id,
        [add(contact_id="alice"), add(email=ALICE.email), add(contact_id="bob"), remove("alice")],
    )

    # Then only the first alice item runs; the later ones are 422 naming the first
    assert _errors(outcomes) == [None, ValidationFailed, None, ValidationFailed]
    assert "item 0" in outcomes[1].error.message  # type: ignore[union-attr]
    assert [e.field for e in outcomes[1].error.errors] == ["email"]  # type: ignore[union-attr]
    assert [e.field for e in outcomes[3].error.errors] == ["contact_id"]  # type: ignore[union-attr]
    assert _status(store, "alice") is S.ACTIVATION_PENDING
    assert len(workflows.starts) == 2


def test_an_item_refused_by_the_api_is_reported_in_its_place(batches, store):
    # Given an item the API could not parse
    refused = BatchItem.refusing("add", MalformedRequest("an item must be a JSON object"))

    # When it comes between two good ones
    outcomes = batches.run(
        PM, PROJECT.project_id, [add(contact_id="alice"), refused, remove("dave")]
    )

    # Then it is reported as such and the others run
    assert _errors(outcomes) == [None, MalformedRequest, None]
    assert outcomes[1].contact_id is None


def test_a_transaction_conflict_on_one_item_is_its_409_and_the_others_go_on(batches, store):
    # Given DynamoDB cancels the first item's transaction every time (TransactionConflict)
    store.fail_next("conflict", "conflict", "conflict")

    # When the batch adds alice and bob
    outcomes = batches.run(PM, PROJECT.project_id, [add(contact_id="alice"), add(contact_id="bob")])

    # Then alice's item is a 409 the client may retry, and bob is being activated
    assert _errors(outcomes) == [Conflict, None]
    assert outcomes[0].error.retry_after is not None  # type: ignore[union-attr]
    assert _status(store, "alice") is None
    assert _status(store, "bob") is S.ACTIVATION_PENDING


def test_an_unexpected_fault_on_one_item_is_its_500_and_the_others_go_on(
    batches, store, workflows, monkeypatch
):
    # Given starting the first workflow raises something nobody expected
    calls = []
    start = workflows.start_activation

    def broken(g):
        calls.append(g)
        if len(calls) == 1:
            raise RuntimeError("boom")
        return start(g)

    monkeypatch.setattr(workflows, "start_activation", broken)

    # When the batch adds alice and bob
    outcomes = batches.run(PM, PROJECT.project_id, [add(contact_id="alice"), add(contact_id="bob")])

    # Then alice's item reports the fault (logged by the API), bob's goes on
    assert outcomes[0].error is not None
    assert outcomes[0].error.code == "internal-error"
    assert isinstance(outcomes[0].error.__cause__, RuntimeError)
    assert outcomes[1].error is None


@pytest.mark.parametrize(
    ("who", "project_id", "error"),
    [(OUTSIDER, PROJECT.project_id, Forbidden), (PM, "nope", NotFound)],
    ids=["another company's manager", "unknown project"],
)
def test_a_caller_who_may_not_manage_the_projects_grants_is_refused_whole(
    batches, store, workflows, who, project_id, error
):
    before = store.snapshot()
    with pytest.raises(error):
        batches.run(who, project_id, [add(contact_id="alice")])
    assert store.snapshot() == before
    assert workflows.starts == []


def test_a_platform_admin_runs_a_batch_as_for_single_calls(batches, store):
    outcomes = batches.run(ADMIN, PROJECT.project_id, [add(contact_id="alice"), remove("ivan")])
    assert _errors(outcomes) == [None, None]
    assert _status(store, "ivan") is S.DELETION_PENDING


def test_items_are_not_started_once_the_function_is_running_out_of_time(batches, store):
    # Given the function has 10 s left for the first item, then 2 s
    left = iter([10.0, 2.0, 2.0])

    # When a batch of three adds runs
    items = [add(contact_id="alice"), add(contact_id="bob"), remove("dave")]
    outcomes = batches.run(PM, PROJECT.project_id, items, lambda: next(left))

    # Then the first runs, the others are 503s to send again, and nothing happened to them
    assert _errors(outcomes) == [None, DependencyUnavailable, DependencyUnavailable]
    assert outcomes[1].error.retry_after is not None  # type: ignore[union-attr]
    assert [o.contact_id for o in outcomes] == ["alice", "bob", "dave"]
    assert (_status(store, "bob"), _status(store, "dave")) == (None, S.ACTIVATED)
