"""The service-wide Jira limiter's item in DynamoDB (moto): concurrent reservations each get their
own slots in one update, concurrent 429s cut the rate once, and a limiter DynamoDB cannot write
lets the call go unpaced instead of failing it."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise

import pytest
from botocore.exceptions import ClientError
from pynamodb.exceptions import UpdateError

from chalicelib.jira import pacing
from chalicelib.jira.bucket import DECREASE, HEADROOM
from chalicelib.jira.pacing import KEY, JiraPacer
from chalicelib.observability import logger
from chalicelib.store.tables import PaceItem
from local.stack import LocalStack

RATE = 6.0
PACE = RATE * HEADROOM
NOW = 1_000.0


def test_concurrent_reservations_take_distinct_evenly_spaced_slots(stack: LocalStack) -> None:
    # Given 30 containers reserving at the same moment, some one call, some two
    def reserve(n: int) -> list[float]:
        return JiraPacer(RATE, clock=lambda: NOW).reserve(1 + n % 2)

    with ThreadPoolExecutor(30) as pool:
        taken = [slot for slots in pool.map(reserve, range(30)) for slot in slots]
    # Then every call has its own slot, the first now, all 1 / rate apart: no race was lost
    taken.sort()
    assert len(taken) == 45
    assert taken[0] == pytest.approx(NOW)
    assert [b - a for a, b in pairwise(taken)] == pytest.approx([1 / PACE] * 44)


def test_an_idle_limiter_gives_the_first_slot_now(stack: LocalStack) -> None:
    JiraPacer(RATE, clock=lambda: NOW).reserve(3)
    # Ten seconds later the bucket is idle again: no burst was banked, the next call goes now
    later = JiraPacer(RATE, clock=lambda: NOW + 10).reserve(2)
    assert later == pytest.approx([NOW + 10, NOW + 10 + 1 / PACE])


def test_concurrent_429s_pause_everyone_and_cut_the_rate_once(stack: LocalStack) -> None:
    pacers = [JiraPacer(RATE, clock=lambda: NOW) for _ in range(8)]
    for pacer in pacers:
        pacer.reserve(1)  # each container has seen the bucket
    # When eight calls are answered 429 together (Retry-After 2, limit 6/s)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda p: p.throttled(2, RATE), pacers))
    item = PaceItem.get(*KEY, consistent_read=True)
    # Then the rate is cut once, by a tenth (they were already under Jira's 6/s)
    assert float(item.cut_rate) == pytest.approx(PACE * DECREASE)
    assert float(item.limit) == RATE
    # ... and the next slots start after Retry-After, spaced at the cut rate
    slots = pacers[0].reserve(2)
    assert slots[0] == pytest.approx(NOW + 2)
    assert slots[1] - slots[0] == pytest.approx(1 / (PACE * DECREASE))


@pytest.mark.parametrize("code", ["ThrottlingException", "ProvisionedThroughputExceededException"])
def test_a_limiter_dynamodb_refuses_lets_the_call_go_unpaced(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch, code: str
) -> None:
    # Given DynamoDB refusing every write of the limiter's item (throttled, beyond retries)
    def refuse(self: PaceItem, *args: object, **kwargs: object) -> None:
        error = ClientError({"Error": {"Code": code, "Message": "slow down"}}, "UpdateItem")
        raise UpdateError("Failed to update item", cause=error)

    monkeypatch.setattr(PaceItem, "update", refuse)
    warned: list[dict[str, object]] = []
    counted: list[str] = []
    monkeypatch.setattr(logger, "warning", lambda msg, extra: warned.append(extra))
    monkeypatch.setattr(pacing, "count", counted.append)
    pacer = JiraPacer(RATE, clock=lambda: NOW)
    # Then a reservation answers "go now" and a 429 report does not fail the step
    assert pacer.reserve(2) == []
    pacer.throttled(1, RATE)
    # ... and the operators see why the calls were not paced
    assert warned == [
        {"limiter": {"operation": "reserve", "error": code}},
        {"limiter": {"operation": "throttled", "error": code}},
    ]
    assert counted == ["JiraLimiterUnavailable"] * 2
