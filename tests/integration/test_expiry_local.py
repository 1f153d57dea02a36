"""Time-bound grants on the local stack: the runner's scheduled expiry job against moto's
DynamoDB (its sparse index), the real removal ASL, the JSM emulator and the mailbox."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta
from typing import Any

import pytest

from chalicelib.config import get_settings
from chalicelib.domain.models import iso, utc_now
from local.stack import LocalStack, Scheduler
from tests.helpers import ACME_PM, Api, Seeder, active_grant, settled_grant, wait_for

pytestmark = pytest.mark.slow

DEV = "/projects/demo/grants/dev-1"


def _expire_job(stack: LocalStack) -> dict[str, Any]:
    payload, failed = Scheduler(stack.app, get_settings().region, 0).invoke("expire_grants")
    assert not failed, payload
    return dict(json.loads(payload))


def test_the_runner_removes_a_grant_expiring_in_a_moment_by_itself(
    stack: LocalStack, api: Api, seed: Seeder
) -> None:
    # Given dev-1's activated grant, then its expiry set to 3 s from now
    seed.demo()
    assert api.post("/projects/demo/grants", {"contact_id": "dev-1"}, ACME_PM).status == 202
    active_grant(api, "demo", "dev-1")
    answer = api.call("PATCH", DEV, {"expires_at": iso(utc_now() + timedelta(seconds=3))}, ACME_PM)
    assert answer.status == 200, answer.body

    # When the local runner runs the scheduled jobs (every 0.5 s here, 10 s under `make run`)
    assert stack.app is not None
    scheduler = Scheduler(stack.app, get_settings().region, 0.5)
    assert "expire_grants" in scheduler.jobs()
    started = time.monotonic()
    scheduler.start()
    try:
        # Then the grant is removed by itself, soon after it expired
        wait_for(lambda: api.get(DEV, ACME_PM).status == 404, 30, "the removal")
    finally:
        scheduler.stop()
    assert time.monotonic() - started < 30
    items = api.get("/projects/demo/activity?contact_id=dev-1", ACME_PM).body["items"]
    requested = next(e for e in items if e["action"] == "grant.removal_requested")
    assert requested["actor"]["type"] == "system"
    assert requested["detail"]["reason"] == "expired"
    assert [e["action"] for e in items].count("grant.removal_requested") == 1
    assert items[0]["action"] == "grant.removed"


def test_two_expiry_jobs_at_once_remove_once_and_remind_once(
    stack: LocalStack, api: Api, seed: Seeder
) -> None:
    # Given one expired activated grant and one expiring in two days
    seed.demo()
    seed.contact("pm-1", "priya.pm@acme.example", name="Priya PM")
    for contact_id in ("dev-1", "pm-1"):
        assert api.post("/projects/demo/grants", {"contact_id": contact_id}, ACME_PM).status == 202
        active_grant(api, "demo", contact_id)
    soon = iso(utc_now() + timedelta(days=2))
    assert api.call("PATCH", "/projects/demo/grants/pm-1", {"expires_at": soon}, ACME_PM).status
    expiring = iso(utc_now() + timedelta(seconds=1))
    assert api.call("PATCH", DEV, {"expires_at": expiring}, ACME_PM).status == 200
    time.sleep(1.2)
    assert stack.mailbox is not None
    stack.mailbox.clear()

    # When the expiry job runs twice at the same time
    reports: list[dict[str, Any]] = []
    threads = [
        threading.Thread(target=lambda: reports.append(_expire_job(stack))) for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    # Then one removal started, one reminder went to pm-1
    assert len(reports) == 2, reports  # both runs ended without an error
    assert sum(r["removals_started"] for r in reports) == 1, reports
    assert settled_grant(api, "demo", "dev-1") is None
    reminders = [
        m for m in stack.mailbox.messages() if m["subject"].startswith("Your helpdesk access ends")
    ]
    assert [m["to"] for m in reminders] == [["priya.pm@acme.example"]]
    assert _expire_job(stack)["reminders_sent"] == 0
