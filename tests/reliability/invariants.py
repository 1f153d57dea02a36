"""What must hold after any fault: grants settle, JSM matches the grants table, and the activity
log records each transition of a grant exactly once, in an order the lifecycle allows."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from chalicelib.config import get_settings
from local.aws import aws_client
from local.stack import LocalStack
from tests.helpers import PENDING, PLATFORM_ADMIN, Api, wait_for

# Actions that start a lifecycle run, and those that end one (one of each per run).
STARTS = {"grant.requested", "grant.removal_requested"}
ENDS = {
    "grant.activated",
    "grant.activation_failed",
    "grant.removed",
    "grant.removal_failed",
}
# The lifecycle as the activity log tells it: status before → action → status after
# (None = no grant). SPEC §1 plus the retry of a failed activation (docs/decisions.md).
TRANSITIONS: dict[tuple[str | None, str], str | None] = {
    (None, "grant.requested"): "activation_pending",
    ("activation_failed", "grant.requested"): "activation_pending",
    ("activation_pending", "grant.activated"): "activated",
    ("activation_pending", "grant.activation_failed"): "activation_failed",
    ("activated", "grant.removal_requested"): "deletion_pending",
    ("activation_failed", "grant.removal_requested"): "deletion_pending",
    ("deletion_failed", "grant.removal_requested"): "deletion_pending",
    ("deletion_pending", "grant.removed"): None,
    ("deletion_pending", "grant.removal_failed"): "deletion_failed",
}


def grant_entries(api: Api, project_id: str, contact_id: str) -> list[dict[str, Any]]:
    """The contact's `grant.*` activity entries on the project, oldest first (all pages)."""
    entries: list[dict[str, Any]] = []
    cursor = ""
    while True:
        query = f"?limit=100&contact_id={contact_id}" + (f"&cursor={cursor}" if cursor else "")
        page = api.get(f"/projects/{project_id}/activity{query}", PLATFORM_ADMIN)
        assert page.status == 200, page.body
        entries += page.body["items"]
        cursor = page.body["next_cursor"]
        if not cursor:
            break
    grant = [e for e in entries if e["action"].startswith("grant.")]
    return sorted(grant, key=lambda e: (e["at"], e["id"]))


def grant_actions(api: Api, project_id: str, contact_id: str) -> list[str]:
    """The actions run by run (each run's start, then its end), oldest run first."""
    ordered = []
    for run in lifecycle_runs(grant_entries(api, project_id, contact_id)):
        ordered += [run.start["action"]] + ([run.end["action"]] if run.end else [])
    return ordered


@dataclass(frozen=True)
class Run:
    """One lifecycle run (one execution) as the activity log recorded it."""

    execution: str
    start: dict[str, Any]
    end: dict[str, Any] | None


def lifecycle_runs(entries: Iterable[dict[str, Any]]) -> list[Run]:
    """Group entries by execution; each run must have exactly one start and at most one end."""
    starts: dict[str, dict[str, Any]] = {}
    ends: dict[str, dict[str, Any]] = {}
    for entry in entries:
        execution = entry["detail"].get("execution")
        assert execution, f"activity entry without its execution: {entry}"
        bucket = starts if entry["action"] in STARTS else ends
        assert entry["action"] in STARTS | ENDS, entry
        assert execution not in bucket, f"two {entry['action']} entries for run {execution}"
        bucket[execution] = entry
    assert set(ends) <= set(starts), f"runs that ended without starting: {set(ends) - set(starts)}"
    runs = [Run(name, start, ends.get(name)) for name, start in starts.items()]
    return sorted(runs, key=lambda r: (r.start["at"], r.start["id"]))


def assert_valid_history(entries: list[dict[str, Any]]) -> list[Run]:
    """The runs never overlap, and their starts and ends replay through the lifecycle."""
    runs = lifecycle_runs(entries)
    status: str | None = None
    for index, run in enumerate(runs):
        later = runs[index + 1 :]
        if later:
            assert run.end is not None, f"run {run.execution} never ended but a later one began"
            assert run.end["at"] <= later[0].start["at"], (
                f"run {later[0].execution} began before {run.execution} ended"
            )
        for entry in (run.start, run.end):
            if entry is None:
                continue
            key = (status, entry["action"])
            assert key in TRANSITIONS, f"{entry['action']} is not allowed from {status}"
            status = TRANSITIONS[key]
    return runs


def assert_transitions(api: Api, project_id: str, contact_id: str, expected: list[str]) -> None:
    """Exactly these `grant.*` entries, in this order, forming a valid history."""
    assert_valid_history(grant_entries(api, project_id, contact_id))
    assert grant_actions(api, project_id, contact_id) == expected


def settle(api: Api, project_id: str, contact_ids: Iterable[str], timeout: float = 30) -> None:
    """Wait until none of the contacts' grants on the project is pending."""
    wanted = set(contact_ids)

    def settled() -> bool:
        grants = all_grants(api, project_id)
        return not any(g["status"] in PENDING for g in grants if g["contact_id"] in wanted)

    wait_for(settled, timeout, f"grants of {sorted(wanted)} to settle")


def all_grants(api: Api, project_id: str) -> list[dict[str, Any]]:
    answer = api.get(f"/projects/{project_id}/grants?limit=100", PLATFORM_ADMIN)
    assert answer.status == 200, answer.body
    assert answer.body["next_cursor"] is None  # the tests keep projects under one page
    return list(answer.body["items"])


def assert_jsm_matches_grants(
    stack: LocalStack, api: Api, project_id: str, removed_emails: Iterable[str] = ()
) -> None:
    """JSM state equals the grants table for the project.

    Every activated grant's account is a customer of the desk and a member of the organization;
    every member of the organization holds a grant that is not pending (a failed one may keep
    what it got so far); an account whose grant was removed is in neither.
    """
    assert stack.jira is not None
    project = api.get(f"/projects/{project_id}", PLATFORM_ADMIN).body
    grants = all_grants(api, project_id)
    assert not [g for g in grants if g["status"] in PENDING], "a grant is still pending"
    ids = [(g["project_id"], g["contact_id"]) for g in grants]
    assert len(ids) == len(set(ids)), f"duplicated grants: {ids}"

    state = stack.jira.state()
    organization = next(o for o in state["organizations"] if o["id"] == project["organization_id"])
    desk = next(d for d in state["service_desks"] if d["id"] == project["service_desk_id"])
    accounts = {c["emailAddress"].lower(): c["accountId"] for c in state["customers"]}
    assert len(organization["users"]) == len(set(organization["users"]))
    assert len(desk["customers"]) == len(set(desk["customers"]))

    for grant in grants:
        if grant["status"] == "activated":
            account = grant["jira_account_id"]
            assert account == accounts[grant["email"]], grant
            assert account in desk["customers"], f"{grant['email']} is not a desk customer"
            assert account in organization["users"], f"{grant['email']} is not in the org"
    held = {g["jira_account_id"] for g in grants if g["jira_account_id"]}
    assert set(organization["users"]) <= held, "the organization has members without a grant"
    for email in removed_emails:
        account = accounts.get(email.lower())
        assert account is not None, f"{email} never had a JSM account"
        assert account not in organization["users"], f"{email} is still in the organization"
        assert account not in desk["customers"], f"{email} is still a desk customer"


def mails_to(stack: LocalStack, email: str) -> list[dict[str, Any]]:
    assert stack.mailbox is not None
    return [m for m in stack.mailbox.messages() if email.lower() in [t.lower() for t in m["to"]]]


def jsm_calls(stack: LocalStack, method: str, path_suffix: str) -> list[dict[str, Any]]:
    assert stack.jira is not None
    return [
        c for c in stack.jira.calls() if c["method"] == method and c["path"].endswith(path_suffix)
    ]


def waits(stack: LocalStack, kind: str) -> list[float]:
    """The Wait-state (`wait`) or Retry (`retry`) seconds Step Functions asked for."""
    assert stack.fast_clock is not None
    return [seconds for k, seconds in stack.fast_clock.waits if k == kind]


def executions(
    stack: LocalStack,
    name_prefix: str,
    since: datetime | None = None,
    status: str | None = None,
) -> list[dict[str, Any]]:
    """Step Functions executions (both machines) whose name starts with `name_prefix`.

    `since` keeps those started at or after it (moto keeps executions across tests); `status`
    asks only for executions in that status.
    """
    assert stack.provisioned is not None
    sfn = aws_client("stepfunctions", stack.aws_url, get_settings().region)
    found = []
    for machine in stack.provisioned.state_machines.values():
        query = {"stateMachineArn": machine} | ({"statusFilter": status} if status else {})
        for page in sfn.get_paginator("list_executions").paginate(**query):
            found += [
                e
                for e in page["executions"]
                if e["name"].startswith(name_prefix) and (since is None or e["startDate"] >= since)
            ]
    return found


def wait_for_executions_to_end(stack: LocalStack, name_prefix: str, timeout: float = 30) -> None:
    """Wait until no execution whose name starts with `name_prefix` is running."""
    wait_for(
        lambda: not executions(stack, name_prefix, status="RUNNING"),
        timeout,
        f"the executions {name_prefix}* to end",
    )


def execution_intervals(found: list[dict[str, Any]]) -> list[tuple[datetime, datetime, str]]:
    return sorted((e["startDate"], e["stopDate"], e["name"]) for e in found)
