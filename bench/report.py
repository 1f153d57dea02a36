"""Turns the bench's figures into the Markdown it prints and writes to `docs/performance.md`."""

from __future__ import annotations

import os
import platform
import statistics
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench import cost
from bench.export import ExportMemory
from bench.scenarios import Bulk, ImportTimes, Latency, ListLatency, Phase, percentile

DOC_PATH = Path(__file__).resolve().parent.parent / "docs" / "performance.md"


@dataclass(frozen=True)
class Row:
    metric: str
    measured: str
    target: str
    ok: bool | None  # None: no target, the figure is context

    def cells(self) -> list[str]:
        verdict = "—" if self.ok is None else ("yes" if self.ok else "**NO**")
        return [self.metric, self.measured, self.target, verdict]


@dataclass(frozen=True)
class Results:
    phases: dict[str, Phase]
    export: list[ExportMemory]
    round_trips: list[tuple[str, int, list[str]]]  # (operation, HTTP status, AWS calls)
    latency: Latency
    listing: ListLatency
    bulk: Bulk
    paced: Bulk | None
    imports: ImportTimes
    import_runs: int
    counts: cost.LifecycleCounts
    costs: list[cost.CostLine]
    wall_seconds: float
    load_at_start: float  # 1-minute load average: other processes share the cores


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    return "\n".join(lines)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds >= 0.01 else f"{seconds * 1000:.1f} ms"


def _budget(phase: Phase, what: str, measured: int, limit: int) -> Row:
    done = phase.execution_status == "SUCCEEDED"
    note = "" if done else f" (execution {phase.execution_status})"
    return Row(
        f"{what}: {phase.name}", f"{measured}{note}", f"≤ {limit}", done and measured <= limit
    )


def rows(results: Results) -> list[Row]:
    phases = results.phases
    jira_targets = {"activation_new": 4, "activation_existing": 3, "removal": 2}
    transition_targets = {"activation_new": 12, "removal": 8}
    out = [
        _budget(phases[key], "Jira calls", len(phases[key].jira_calls), limit)
        for key, limit in jira_targets.items()
    ]
    out += [
        _budget(phases[key], "State transitions", phases[key].transitions, limit)
        for key, limit in transition_targets.items()
    ]

    for operation, status, calls in results.round_trips:
        if operation.startswith("POST /grants"):
            limit, counted = 4, calls
        elif operation.startswith("GET /grants (page"):
            limit, counted = 2, [c for c in calls if c.startswith("dynamodb:")]
        else:
            continue
        kind = "AWS calls" if limit == 4 else "DynamoDB calls"
        out.append(
            Row(
                f"{kind}: {operation}",
                f"{len(counted)} ({status})",
                f"≤ {limit}",
                status < 300 and len(counted) <= limit,
            )
        )

    for export in results.export:
        out.append(
            Row(
                f"Activity CSV export of {export.rows:,} entries: time / peak Python memory",
                f"{export.seconds:.2f} s / {export.peak_bytes / 2**20:.1f} MiB (tracemalloc) for a "
                f"{export.csv_bytes / 1e6:.1f} MB CSV; API Gateway answers at most 6 MB, so on AWS "
                f"today an export is bounded by that, not memory",
                "fits a 1,024 MB function",
                export.peak_bytes < 1024 * 2**20,
            )
        )

    latency = results.latency
    total = len(latency.seconds) + len(latency.failures)
    out.append(
        Row(
            f"POST → activated, p50 / p95 (N = {total} sequential, polled every 15 ms)",
            f"{_ms(statistics.median(latency.seconds))} / {_ms(percentile(latency.seconds, 95))}"
            f" ({len(latency.seconds)}/{total} activated)"
            if latency.seconds
            else f"0/{total} activated",
            f"{total}/{total} activated",
            not latency.failures,
        )
    )

    listing = results.listing
    out.append(
        Row(
            f"`GET /projects/{{id}}/grants` p50 / p99 ({listing.grants:,} grants, page of "
            f"{listing.page_items}, {len(listing.list_seconds)} requests)",
            f"{_ms(statistics.median(listing.list_seconds))} / "
            f"{_ms(percentile(listing.list_seconds, 99))} (moto's DynamoDB: "
            f"{_ms(listing.dynamodb_seconds)} of each on average)",
            "context: `/health` below",
            None,
        )
    )
    out.append(
        Row(
            f"`GET /health` p50 / p99 (same run, interleaved, {len(listing.health_seconds)})",
            f"{_ms(statistics.median(listing.health_seconds))} / "
            f"{_ms(percentile(listing.health_seconds, 99))}",
            "—",
            None,
        )
    )

    bulk = results.bulk
    others = ", ".join(f"{n} {s}" for s, n in sorted(bulk.statuses.items()) if s != "activated")
    out.append(
        Row(
            f"Bulk: {bulk.grants} concurrent POSTs, JSM limited to {bulk.rate_limit:g} req/s",
            f"{bulk.activated}/{bulk.grants} activated in {bulk.seconds:.1f} s"
            + (f" ({others})" if others else "")
            + (f", {bulk.post_failures} POSTs refused" if bulk.post_failures else "")
            + (
                f"; moto answered {bulk.moto_errors} AWS request(s) with a 500 (retried)"
                if bulk.moto_errors
                else ""
            ),
            f"{bulk.grants}/{bulk.grants} activated",
            bulk.activated == bulk.grants and bulk.post_failures == 0,
        )
    )
    seconds = bulk.seconds or 1.0
    out.append(
        Row(
            "Bulk: grants activated per second",
            f"{bulk.activated / seconds:.2f} /s",
            "—",
            None,
        )
    )
    out.append(
        Row(
            "Bulk: Jira calls per second (admitted) vs the limit; 429s seen",
            f"{bulk.jira_admitted / seconds:.1f} /s average, {bulk.peak_admitted_per_second} "
            f"in the busiest 1 s, of {bulk.rate_limit:g} /s; {bulk.jira_throttled} × 429",
            f"≤ {bulk.rate_limit:g} /s",
            bulk.peak_admitted_per_second <= bulk.rate_limit,
        )
    )

    out += paced_rows(results.paced)
    out += import_rows(results.imports, results.import_runs)
    total_cost = sum(line.per_thousand for line in results.costs)
    out.append(
        Row(
            "Estimated AWS cost per 1,000 lifecycles (activation + removal)",
            f"${total_cost:.4f}",
            "—",
            None,
        )
    )
    return out


CALLS_PER_GRANT = 4  # a new JSM account: search, create, add to desk, add to organization


def paced_rows(paced: Bulk | None) -> list[Row]:
    """SPEC §3 pacing: the service paced at the emulator's limit (issue 15)."""
    if paced is None:
        return []
    calls = paced.jira_admitted + paced.jira_throttled
    share = paced.jira_throttled / calls if calls else 0.0
    ideal = paced.grants * CALLS_PER_GRANT / paced.rate_limit
    ratio = ideal / paced.seconds if paced.seconds else 0.0
    others = ", ".join(f"{n} {s}" for s, n in sorted(paced.statuses.items()) if s != "activated")
    return [
        Row(
            f"Paced bulk: {paced.grants} grants as batches of 100, JSM and the service at "
            f"{paced.rate_limit:g} req/s (HELPDESK_JIRA_RATE_PER_SECOND), real clock",
            f"{paced.activated}/{paced.grants} activated in {paced.seconds:.1f} s"
            + (f" ({others})" if others else "")
            + f"; {ratio:.2f} × ideal ({ideal:.1f} s); {paced.jira_throttled} × 429 of "
            f"{calls} calls = {share:.1%}",
            "all activated, ≥ 0.9 × ideal, ≤ 2% 429",
            paced.activated == paced.grants and ratio >= 0.9 and share <= 0.02,
        )
    ]


def import_rows(imports: ImportTimes, runs: int) -> list[Row]:
    """One row per entry point: its cold imports against `import boto3` alone."""
    from infra.measure_import import BOTO3, ENTRY_POINTS  # noqa: PLC0415

    boto3, bare = imports.compiled[BOTO3], imports.uncompiled[BOTO3]
    rows = []
    for name, entry in ENTRY_POINTS.items():
        metric = f"Cold imports: {name} vs `import boto3` (median of {runs} Lambda-like runs)"
        if entry is None:
            rows.append(Row(metric, "— (no such entry point in app.py yet)", "≤ 2×", None))
            continue
        seconds, uncompiled = imports.compiled[name], imports.uncompiled[name]
        rows.append(
            Row(
                metric,
                f"{seconds:.2f} s vs {boto3:.2f} s = {seconds / boto3:.2f}× "
                f"(as the zip ships, with its .pyc; without them: {uncompiled:.2f} s vs "
                f"{bare:.2f} s = {uncompiled / bare:.2f}×)",
                "≤ 2×",
                seconds / boto3 <= 2,
            )
        )
    return rows


def cost_table(results: Results) -> str:
    lines = [
        [line.item, line.per_lifecycle, line.unit_price, f"${line.per_thousand:.4f}"]
        for line in results.costs
    ]
    total = sum(line.per_thousand for line in results.costs)
    lines.append(["**total**", "", "", f"**${total:.4f}**"])
    return table(["item", "per lifecycle (measured)", "unit price", "per 1,000 lifecycles"], lines)


def details(results: Results) -> str:
    """The figures behind the table: Jira calls and task times of each measured run."""
    rows_ = []
    for phase in results.phases.values():
        calls = ", ".join(
            f"{c['method']} {c['path'].removeprefix('/rest')} → {c['status']}"
            for c in phase.jira_calls
        )
        tasks = ", ".join(f"{t.name} {_ms(t.seconds)}" for t in phase.tasks)
        dynamodb = [r for r in phase.aws if r.service == "dynamodb"]
        actions: dict[str, int] = {}
        for request in dynamodb:
            actions[request.action] = actions.get(request.action, 0) + 1
        rows_.append(
            [
                phase.name,
                calls or "none",
                tasks,
                ", ".join(f"{n} {a}" for a, n in sorted(actions.items())),
                _ms(phase.api_seconds),
            ]
        )
    return table(
        ["run", "Jira calls", "task Lambdas (local time)", "DynamoDB requests", "API call"], rows_
    )


def report(results: Results) -> str:
    """What `make bench` prints: the results table, the cost breakdown and the details."""
    counts = results.counts
    return "\n".join(
        [
            "## Results",
            "",
            table(["metric", "measured", "target", "ok?"], [r.cells() for r in rows(results)]),
            "",
            "## Estimated AWS cost per 1,000 grant lifecycles",
            "",
            f"One lifecycle = activation of a new JSM account (welcome email) + removal from a "
            f"desk no other grant uses, as measured above: {counts.transitions} state "
            f"transitions, {len(counts.task_runs)} task invocations, {counts.emails} email(s), "
            f"{counts.events} event(s). {cost.PRICE_REGION} list prices as of "
            f"{cost.PRICES_AS_OF} (stated in `bench/cost.py`).",
            "",
            cost_table(results),
            "",
            "## AWS calls per API operation",
            "",
            "Counted by a botocore `before-call` hook on the requesting thread "
            "(`bench/round_trips.py`).",
            "",
            table(
                ["operation", "status", "calls", "which"],
                [
                    [op, str(status), str(len(calls)), ", ".join(calls)]
                    for op, status, calls in results.round_trips
                ],
            ),
            "",
            "## Details of the measured lifecycles",
            "",
            details(results),
        ]
    )


def _machine() -> str:
    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    cores = os.cpu_count()
    return (
        f"{cores} cores{f' ({model})' if model else ''}, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}"
    )


HOW_MEASURED = """\
## How measured

One run of `python -m bench` boots the whole local stack in its own process on free ports
(`LocalStack(api_port=0, …)`, so it never clashes with a running `make run`), on real clocks (no
fast clock): the Chalice API over HTTP, moto executing the real ASL of `statemachines/`, the task
Lambdas in-process, the JSM emulator and the mailbox.

- **Jira calls** are the JSM emulator's call log between the API call and the end of the
  execution; the activations are one grant whose contact has no JSM account and one whose contact
  already has one; the removal is the first grant's, on a desk no other grant of the contact uses.
- **State transitions** count the `*StateEntered` events of the execution's history
  (`GetExecutionHistory`): what Step Functions Standard bills.
- **POST → activated** is the wall time from sending `POST /projects/{id}/grants` to the first
  `GET` of the grant that answers `activated` (polled every 15 ms), for grants one after another.
  It is moto's Step Functions on this machine, not AWS: it shows the local pipeline's overhead.
- **Listing**: 1,000 activated grants are written straight into DynamoDB (PynamoDB batch write),
  then `GET /projects/{id}/grants` (default page) and `GET /health` are called alternately over
  HTTP, after a warm-up. Most of a listing is moto answering a Query over the 1,000 items
  (shown in the table); DynamoDB itself typically serves such a page in single-digit
  milliseconds (not measured here).
- **HTTP**: every request opens its own connection. On a kept-alive connection chalice's local
  server (Nagle on, headers and body sent apart) meets the client's delayed ACK and each answer
  takes ~40 ms more, an artefact of the local server that API Gateway does not have.
- **Bulk**: the emulator's `rate_limit_per_second` is set, the grants are POSTed from one thread
  each at once, and the project's grant list is polled until none is pending. The time runs from
  the first POST to the latest `updated_at`; admitted Jira calls are those not answered 429,
  and the busiest 1 s is the most admitted calls in any 1-second window of the call log.
  moto is not thread-safe everywhere (a transaction deep-copies the table while another thread
  writes it): its 500s are counted and botocore retries them.
- **Paced bulk** (SPEC §3): as Bulk, with `HELPDESK_JIRA_RATE_PER_SECOND` set to the emulator's
  limit, on the real clock. Ideal = grants × 4 Jira calls ÷ the limit; the ratio is ideal ÷ the
  measured time; the 429 share is of every Jira call in the run (the emulator's call log).
- **Imports**: `infra/measure_import.py`: fresh `python -I -S` interpreters that see only
  what a deployed function sees (the zip's modules: app, Chalice's router, the vendored
  requirements; then the runtime's boto3 and its dependencies; none of the dev tools), with
  `_HANDLER` set as Lambda sets it; each entry point imports `app` and what its handler imports
  on its first call. Subjects alternate, after one warm-up each. The zip's modules carry the
  CPython 3.11 `.pyc` `make synth` adds (compiled by the same function); in brackets, without
  them: every module of the zip compiled at every cold start, as before the zip shipped them.
- **Cost**: every AWS request moto answers is recorded (a wrapper around moto's
  `BaseResponse.call_action`), so DynamoDB reads and writes are counted, not estimated from the
  code; request units follow on-demand billing (see `bench/cost.py`: items < 1 KB, 1 WRU per
  write plus 1 per GSI, 2 per item in a transaction; reads by 4 KB of response, halved when
  eventually consistent). SES emails and EventBridge entries are counted the same way; task
  invocations by wrapping the app's task handlers. The Lambda duration is assumed (stated in the
  table) because the local one runs against an in-process JSM. The console's GETs are not counted.
"""


def document(results: Results, command: str) -> str:
    """`docs/performance.md`, rewritten by each run of the bench."""
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return "\n".join(
        [
            "# Performance",
            "",
            f"Written by `{command}` (do not edit by hand: the next run rewrites this file; "
            "`python -m bench --no-write` only prints).",
            "",
            f"- Date: {now}",
            f"- Machine: {_machine()}",
            f"- Whole run: {results.wall_seconds:.0f} s; load average when it started: "
            f"{results.load_at_start:.1f} (other processes on the same cores skew the timings)",
            "",
            report(results),
            "",
            HOW_MEASURED,
        ]
    )


def write_document(text: str, path: Path = DOC_PATH) -> Path:
    path.write_text(text if text.endswith("\n") else text + "\n")
    return path
