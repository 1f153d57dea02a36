"""Service-wide pacing of Jira calls (SPEC §3) through the real ASL in moto: 40 grants against a
JSM emulator limited to 6 calls/s, with the service's rate set to the same 6/s, asked for as one
batch and as 40 concurrent single POSTs.

Real clock: the emulator counts calls per real second, so the Wait states sleep for real here
(~30 s a run on an idle machine). One run per arrival shape, three tests each: what must always
hold (every grant activated), a bound on the 429 share and the throughput that a loaded machine
still meets, and the SPEC's targets, which this one-process emulation does not reliably meet
yet (the whole stack shares one Python process on 2 cores, and a call the CPU starts late
bunches with the calls after it)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from local.stack import LocalStack
from tests.helpers import ACME_PM, Api, Seeder, jira_paced, wait_for

# Alone on the CPU (`make test` runs these after the rest): the stack's own CPU is what varies.
pytestmark = [pytest.mark.slow, pytest.mark.timing]

ROOT = Path(__file__).resolve().parent.parent.parent
LIMIT = 6
GRANTS = 40
CALLS_PER_GRANT = 4  # search, create, add to desk, add to organization
IDEAL_SECONDS = GRANTS * CALLS_PER_GRANT / LIMIT


@dataclass(frozen=True)
class Run:
    grants: list[dict[str, Any]]
    calls: list[dict[str, Any]]
    seconds: float

    @property
    def throttled(self) -> int:
        return sum(c["status"] == 429 for c in self.calls)

    @property
    def ratio(self) -> float:
        return IDEAL_SECONDS / self.seconds

    def report(self) -> str:
        return (
            f"{self.seconds:.1f} s (ideal {IDEAL_SECONDS:.1f} s, ratio {self.ratio:.2f}), "
            f"{self.throttled}/{len(self.calls)} calls answered 429"
        )


def _at(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def _ask_as_one_batch(api: Api, ids: list[str]) -> None:
    items = [{"contact_id": contact_id} for contact_id in ids]
    answer = api.post("/projects/demo/grant-batches", {"add": items}, ACME_PM)
    assert answer.status == 207
    assert [r["status"] for r in answer.body["results"]] == [202] * len(ids)


def _ask_concurrently(api: Api, ids: list[str]) -> None:
    def ask(contact_id: str) -> int:
        return api.post("/projects/demo/grants", {"contact_id": contact_id}, ACME_PM).status

    with ThreadPoolExecutor(len(ids)) as pool:
        assert list(pool.map(ask, ids)) == [202] * len(ids)


@pytest.fixture(scope="module", params=["one batch", "concurrent POSTs"])
def paced_run(request: pytest.FixtureRequest, running_stack: LocalStack) -> Iterator[Run]:
    # Given 40 contacts, JSM limited to 6 calls/s and the service paced at 6/s
    stack = running_stack
    assert stack.jira is not None
    assert stack.fast_clock is not None
    stack.reset()
    scale, stack.fast_clock.scale = stack.fast_clock.scale, 1.0
    ask = _ask_as_one_batch if request.param == "one batch" else _ask_concurrently
    try:
        with Api.for_app(stack.app, ROOT) as api, jira_paced(LIMIT):
            seed = Seeder(api)
            seed.project()
            ids = [f"dev-{n:02d}" for n in range(GRANTS)]
            for contact_id in ids:
                seed.contact(contact_id, f"{contact_id}@acme.example")
            stack.jira.set_faults([], rate_limit_per_second=LIMIT)
            # When 40 grants are asked for at once
            started = time.time()
            ask(api, ids)

            def settled() -> list[dict[str, Any]] | None:
                items = api.get("/projects/demo/grants?limit=100", ACME_PM).body["items"]
                pending = [g for g in items if g["status"] == "activation_pending"]
                return None if pending or len(items) < GRANTS else list(items)

            # (asked once a second: listing 40 grants takes CPU from the stack it watches)
            grants = wait_for(settled, timeout=180, what="every grant to settle", every=1.0)
        calls = [c for c in stack.jira.calls() if _at(str(c["at"])) >= started - 1]
        took = max(_at(str(g["updated_at"])) for g in grants) - started
        run = Run(grants, calls, took)
        print(f"\npaced, {request.param}: {run.report()}")
        yield run
    finally:
        stack.jira.set_faults([], rate_limit_per_second=None)
        stack.fast_clock.scale = scale
        stack.reset()


def test_paced_grants_all_activate_none_lost_none_failed(paced_run: Run) -> None:
    # Then every grant is activated: none lost, none failed because of the limit
    statuses = [str(g["status"]) for g in paced_run.grants]
    assert statuses == ["activated"] * GRANTS


def test_paced_grants_stay_near_the_limit_even_on_a_loaded_machine(paced_run: Run) -> None:
    # Jira answered 429 rarely, and the limit was used (bounds a loaded CI machine still meets)
    assert paced_run.throttled <= 0.05 * len(paced_run.calls), paced_run.report()
    assert paced_run.ratio >= 0.5, paced_run.report()


@pytest.mark.xfail(
    strict=False,
    # Measured alone on an idle 2-core machine (2026-12-02): one batch 0.85-0.93 x ideal with
    # 1.2-3.5% of calls answered 429; 40 concurrent POSTs 0.64-0.82 x ideal, 1.2-3.8% 429
    # (accepting the 40 POSTs takes the one-process stack's CPU for its first ~2.5 s).
    reason="SPEC §3 targets not reliably met on the one-process local stack (issue 15 open)",
)
def test_paced_grants_meet_the_throughput_and_429_targets(paced_run: Run) -> None:
    # Jira answered 429 to at most 2% of the calls
    assert paced_run.throttled <= 0.02 * len(paced_run.calls), paced_run.report()
    # and the grants came through at ≥ 90% of the ideal throughput (limit ÷ calls per grant)
    assert paced_run.ratio >= 0.9, paced_run.report()
