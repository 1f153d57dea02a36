"""`make bench` / `python -m bench`: run every scenario once, print the report, write the doc."""

from __future__ import annotations

import argparse
import logging
import os
import time
import warnings

from bench import cost
from bench.export import export_memory
from bench.probes import AwsRequestLog, TaskTimer
from bench.report import Results, document, report, write_document
from bench.round_trips import CallCounter
from bench.scenarios import Bench, Phase, import_times, progress

COMMAND = "make bench"


def lifecycle_counts(phases: list[Phase], indexes: dict[str, int]) -> cost.LifecycleCounts:
    """What the given runs (together: one lifecycle) used, from the probes' records."""
    aws = [request for phase in phases for request in phase.aws]
    return cost.LifecycleCounts(
        transitions=sum(phase.transitions for phase in phases),
        task_runs=[run for phase in phases for run in phase.tasks],
        capacity=cost.dynamodb_capacity(aws, indexes),
        emails=sum(r.service == "ses" and r.action.startswith("Send") for r in aws),
        events=sum(r.entries for r in aws if r.service == "events" and r.action == "PutEvents"),
    )


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-write", action="store_true", help="print only, keep the doc")
    parser.add_argument("--latency-grants", type=int, default=30)
    parser.add_argument("--list-grants", type=int, default=1000)
    parser.add_argument("--list-requests", type=int, default=300)
    parser.add_argument("--bulk-grants", type=int, default=40)
    parser.add_argument("--rate-limit", type=float, default=20)
    parser.add_argument("--paced-grants", type=int, default=200, help="0 skips the paced bulk")
    parser.add_argument("--paced-rate", type=float, default=6)
    parser.add_argument("--import-runs", type=int, default=7)
    parser.add_argument("--export-rows", type=int, default=100_000)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # The documented local JWT secret is short on purpose; PyJWT would say so on every token.
    warnings.filterwarnings("ignore", message=".*HMAC key.*")
    # Throttled Jira calls are logged as warnings by the tasks: expected here, and noisy.
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "ERROR")
    started, load_at_start = time.perf_counter(), os.getloadavg()[0]

    # First, while nothing else runs: fresh interpreters compete for the same 2 cores.
    progress(f"cold imports ({args.import_runs} runs each)…")
    imports = import_times(args.import_runs)
    progress(f"activity CSV export of 10,000 and {args.export_rows:,} entries…")
    export = [export_memory(rows) for rows in sorted({10_000, args.export_rows})]

    from infra.resources import tables  # noqa: PLC0415
    from local.aws import lambda_handler_names  # noqa: PLC0415
    from local.stack import LocalStack  # noqa: PLC0415

    log, timer, counter = AwsRequestLog(), TaskTimer(), CallCounter()
    undo_counter = counter.install()  # before any botocore client exists
    progress("starting the local stack on free ports…")
    with LocalStack(api_port=0, aws_port=0, jira_port=0, mail_port=0) as stack:
        assert stack.provisioned is not None
        indexes = {
            stack.provisioned.tables[key]: len(props.get("GlobalSecondaryIndexes", []))
            for key, props in tables().items()
        }
        # moto's failures are counted by the probe; their tracebacks would bury the report, as
        # would urllib3's notes that 40 concurrent tasks outgrow a client's 10 connections.
        logging.getLogger("werkzeug").setLevel(logging.CRITICAL)
        logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)
        undo = [log.install(), timer.install(stack.app, lambda_handler_names(stack.app))]
        try:
            bench = Bench(stack, log, timer)
            progress("lifecycles: Jira calls, state transitions, AWS requests…")
            phases = bench.lifecycles()
            progress("AWS calls per API operation…")
            round_trips = bench.round_trips(counter)
            progress(f"POST → activated latency ({args.latency_grants} grants)…")
            latency = bench.activation_latency(args.latency_grants)
            progress(f"bulk: {args.bulk_grants} grants at {args.rate_limit:g} Jira req/s…")
            bulk = bench.bulk(args.bulk_grants, args.rate_limit)
            paced = None
            if args.paced_grants:
                progress(f"paced bulk: {args.paced_grants} grants at {args.paced_rate:g} req/s…")
                paced = bench.paced_bulk(args.paced_grants, args.paced_rate)
            # Last: moto copies a whole table for each transaction, so 1,000 more grants
            # would slow every later workflow step.
            progress(f"listing {args.list_grants} grants vs /health…")
            listing = bench.list_latency(args.list_grants, args.list_requests)
        finally:
            for step in reversed(undo):
                step()
            undo_counter()
        progress("stopping the local stack…")

    counts = lifecycle_counts([phases["activation_new"], phases["removal"]], indexes)
    results = Results(
        phases=phases,
        export=export,
        round_trips=round_trips,
        latency=latency,
        listing=listing,
        bulk=bulk,
        paced=paced,
        imports=imports,
        import_runs=args.import_runs,
        counts=counts,
        costs=cost.cost_lines(counts),
        wall_seconds=time.perf_counter() - started,
        load_at_start=load_at_start,
    )
    print(report(results))
    if not args.no_write:
        path = write_document(document(results, COMMAND))
        progress(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
