"""Fifty conflicting calls on one grant, over real HTTP from many threads at once.

Adds and removals race each other in bursts; whatever the interleaving, at most one lifecycle of
the grant runs at a time, every accepted call is in the activity log exactly once, and the end
state in the grants table is the one JSM has.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
import requests

from chalicelib.config import get_settings
from chalicelib.domain.models import iso, utc_now
from local.aws import aws_client
from local.stack import LocalStack
from tests.helpers import ACME_PM, PLATFORM_ADMIN, Api
from tests.reliability.invariants import (
    Run,
    assert_jsm_matches_grants,
    assert_valid_history,
    executions,
    grant_entries,
    mails_to,
    settle,
    wait_for_executions_to_end,
)

pytestmark = pytest.mark.slow

DEV = "dana.dev@acme.example"
PREFIX = "demo-dev-1-"
# Ten bursts of five simultaneous calls; the pause before each burst lets some bursts land on a
# settled grant and others in the middle of a lifecycle.
BURST = ("add", "remove", "add", "remove", "add")
PAUSES = (0.0, 0.35, 0.05, 0.5, 0.1, 0.3, 0.02, 0.6, 0.15, 0.4)


@dataclass(frozen=True)
class Call:
    kind: str
    status: int
    body: dict[str, Any]
    sent: str  # ISO-8601 ms, like activity entries (truncated down)
    received: str


def _now_ms() -> str:
    return iso(datetime.now(UTC))


def _call(base_url: str, kind: str, start: threading.Barrier) -> Call:
    start.wait()
    sent = _now_ms()
    if kind == "add":
        response = requests.post(
            f"{base_url}/projects/demo/grants",
            json={"contact_id": "dev-1"},
            headers=ACME_PM,
            timeout=30,
        )
    else:
        response = requests.delete(
            f"{base_url}/projects/demo/grants/dev-1", headers=ACME_PM, timeout=30
        )
    received = iso(datetime.fromtimestamp(time.time() + 0.001, UTC))  # round the end up
    return Call(kind, response.status_code, response.json(), sent, received)


class RunningSampler(threading.Thread):
    """Samples Step Functions for this grant's RUNNING executions while the calls race."""

    def __init__(self, stack: LocalStack) -> None:
        super().__init__(name="running-sampler", daemon=True)
        assert stack.provisioned is not None
        self._machines = list(stack.provisioned.state_machines.values())
        self._sfn = aws_client("stepfunctions", stack.aws_url, get_settings().region)
        self._halt = threading.Event()
        self.samples = 0
        self.most_at_once: list[str] = []

    def run(self) -> None:
        while not self._halt.is_set():
            running = [
                e["name"]
                for machine in self._machines
                for e in self._sfn.list_executions(
                    stateMachineArn=machine, statusFilter="RUNNING", maxResults=100
                )["executions"]
                if e["name"].startswith(PREFIX)
            ]
            self.samples += 1
            if len(running) > len(self.most_at_once):
                self.most_at_once = running
            self._halt.wait(0.005)

    def stop(self) -> None:
        self._halt.set()
        self.join()


def _within(entry: dict[str, Any], call: Call) -> bool:
    return bool(call.sent <= entry["at"] <= call.received)


def _match_one_to_one(entries: list[dict[str, Any]], calls: list[Call]) -> None:
    """Each entry was written while exactly one accepted call was being answered, its own."""
    unmatched = sorted(calls, key=lambda c: c.sent)
    for entry in entries:
        call = next((c for c in unmatched if _within(entry, c)), None)
        assert call is not None, f"{entry['action']} at {entry['at']} has no accepted call"
        unmatched.remove(call)
    assert not unmatched, f"accepted calls without an activity entry: {unmatched}"


def test_fifty_conflicting_calls_run_one_lifecycle_at_a_time(
    stack: LocalStack, api: Api, demo: dict[str, Any]
) -> None:
    since = utc_now()
    sampler = RunningSampler(stack)
    sampler.start()

    # When 50 adds and removals of the same grant race in bursts of 5 simultaneous calls
    calls: list[Call] = []
    with ThreadPoolExecutor(max_workers=len(BURST)) as pool:
        for pause in PAUSES:
            time.sleep(pause)
            start = threading.Barrier(len(BURST))
            burst = [pool.submit(_call, stack.api_url, kind, start) for kind in BURST]
            calls += [future.result() for future in burst]

    # Then (once everything settled) every call got a clean answer: accepted, conflict, or gone
    settle(api, "demo", ["dev-1"], timeout=60)
    wait_for_executions_to_end(stack, PREFIX, timeout=60)
    sampler.stop()
    assert len(calls) == 50
    outcomes = Counter((c.kind, c.status) for c in calls)
    assert set(outcomes) <= {("add", 202), ("add", 409), ("remove", 202), ("remove", 409)} | {
        ("remove", 404)
    }, outcomes
    accepted_adds = [c for c in calls if c.kind == "add" and c.status == 202]
    accepted_removes = [c for c in calls if c.kind == "remove" and c.status == 202]
    assert accepted_adds, outcomes
    assert accepted_removes, outcomes
    assert all(c.body["status"] == "activation_pending" for c in accepted_adds)
    assert all(c.body["status"] == "deletion_pending" for c in accepted_removes)
    conflicts = [c for c in calls if c.status == 409]
    assert all(c.body["type"] == "/problems/conflict" for c in conflicts)

    # And the activity log is one valid history: runs never overlap, each starts and ends once
    entries = grant_entries(api, "demo", "dev-1")
    runs = assert_valid_history(entries)
    assert all(run.end is not None for run in runs)

    # And Step Functions ran exactly those runs, one at a time
    found = executions(stack, PREFIX, since)
    assert sorted(e["name"] for e in found) == sorted(run.execution for run in runs)
    assert {e["status"] for e in found} <= {"SUCCEEDED"}
    intervals = sorted((e["startDate"], e["stopDate"], e["name"]) for e in found)
    for (_, stopped, name), (started, _, next_name) in itertools.pairwise(intervals):
        assert stopped <= started, f"{next_name} started while {name} was still running"
    assert sampler.samples > 10
    assert len(sampler.most_at_once) <= 1, f"running at once: {sampler.most_at_once}"

    # And every accepted add wrote exactly one `grant.requested` entry (and nothing else did)
    requested = [e for e in entries if e["action"] == "grant.requested"]
    _match_one_to_one(requested, accepted_adds)

    # And every removal was started by exactly one accepted removal call; the other accepted
    # removal calls repeated a removal already under way (202, same), writing nothing
    removals: list[Run] = [r for r in runs if r.start["action"] == "grant.removal_requested"]
    starting = []
    for run in removals:
        call = next((c for c in accepted_removes if _within(run.start, c)), None)
        assert call is not None, f"removal {run.execution} has no accepted call"
        starting.append(call)
    assert len({id(call) for call in starting}) == len(removals)
    for call in accepted_removes:
        pending = [
            run
            for index, run in enumerate(runs)
            if run in removals
            and run.start["at"] <= call.received
            and (index + 1 == len(runs) or runs[index + 1].start["at"] >= call.sent)
        ]
        assert pending, f"a removal call was accepted with no removal under way: {call}"

    # And the end state is consistent: one grant at most, JSM matching it, one account, one email
    grants = list(api.get("/projects/demo/grants", PLATFORM_ADMIN).body["items"])
    assert len(grants) <= 1
    removed = [] if grants else [DEV]
    assert_jsm_matches_grants(stack, api, "demo", removed_emails=removed)
    assert stack.jira is not None
    accounts = [c for c in stack.jira.state()["customers"] if c["emailAddress"] == DEV]
    assert len(accounts) == 1
    assert len(mails_to(stack, DEV)) == 1
    lookup = api.get(f"/contacts?email={DEV}", PLATFORM_ADMIN).body
    assert lookup["exists"] is True
    assert lookup["contact"]["contact_id"] == "dev-1"
    print(  # the report of what the race produced
        f"\n50 racing calls: {dict(outcomes)}; {len(runs)} lifecycles "
        f"({len(requested)} activations, {len(removals)} removals); "
        f"{sampler.samples} samples of running executions; "
        f"{sum('still finishing' in c.body['detail'] for c in conflicts)} calls told to wait "
        "for the previous run to finish"
    )


def test_ten_concurrent_identical_support_access_changes_email_the_support_team_once(
    stack: LocalStack, demo: dict[str, Any]
) -> None:
    # Given the customer's company admin, and support access off
    from tests.helpers import bearer  # noqa: PLC0415

    admin = bearer("ca-1", "carla.admin@acme.example", "acme", ["company_admin"])
    body = {"enabled": True, "reason": "incident 42", "confirmation": "Support"}
    support_team = get_settings().support_team_email
    before = len(mails_to(stack, support_team))
    start = threading.Barrier(10)

    def enable(_: int) -> int:
        start.wait()
        return requests.put(
            f"{stack.api_url}/projects/demo/support-access", json=body, headers=admin, timeout=30
        ).status_code

    # When ten identical changes arrive at once
    with ThreadPoolExecutor(max_workers=10) as pool:
        statuses = list(pool.map(enable, range(10)))

    # Then support access is on, recorded once, and the support team got exactly one email
    assert set(statuses) <= {200, 409}
    assert statuses.count(200) >= 1
    assert len(mails_to(stack, support_team)) == before + 1
    log = requests.get(f"{stack.api_url}/projects/demo/activity", headers=admin, timeout=10)
    actions = [e["action"] for e in log.json()["items"]]
    assert actions.count("support_access.enabled") == 1
