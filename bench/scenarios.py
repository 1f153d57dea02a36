"""The measured scenarios, each against the running local stack, each returning plain figures."""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import requests

from bench.probes import AwsRequest, AwsRequestLog, TaskRun, TaskTimer
from bench.round_trips import CallCounter, measure
from bench.workload import Console, Workflows, contacts, execution_prefix, seed_grants
from local.stack import LocalStack

JSM_AUTH = ("helpdesk-bot@example.com", "local-token")
RATE_SETTING = "HELPDESK_JIRA_RATE_PER_SECOND"


def progress(message: str) -> None:
    """Progress goes to stderr, so stdout carries the report alone."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def percentile(values: list[float], pct: float) -> float:
    """The `pct` percentile (inclusive method: interpolated between the nearest samples)."""
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(pct) - 1]


def _parse_at(at: str) -> datetime:
    return datetime.fromisoformat(at.replace("Z", "+00:00"))


@dataclass(frozen=True)
class Phase:
    """One workflow run started by one API call, with everything it caused."""

    name: str
    jira_calls: list[dict[str, Any]]
    transitions: int
    execution_status: str
    final_status: str | None
    aws: list[AwsRequest]
    tasks: list[TaskRun]
    api_seconds: float


@dataclass(frozen=True)
class Latency:
    seconds: list[float]
    failures: list[str]


@dataclass(frozen=True)
class ListLatency:
    list_seconds: list[float]
    health_seconds: list[float]
    grants: int
    page_items: int
    dynamodb_seconds: float  # per listing: moto's time answering its DynamoDB requests


@dataclass(frozen=True)
class Bulk:
    grants: int
    statuses: dict[str, int]
    seconds: float
    jira_admitted: int
    jira_throttled: int
    peak_admitted_per_second: int
    rate_limit: float
    post_failures: int
    moto_errors: int

    @property
    def activated(self) -> int:
        return self.statuses.get("activated", 0)


class Bench:
    """The scenarios; all share one local stack, one set of probes and the console's tokens."""

    def __init__(self, stack: LocalStack, log: AwsRequestLog, timer: TaskTimer) -> None:
        from chalicelib.config import get_settings  # noqa: PLC0415 - after the stack set the env

        assert stack.jira is not None
        self.stack = stack
        self.jira = stack.jira
        self.log = log
        self.timer = timer
        self.settings = get_settings()
        self.console = Console(stack.api_url)
        self.workflows = Workflows(stack.aws_url, self.settings.region)

    # --- 1, 2, 4: one lifecycle at a time, with everything it caused --------------------------

    def _phase(
        self,
        name: str,
        project_id: str,
        contact_id: str,
        kind: str,
        act: Callable[[], requests.Response],
    ) -> Phase:
        machine = (
            self.settings.activation_state_machine_arn
            if kind == "activation"
            else self.settings.removal_state_machine_arn
        )
        jira_mark, aws_mark, task_mark = len(self.jira.calls()), self.log.mark(), self.timer.mark()
        started = time.perf_counter()
        response = act()
        api_seconds = time.perf_counter() - started
        if response.status_code != 202:
            raise RuntimeError(f"{name}: {response.status_code} {response.text}")
        execution = self.workflows.wait_finished(
            machine, execution_prefix(project_id, contact_id, kind)
        )
        jira_calls, aws, tasks = (
            self.jira.calls()[jira_mark:],
            self.log.since(aws_mark),
            self.timer.since(task_mark),
        )
        return Phase(
            name=name,
            jira_calls=jira_calls,
            transitions=self.workflows.states_entered(execution["executionArn"]),
            execution_status=str(execution["status"]),
            final_status=self.console.grant_status(project_id, contact_id),
            aws=aws,
            tasks=tasks,
            api_seconds=api_seconds,
        )

    def lifecycles(self) -> dict[str, Phase]:
        """Activation of a new and of an existing JSM account, then removal of the first."""
        project_id = "bench-lifecycle"
        self.console.put_project(project_id)
        new, existing = contacts(self.console, "life", 2)
        answer = requests.post(
            f"{self.stack.jira_url}/rest/servicedeskapi/customer",
            json={"email": f"{existing}@acme.example", "displayName": existing.title()},
            auth=JSM_AUTH,
            timeout=5,
        )
        answer.raise_for_status()
        console = self.console
        return {
            "activation_new": self._phase(
                "activation (new account)",
                project_id,
                new,
                "activation",
                lambda: console.grant(project_id, new),
            ),
            "activation_existing": self._phase(
                "activation (existing account)",
                project_id,
                existing,
                "activation",
                lambda: console.grant(project_id, existing),
            ),
            "removal": self._phase(
                "removal (desk not shared)",
                project_id,
                new,
                "removal",
                lambda: console.remove(project_id, new),
            ),
        }

    def round_trips(self, counter: CallCounter) -> list[tuple[str, int, list[str]]]:
        """AWS calls each API operation makes (botocore `before-call` hook)."""
        project_id = "bench-round-trips"
        self.console.put_project(project_id)
        ids = contacts(self.console, "trip", 3)
        return measure(
            self.stack.app, counter, project_id, [*ids, "-", ids[0]], self.console.manager
        )

    # --- 3: POST → activated, sequentially -----------------------------------------------------

    def activation_latency(self, count: int, poll_seconds: float = 0.015) -> Latency:
        project_id = "bench-latency"
        self.console.put_project(project_id)
        seconds: list[float] = []
        failures: list[str] = []
        for contact_id in contacts(self.console, "lat", count):
            started = time.perf_counter()
            response = self.console.grant(project_id, contact_id)
            if response.status_code != 202:
                failures.append(f"{contact_id}: POST {response.status_code}")
                continue
            status = "activation_pending"
            while status == "activation_pending" and time.perf_counter() - started < 60:
                time.sleep(poll_seconds)
                status = self.console.grant_status(project_id, contact_id) or "removed"
            if status == "activated":
                seconds.append(time.perf_counter() - started)
            else:
                failures.append(f"{contact_id}: {status}")
        return Latency(seconds, failures)

    # --- 5: listing a project with 1,000 grants beside /health ---------------------------------

    def list_latency(self, grants: int, requests_each: int) -> ListLatency:
        project = self.console.put_project("bench-big")
        seeded = seed_grants(project, (f"big-{i:04d}" for i in range(grants)))
        page = self.console.list_grants(project["project_id"])
        page.raise_for_status()
        items = len(page.json()["items"])
        for _ in range(20):  # warm the connection and the app's caches
            self.console.health().raise_for_status()
            self.console.list_grants(project["project_id"]).raise_for_status()
        list_seconds: list[float] = []
        health_seconds: list[float] = []
        aws_mark = self.log.mark()
        for _ in range(requests_each):
            started = time.perf_counter()
            health = self.console.health()
            health_seconds.append(time.perf_counter() - started)
            started = time.perf_counter()
            listed = self.console.list_grants(project["project_id"])
            list_seconds.append(time.perf_counter() - started)
            if health.status_code != 200 or listed.status_code != 200:
                raise RuntimeError(f"list bench: {health.status_code} / {listed.status_code}")
        dynamodb = [r.seconds for r in self.log.since(aws_mark) if r.service == "dynamodb"]
        return ListLatency(
            list_seconds, health_seconds, seeded, items, sum(dynamodb) / requests_each
        )

    # --- 6: many grants at once against JSM's rate limit ----------------------------------------

    def _all_grants(self, project_id: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        cursor = ""
        while True:
            page = self.console.list_grants(project_id, limit=100, cursor=cursor).json()
            items += page["items"]
            cursor = page.get("next_cursor") or ""
            if not cursor:
                return items

    def paced_bulk(self, count: int, rate_limit: float, timeout: float = 600) -> Bulk:
        """`bulk` with the service paced at the emulator's limit (HELPDESK_JIRA_RATE_PER_SECOND)."""
        from chalicelib import services  # noqa: PLC0415
        from chalicelib.config import get_settings  # noqa: PLC0415

        saved = os.environ.get(RATE_SETTING)
        os.environ[RATE_SETTING] = str(rate_limit)
        get_settings.cache_clear()
        services.jira_pacer.cache_clear()
        try:
            return self.bulk(
                count, rate_limit, timeout, project_id="bench-paced", prefix="paced", batches=True
            )
        finally:
            if saved is None:
                os.environ.pop(RATE_SETTING, None)
            else:
                os.environ[RATE_SETTING] = saved
            get_settings.cache_clear()
            services.jira_pacer.cache_clear()

    def bulk(
        self,
        count: int,
        rate_limit: float,
        timeout: float = 120,
        project_id: str = "bench-bulk",
        prefix: str = "bulk",
        batches: bool = False,
    ) -> Bulk:
        """`count` grants asked for at once, as concurrent POSTs or as concurrent batches of
        100 (`grant-batches`), until none is pending: how the Jira work went."""
        self.console.put_project(project_id)
        ids = contacts(self.console, prefix, count)
        self.jira.set_faults([], rate_limit_per_second=rate_limit)
        try:
            jira_mark, aws_mark = len(self.jira.calls()), self.log.mark()
            started_at = datetime.now(UTC)

            def post(contact_id: str) -> list[int]:
                return [self.console.grant(project_id, contact_id).status_code]

            def post_batch(chunk: list[str]) -> list[int]:
                answer = self.console.grant_batch(project_id, chunk)
                if answer.status_code != 207:
                    return [answer.status_code] * len(chunk)
                return [int(result["status"]) for result in answer.json()["results"]]

            # Batches one after the other (a console sends a team's next 100 when the first
            # answered); single POSTs all at once.
            units: list[Any] = [ids[i : i + 100] for i in range(0, count, 100)] if batches else ids
            with ThreadPoolExecutor(max_workers=1 if batches else len(units)) as pool:
                codes = [
                    code
                    for codes in pool.map(post_batch if batches else post, units)
                    for code in codes
                ]
            deadline = time.monotonic() + timeout
            while True:
                items = self._all_grants(project_id)
                pending = [g for g in items if g["status"] == "activation_pending"]
                if not pending or time.monotonic() > deadline:
                    break
                time.sleep(1.0)  # listing hundreds of grants takes CPU from the stack it watches
            calls = self.jira.calls()[jira_mark:]
        finally:
            self.jira.set_faults([], rate_limit_per_second=None)
        statuses: dict[str, int] = {}
        for grant in items:
            statuses[grant["status"]] = statuses.get(grant["status"], 0) + 1
        finished = max((_parse_at(g["updated_at"]) for g in items), default=started_at)
        admitted = [_parse_at(c["at"]) for c in calls if c["status"] != 429]
        peak = max(
            (sum(0 <= (b - a).total_seconds() < 1 for b in admitted) for a in admitted),
            default=0,
        )
        return Bulk(
            grants=count,
            statuses=statuses,
            seconds=(finished - started_at).total_seconds(),
            jira_admitted=len(admitted),
            jira_throttled=sum(c["status"] == 429 for c in calls),
            peak_admitted_per_second=peak,
            rate_limit=rate_limit,
            post_failures=sum(code != 202 for code in codes),
            moto_errors=len(self.log.server_errors(aws_mark)),
        )


# --- 7: cold imports ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ImportTimes:
    """Median seconds per subject (infra/measure_import.py): as the zip ships, and without .pyc."""

    compiled: dict[str, float]
    uncompiled: dict[str, float]


def import_times(runs: int) -> ImportTimes:
    """Cold imports of every entry point and of boto3 in Lambda-like fresh interpreters."""
    from infra.measure_import import measure  # noqa: PLC0415 - imports the app's table models

    return ImportTimes(
        compiled=measure(runs, bytecode=True), uncompiled=measure(runs, bytecode=False)
    )
