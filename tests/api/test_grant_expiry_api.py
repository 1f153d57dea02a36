"""Time-bound grants over HTTP (SPEC §2): `expires_at` on POST and `PATCH .../grants/{id}`."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from chalicelib.domain.models import GrantStatus, iso, utc_now
from tests.api.expect import World, assert_problem
from tests.helpers import ACME_PM, INTEGRATOR_PM, OTHER_PM, Api, Seeder, activity_actions

GRANTS = "/projects/demo/grants"
DEV = "/projects/demo/grants/dev-1"


def ahead(**delta: float) -> str:
    return iso(utc_now() + timedelta(**delta))


def patch(api: Api, body: Any, headers: dict[str, str] = ACME_PM, path: str = DEV) -> Any:
    return api.call("PATCH", path, body, headers)


def granted(seed: Seeder, world: World, status: GrantStatus = GrantStatus.ACTIVATED) -> None:
    """Given: project demo with dev-1's grant in `status`, written straight to the store."""
    project = seed.demo()
    dev = seed.contact("dev-1", "dana.dev@acme.example", name="Dana Dev")
    world.put_grant(project, dev, status)


# --- POST ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "given",
    [lambda: ahead(seconds=-1), lambda: ahead(days=366, minutes=1), lambda: "2026-02-30T10:00:00Z"],
    ids=["past", "more than 366 days ahead", "no such day"],
)
def test_a_grant_expiry_must_be_future_and_within_366_days(
    api: Api, seed: Seeder, world: World, given: Callable[[], str]
) -> None:
    expires_at = given()  # when the test runs, not when it was collected
    seed.demo()
    with world.unchanged():
        answer = api.post(GRANTS, {"contact_id": "dev-1", "expires_at": expires_at}, ACME_PM)
    assert_problem(answer, 422, field="expires_at")


def test_a_grant_expiry_is_stored_in_the_api_timestamp_format(
    api: Api, seed: Seeder, world: World
) -> None:
    seed.demo()
    wanted = (utc_now() + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    answer = api.post(GRANTS, {"contact_id": "dev-1", "expires_at": wanted}, ACME_PM)
    assert answer.status == 202, answer.body
    assert answer.body["expires_at"] == wanted.replace("Z", ".000Z")
    world.settle()


# --- PATCH ---------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [GrantStatus.ACTIVATED, GrantStatus.ACTIVATION_PENDING])
def test_a_manager_sets_then_clears_the_expiry(
    api: Api, seed: Seeder, world: World, status: GrantStatus
) -> None:
    # Given dev-1's grant, activated or still being activated
    granted(seed, world, status)
    wanted = ahead(days=10)

    # When acme's manager sets an expiry, then clears it
    answer = patch(api, {"expires_at": wanted})
    cleared = patch(api, {"expires_at": None})

    # Then 200 with the grant each time, stored, and both changes in the activity log
    assert answer.status == 200, answer.body
    assert answer.body["expires_at"] == wanted
    assert answer.body["status"] == status.value
    assert cleared.status == 200, cleared.body
    assert cleared.body["expires_at"] is None
    assert api.get(DEV, ACME_PM).body["expires_at"] is None
    assert activity_actions(api, "demo", "dev-1") == ["grant.expiry_changed"] * 2
    entries = api.get("/projects/demo/activity?contact_id=dev-1", ACME_PM).body["items"]
    assert entries[0]["detail"] == {"old": wanted, "new": None}
    assert entries[1]["detail"] == {"old": None, "new": wanted}


def test_the_same_expiry_again_changes_nothing(api: Api, seed: Seeder, world: World) -> None:
    granted(seed, world)
    wanted = ahead(days=10)
    assert patch(api, {"expires_at": wanted}).status == 200
    with world.unchanged():
        again = patch(api, {"expires_at": wanted})
    assert again.status == 200


@pytest.mark.parametrize(
    "status",
    [
        GrantStatus.ACTIVATION_FAILED,
        GrantStatus.DELETION_PENDING,
        GrantStatus.DELETION_FAILED,
    ],
)
def test_only_a_grant_being_activated_or_activated_has_its_expiry_changed(
    api: Api, seed: Seeder, world: World, status: GrantStatus
) -> None:
    granted(seed, world, status)
    with world.unchanged():
        answer = patch(api, {"expires_at": ahead(days=10)})
    assert_problem(answer, 409)


@pytest.mark.parametrize(
    "make_body",
    [
        lambda: {},
        lambda: {"expires_at": "tomorrow"},
        lambda: {"expires_at": ahead(minutes=-5)},
        lambda: {"expires_at": ahead(days=367)},
        lambda: {"expires_at": None, "status": "removed"},
    ],
    ids=["missing", "not a timestamp", "past", "too far", "unknown field"],
)
def test_a_bad_expiry_is_refused(
    api: Api, seed: Seeder, world: World, make_body: Callable[[], Any]
) -> None:
    body = make_body()
    granted(seed, world)
    with world.unchanged():
        answer = patch(api, body)
    assert answer.status in {400, 422}, answer.body
    if "expires_at" in body and len(body) == 1:
        assert_problem(answer, 422, field="expires_at")


def test_no_grant_is_a_404(api: Api, seed: Seeder) -> None:
    seed.demo()
    assert_problem(patch(api, {"expires_at": None}), 404)


@pytest.mark.parametrize("headers", [OTHER_PM, INTEGRATOR_PM], ids=["stranger", "not granter"])
def test_only_who_may_remove_the_grant_changes_its_expiry(
    api: Api, seed: Seeder, world: World, headers: dict[str, str]
) -> None:
    # Given acme's grant of acme's contact (the integrator's manager may not remove it, rule 2)
    granted(seed, world)
    with world.unchanged():
        answer = patch(api, {"expires_at": ahead(days=3)}, headers)
    assert_problem(answer, 403)
