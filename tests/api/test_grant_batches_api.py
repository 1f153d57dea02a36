"""`POST /projects/{id}/grant-batches` over HTTP: a 207 with one result per item in input order
(adds, then removals), each item answered exactly as its single call, one bad item changing
nothing for the others; the batch's own input (count, shape) and Idempotency-Key."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from chalicelib.domain.models import GrantStatus, iso, utc_now
from local.stack import LocalStack
from tests.api.expect import World, assert_problem
from tests.helpers import (
    ACME_PM,
    ACME_USER,
    INTEGRATOR_PM,
    OTHER_PM,
    Answer,
    Api,
    Seeder,
    activity_actions,
    settled_grant,
)

BATCHES = "/projects/demo/grant-batches"
PROBLEM_KEYS = {"type", "title", "status", "detail"}


def batch(api: Api, body: Any, headers: dict[str, str] = ACME_PM) -> Answer:
    return api.post(BATCHES, body, headers)


def statuses(answer: Answer) -> list[int]:
    assert answer.status == 207, answer.body
    return [result["status"] for result in answer.body["results"]]


def item_problem(result: dict[str, Any], status: int, field: str | None = None) -> dict[str, Any]:
    """The item's problem: RFC 9457 members, the item's status; `field` among its errors."""
    assert result["status"] == status, result
    assert "grant" not in result
    problem: dict[str, Any] = result["problem"]
    assert set(problem) >= PROBLEM_KEYS
    assert problem["status"] == status
    if field is not None:
        assert field in [e["field"] for e in problem["errors"]], problem
    return problem


@pytest.fixture
def demo(seed: Seeder, world: World, stack: LocalStack) -> World:
    """Project demo; Console Users dev-1, dev-2, dev-3 of acme; dev-3 with an activated grant."""
    project = seed.demo()
    seed.contact("dev-2", "dave.dev@acme.example", name="Dave Dev")
    dev3 = seed.contact("dev-3", "dora.dev@acme.example", name="Dora Dev")
    seed.contact("norm-1", "norm@acme.example", console_user=False)
    world.put_grant(project, dev3, GrantStatus.ACTIVATED)
    return world


def test_adds_and_removals_answer_one_result_per_item_in_input_order(api: Api, demo: World) -> None:
    # When acme's manager adds dev-1 (by id), dev-2 (by email) and a new contact, and removes dev-3
    new = {"email": "nia@acme.example", "name": "Nia New", "kind": "company"}
    answer = batch(
        api,
        {
            "remove": ["dev-3"],
            "add": [
                {"contact_id": "dev-1"},
                {"email": "dave.dev@acme.example"},
                {"new_contact": new},
            ],
        },
    )

    # Then 207: adds first, then the removal, each the 202 grant of its single call
    assert statuses(answer) == [202, 202, 202, 202]
    results = answer.body["results"]
    assert [(r["index"], r["op"]) for r in results] == [
        (0, "add"),
        (1, "add"),
        (2, "add"),
        (3, "remove"),
    ]
    assert [set(r) for r in results] == [{"index", "op", "contact_id", "status", "grant"}] * 4
    assert [r["contact_id"] for r in results[:2]] == ["dev-1", "dev-2"]
    assert results[2]["contact_id"] == results[2]["grant"]["contact_id"]
    assert results[2]["contact_id"].startswith("c-")
    assert [r["grant"]["status"] for r in results] == ["activation_pending"] * 3 + [
        "deletion_pending"
    ]

    # And each runs its lifecycle to the end
    for result in results[:3]:
        grant = settled_grant(api, "demo", result["contact_id"])
        assert grant is not None
        assert grant["status"] == "activated"
    assert settled_grant(api, "demo", "dev-3") is None


def test_one_bad_item_changes_nothing_and_the_others_go_on(api: Api, demo: World) -> None:
    # When a batch adds dev-1, norm-1 (no Console User profile: 422) and dev-2
    answer = batch(
        api, {"add": [{"contact_id": "dev-1"}, {"contact_id": "norm-1"}, {"contact_id": "dev-2"}]}
    )

    # Then norm-1's item is its single call's 422 and the others are accepted
    assert statuses(answer) == [202, 422, 202]
    item_problem(answer.body["results"][1], 422, field="contact_id")
    assert answer.body["results"][1]["contact_id"] == "norm-1"
    for contact_id in ("dev-1", "dev-2"):
        assert settled_grant(api, "demo", contact_id)["status"] == "activated"  # type: ignore[index]

    # And norm-1 has no grant and no activity
    assert api.get("/projects/demo/grants/norm-1", ACME_PM).status == 404
    assert activity_actions(api, "demo", "norm-1") == []


def test_items_are_refused_as_their_single_calls_would_be(
    api: Api, demo: World, stack: LocalStack
) -> None:
    # Given dev-1's activation is held in flight (JSM answers slowly)
    assert stack.jira is not None
    stack.jira.set_faults(
        [{"method": "GET", "path_regex": "user/search", "status": None, "delay_ms": 1500}]
    )
    assert api.post("/projects/demo/grants", {"contact_id": "dev-1"}, ACME_PM).status == 202
    past = iso(utc_now() - timedelta(days=1))

    # When a batch carries items each single call would refuse
    answer = batch(
        api,
        {
            "add": [
                {"contact_id": "dev-3"},  # has a grant: 409
                {"email": "nobody@acme.example"},  # unknown email: 422
                {"contact_id": "dev-2", "email": "dave.dev@acme.example"},  # two ways: 422
                "dev-2",  # not an object: 400, as a body that is not one
                {"contact_id": "dev-2", "expires_at": past},  # expiry in the past: 422
            ],
            "remove": ["dev-1", "nobody", "not an id!", 7],
        },
    )

    # Then every item is its single call's problem, and nothing changed for any of them
    assert statuses(answer) == [409, 422, 422, 400, 422, 409, 404, 400, 400]
    results = answer.body["results"]
    item_problem(results[1], 422, field="email")
    item_problem(results[4], 422, field="expires_at")
    pending = item_problem(results[5], 409)
    assert pending["retry_after"] >= 1  # the Retry-After the single DELETE carries
    assert [r["contact_id"] for r in results] == [
        "dev-3",
        None,
        None,  # an item that is not valid input names nobody
        None,
        "dev-2",
        "dev-1",
        "nobody",
        None,
        None,
    ]
    assert api.get("/projects/demo/grants/dev-2", ACME_PM).status == 404
    assert settled_grant(api, "demo", "dev-1")["status"] == "activated"  # type: ignore[index]


def test_another_companys_grant_is_a_403_item(api: Api, demo: World) -> None:
    # When the integrator's supervisor removes acme's grant of dev-3 in a batch
    answer = batch(api, {"remove": ["dev-3"]}, INTEGRATOR_PM)

    # Then that item is the single call's 403 and the grant stays
    assert statuses(answer) == [403]
    item_problem(answer.body["results"][0], 403)
    assert api.get("/projects/demo/grants/dev-3", ACME_PM).body["status"] == "activated"


def test_a_contact_named_twice_is_refused_the_second_time(api: Api, demo: World) -> None:
    # When a batch adds dev-1 by id and by email, then removes dev-1
    answer = batch(
        api,
        {
            "add": [{"contact_id": "dev-1"}, {"email": "dana.dev@acme.example"}],
            "remove": ["dev-1"],
        },
    )

    # Then the later items are 422 naming the first, and dev-1 is requested once
    assert statuses(answer) == [202, 422, 422]
    problem = item_problem(answer.body["results"][1], 422, field="email")
    assert "item 0" in problem["detail"]
    settled_grant(api, "demo", "dev-1")
    assert activity_actions(api, "demo", "dev-1").count("grant.requested") == 1


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({}, 422),
        ({"add": [], "remove": []}, 422),
        ({"add": [{"contact_id": f"dev-{i}"} for i in range(60)], "remove": ["x"] * 41}, 422),
        ({"add": {"contact_id": "dev-1"}}, 422),
        ({"add": [{"contact_id": "dev-1"}], "also": 1}, 422),
        ('{"add": [', 400),
        ("[]", 400),
    ],
    ids=[
        "no items",
        "empty lists",
        "101 items",
        "add not a list",
        "unknown member",
        "not JSON",
        "not an object",
    ],
)
def test_a_batch_of_0_or_over_100_items_or_malformed_is_refused_whole(
    api: Api, demo: World, body: Any, status: int
) -> None:
    # When / Then the batch is refused as a whole, and nothing changes
    with demo.unchanged():
        answer = batch(api, body)
    assert_problem(answer, status)


@pytest.mark.parametrize(
    ("headers", "path", "status"),
    [
        (ACME_USER, BATCHES, 403),
        (OTHER_PM, BATCHES, 403),
        (ACME_PM, "/projects/nope/grant-batches", 404),
    ],
    ids=["console user", "another company's manager", "unknown project"],
)
def test_who_may_not_manage_the_projects_grants_is_refused_whole(
    api: Api, demo: World, headers: dict[str, str], path: str, status: int
) -> None:
    with demo.unchanged():
        answer = api.post(path, {"add": [{"contact_id": "dev-1"}]}, headers)
    assert_problem(answer, status)


def test_a_valid_expiry_is_given_to_the_grant(api: Api, demo: World) -> None:
    expires_at = iso(utc_now() + timedelta(days=30))
    answer = batch(api, {"add": [{"contact_id": "dev-1", "expires_at": expires_at}]})
    assert statuses(answer) == [202]
    assert answer.body["results"][0]["grant"]["expires_at"] == expires_at


def test_the_same_key_and_body_answer_the_first_207(api: Api, demo: World) -> None:
    # Given a batch sent with an Idempotency-Key
    key = {**ACME_PM, "Idempotency-Key": "batch-7f3a"}
    body = {"add": [{"contact_id": "dev-1"}, {"contact_id": "norm-1"}]}
    first = batch(api, body, key)
    settled_grant(api, "demo", "dev-1")

    # When it is sent again with the same key and body
    second = batch(api, body, key)

    # Then the first answer is repeated, and dev-1 was requested once
    assert statuses(first) == [202, 422]
    assert second.status == 207
    assert second.body == first.body
    assert activity_actions(api, "demo", "dev-1").count("grant.requested") == 1

    # And the same key with another body is refused, changing nothing
    with demo.unchanged():
        other = batch(api, {"add": [{"contact_id": "dev-2"}]}, key)
    assert_problem(other, 422, field="Idempotency-Key")
