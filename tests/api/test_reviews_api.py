"""Access reviews over HTTP (SPEC §2 `reviews` rows) on the local stack: open, decide, and the
scheduled deadline job run as EventBridge would invoke it (twice at the same time)."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta
from typing import Any

from chalicelib.config import get_settings
from chalicelib.domain.models import GrantStatus, iso, utc_now
from local.stack import LocalStack, Scheduler
from tests.api.expect import World, assert_problem
from tests.helpers import ACME_PM, INTEGRATOR_PM, OTHER_PM, Api, Seeder, settled_grant

REVIEWS = "/projects/demo/reviews"


def ahead(**delta: float) -> str:
    return iso(utc_now() + timedelta(**delta))


def reviewed_grants(seed: Seeder, world: World) -> dict[str, Any]:
    """Given: demo with activated grants of dev-1, pm-1 and ops-1, and one being activated."""
    project = seed.demo()
    for contact_id in ("dev-1", "pm-1", "ops-1"):
        contact = seed.contact(contact_id, f"{contact_id}@acme.example", name=contact_id)
        world.put_grant(project, contact, GrantStatus.ACTIVATED)
    new = seed.contact("new-1", "new-1@acme.example", name="New")
    world.put_grant(project, new, GrantStatus.ACTIVATION_PENDING)
    return project


def _deadline_job(stack: LocalStack) -> dict[str, Any]:
    payload, failed = Scheduler(stack.app, get_settings().region, 0).invoke("close_due_reviews")
    assert not failed, payload
    return dict(json.loads(payload))


def test_a_review_is_opened_once_and_lists_the_activated_grants(
    api: Api, seed: Seeder, world: World
) -> None:
    reviewed_grants(seed, world)

    # A deadline in the past or beyond 90 days is refused
    for due in (ahead(seconds=-1), ahead(days=91)):
        with world.unchanged():
            assert_problem(api.post(REVIEWS, {"due_at": due}, ACME_PM), 422, field="due_at")
    # The integrator's managers may not open one
    with world.unchanged():
        assert_problem(api.post(REVIEWS, {"due_at": ahead(days=7)}, INTEGRATOR_PM), 403)

    answer = api.post(REVIEWS, {"due_at": ahead(days=7)}, ACME_PM)
    assert answer.status == 201, answer.body
    review = answer.body
    assert review["status"] == "open"
    assert review["opened_by"] == "pm-1"
    assert sorted(i["contact_id"] for i in review["items"]) == ["dev-1", "ops-1", "pm-1"]
    assert all(i["decision"] is None for i in review["items"])
    assert api.get(f"{REVIEWS}/{review['review_id']}", INTEGRATOR_PM).body == review
    listed = api.get(REVIEWS, ACME_PM).body
    assert [r["review_id"] for r in listed["items"]] == [review["review_id"]]

    # One open review per project
    with world.unchanged():
        assert_problem(api.post(REVIEWS, {"due_at": ahead(days=3)}, ACME_PM), 409)
    assert_problem(api.get(f"{REVIEWS}/r-nope", ACME_PM), 404)
    assert_problem(api.get(REVIEWS, OTHER_PM), 403)


def test_revoke_removes_at_once_and_the_deadline_removes_the_undecided(
    stack: LocalStack, api: Api, seed: Seeder, world: World
) -> None:
    # Given a review of three activated grants, due in a moment
    reviewed_grants(seed, world)
    review = api.post(REVIEWS, {"due_at": ahead(seconds=2)}, ACME_PM).body
    path = f"{REVIEWS}/{review['review_id']}"

    # When dev-1 is revoked and pm-1 kept
    revoked = api.put(f"{path}/items/dev-1", {"decision": "revoke"}, ACME_PM)
    kept = api.put(f"{path}/items/pm-1", {"decision": "keep"}, ACME_PM)

    # Then dev-1's removal started at once (reason review), pm-1 stays
    assert revoked.status == 200, revoked.body
    assert (revoked.body["decision"], revoked.body["decided_by"]) == ("revoke", "pm-1")
    assert kept.status == 200
    assert kept.body["decision"] == "keep"
    assert settled_grant(api, "demo", "dev-1") is None
    items = api.get("/projects/demo/activity?contact_id=dev-1", ACME_PM).body["items"]
    requested = next(e for e in items if e["action"] == "grant.removal_requested")
    assert requested["detail"]["reason"] == "review"
    assert requested["actor"] == {"type": "user", "id": "pm-1", "email": "priya.pm@acme.example"}
    with world.unchanged():
        changed = api.put(f"{path}/items/pm-1", {"decision": "revoke"}, ACME_PM)
    assert_problem(changed, 409)

    # When the deadline passed and the job runs twice at the same time
    time.sleep(2.2)
    reports: list[dict[str, Any]] = []
    threads = [
        threading.Thread(target=lambda: reports.append(_deadline_job(stack))) for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    # Then ops-1 (undecided) is removed once (system, review_expired) and the review closed once
    assert len(reports) == 2, reports
    assert sum(r["removals_started"] for r in reports) == 1, reports
    assert sum(r["reviews_closed"] for r in reports) == 1, reports
    assert settled_grant(api, "demo", "ops-1") is None
    assert settled_grant(api, "demo", "pm-1") is not None
    ops = api.get("/projects/demo/activity?contact_id=ops-1", ACME_PM).body["items"]
    removal = [e for e in ops if e["action"] == "grant.removal_requested"]
    assert len(removal) == 1
    assert removal[0]["actor"]["type"] == "system"
    assert removal[0]["detail"]["reason"] == "review_expired"
    closed = api.get(path, ACME_PM).body
    assert closed["status"] == "closed"
    assert closed["closed_at"]
    actions = [
        e["action"] for e in api.get("/projects/demo/activity?limit=100", ACME_PM).body["items"]
    ]
    assert actions.count("review.closed") == 1
    assert actions.count("review.opened") == 1
    assert actions.count("review.decided") == 2

    # And a decision on the closed review is refused; a new review may be opened
    with world.unchanged():
        assert_problem(api.put(f"{path}/items/ops-1", {"decision": "keep"}, ACME_PM), 409)
    assert api.post(REVIEWS, {"due_at": ahead(days=7)}, ACME_PM).status == 201
