"""AWS cost of grant lifecycles from measured counts × list prices (stated here, with their date).

Prices are on-demand list prices of us-east-1 (N. Virginia) as written down on 2026-11-23 (typed
in, not fetched: re-check AWS's pricing pages before quoting them); eu-west-1 (Ireland) charges
the same for every line below except DynamoDB (about 13% more). No free tier is applied.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from bench.probes import AwsRequest, TaskRun

PRICE_REGION = "us-east-1"
PRICES_AS_OF = "2026-11-23"
SFN_STANDARD_PER_TRANSITION = 0.025 / 1_000
LAMBDA_PER_REQUEST = 0.20 / 1_000_000
LAMBDA_PER_GB_SECOND = 0.0000133334  # arm64 (x86_64: 0.0000166667), .chalice lambda_architecture
# On-demand throughput since AWS's 50% cut of 2024-11-01 (it was $1.25 / $0.25 per million).
DYNAMODB_PER_WRITE_UNIT = 0.625 / 1_000_000
DYNAMODB_PER_READ_UNIT = 0.125 / 1_000_000
API_GATEWAY_REST_PER_REQUEST = 3.50 / 1_000_000  # first 333 million a month
SES_PER_EMAIL = 0.10 / 1_000
EVENTBRIDGE_PER_CUSTOM_EVENT = 1.00 / 1_000_000

LAMBDA_MEMORY_GB = 512 / 1024  # `lambda_memory_size` of the dev and prod stages (.chalice)
# Billed duration assumed in AWS: the local figures run against an in-process JSM and moto, so
# they say little about a Jira Cloud round trip (typically 150-300 ms from a Lambda).
ASSUMED_TASK_MS = 300  # per workflow task invocation (one Jira call or a DynamoDB commit)
ASSUMED_API_MS = 100  # per API request (a few DynamoDB calls and StartExecution)
# The console's POST and DELETE; its reads (polling the grant) are left out: they depend on the UI.
API_REQUESTS_PER_LIFECYCLE = 2

WRITE_ACTIONS = {"PutItem", "UpdateItem", "DeleteItem"}
READ_ACTIONS = {"GetItem", "Query", "Scan"}


@dataclass(frozen=True)
class Capacity:
    """DynamoDB request units one set of requests consumed (on-demand billing rules)."""

    read_units: float
    write_units: float
    reads: int
    writes: int


def dynamodb_capacity(requests: Iterable[AwsRequest], indexes: dict[str, int]) -> Capacity:
    """Request units of the DynamoDB requests, with `indexes` = {table: number of GSIs}.

    Writes: items are < 1 KB, so 1 WRU per item (2 in a transaction) plus 1 per GSI of the
    table (every index here projects ALL attributes, so any change reaches it); a failed
    condition still costs its units. Reads: 1 RRU per started 4 KB of the response (0.5 when
    eventually consistent), 2 per item in TransactGetItems.
    """
    read_units = write_units = 0.0
    reads = writes = 0
    for request in requests:
        if request.service != "dynamodb":
            continue
        params = request.params
        if request.action in WRITE_ACTIONS:
            writes += 1
            write_units += 1 + indexes.get(str(params.get("TableName")), 0)
        elif request.action == "TransactWriteItems":
            writes += 1
            for item in params.get("TransactItems", []):
                [(kind, body)] = item.items()
                gsis = 0 if kind == "ConditionCheck" else indexes.get(str(body["TableName"]), 0)
                write_units += 2 + gsis
        elif request.action == "BatchWriteItem":
            writes += 1
            for table, items in params.get("RequestItems", {}).items():
                write_units += len(items) * (1 + indexes.get(str(table), 0))
        elif request.action in READ_ACTIONS:
            reads += 1
            units = max(1, math.ceil(request.response_bytes / 4096))
            read_units += units if params.get("ConsistentRead") else units / 2
        elif request.action == "TransactGetItems":
            reads += 1
            read_units += 2 * len(params.get("TransactItems", []))
        elif request.action == "BatchGetItem":
            reads += 1
            read_units += sum(
                len(t.get("Keys", [])) for t in params.get("RequestItems", {}).values()
            )
    return Capacity(read_units, write_units, reads, writes)


@dataclass(frozen=True)
class LifecycleCounts:
    """What one grant lifecycle (activation + removal) used, as measured."""

    transitions: int
    task_runs: list[TaskRun]
    capacity: Capacity
    emails: int
    events: int


@dataclass(frozen=True)
class CostLine:
    item: str
    per_lifecycle: str
    unit_price: str
    per_thousand: float


def cost_lines(counts: LifecycleCounts) -> list[CostLine]:
    """The cost of 1,000 lifecycles, line by line."""
    thousand = 1_000
    tasks = len(counts.task_runs)
    lambda_requests = tasks + API_REQUESTS_PER_LIFECYCLE
    gb_seconds = (
        (tasks * ASSUMED_TASK_MS + API_REQUESTS_PER_LIFECYCLE * ASSUMED_API_MS)
        / 1000
        * LAMBDA_MEMORY_GB
    )
    capacity = counts.capacity
    return [
        CostLine(
            "Step Functions Standard state transitions",
            f"{counts.transitions}",
            "$0.025 / 1,000",
            counts.transitions * thousand * SFN_STANDARD_PER_TRANSITION,
        ),
        CostLine(
            "Lambda requests",
            f"{lambda_requests} ({tasks} tasks + {API_REQUESTS_PER_LIFECYCLE} API)",
            "$0.20 / 1M",
            lambda_requests * thousand * LAMBDA_PER_REQUEST,
        ),
        CostLine(
            "Lambda duration",
            f"{gb_seconds:.3f} GB-s ({ASSUMED_TASK_MS} ms/task, {ASSUMED_API_MS} ms/API call, "
            f"{LAMBDA_MEMORY_GB * 1024:.0f} MB)",
            f"${LAMBDA_PER_GB_SECOND:.10f} / GB-s (arm64)",
            gb_seconds * thousand * LAMBDA_PER_GB_SECOND,
        ),
        CostLine(
            "DynamoDB on-demand writes",
            f"{capacity.write_units:g} WRU ({capacity.writes} write requests)",
            "$0.625 / 1M WRU",
            capacity.write_units * thousand * DYNAMODB_PER_WRITE_UNIT,
        ),
        CostLine(
            "DynamoDB on-demand reads",
            f"{capacity.read_units:g} RRU ({capacity.reads} read requests)",
            "$0.125 / 1M RRU",
            capacity.read_units * thousand * DYNAMODB_PER_READ_UNIT,
        ),
        CostLine(
            "API Gateway REST requests",
            f"{API_REQUESTS_PER_LIFECYCLE} (POST + DELETE)",
            "$3.50 / 1M",
            API_REQUESTS_PER_LIFECYCLE * thousand * API_GATEWAY_REST_PER_REQUEST,
        ),
        CostLine(
            "SES emails",
            f"{counts.emails}",
            "$0.10 / 1,000",
            counts.emails * thousand * SES_PER_EMAIL,
        ),
        CostLine(
            "EventBridge custom events",
            f"{counts.events}",
            "$1.00 / 1M",
            counts.events * thousand * EVENTBRIDGE_PER_CUSTOM_EVENT,
        ),
    ]
