"""The service-wide Jira limiter's maths (refill, reservation, adapting to 429s) and its use by
the workflow tasks: held slots, whole-second waits, the sub-second rest before each call."""

from __future__ import annotations

from itertools import pairwise

import pytest

from chalicelib.jira import pacing
from chalicelib.jira.bucket import (
    CUT_COOLDOWN_SECONDS,
    DECREASE,
    HEADROOM,
    MIN_RATE,
    Bucket,
    reserve,
    throttled,
)
from chalicelib.workflows.tasks import held_slots

RATE = 6.0
PACE = RATE * HEADROOM


def test_an_idle_bucket_gives_the_first_slot_now() -> None:
    bucket, slots = reserve(Bucket(ceiling=RATE), now=100.0, calls=1)
    assert slots == [100.0]
    assert bucket.tat == pytest.approx(100.0 + 1 / PACE)


def test_reservations_queue_evenly_at_the_rate() -> None:
    bucket = Bucket(ceiling=RATE)
    taken: list[float] = []
    for _ in range(12):
        bucket, slots = reserve(bucket, now=100.0, calls=1)
        taken += slots
    gaps = [b - a for a, b in pairwise(taken)]
    assert gaps == pytest.approx([1 / PACE] * 11)
    # 12 calls reserved at once: the last waits ~2 s, under the limit in every second
    assert taken[-1] - 100.0 == pytest.approx(11 / PACE)


def test_a_step_with_two_calls_holds_two_consecutive_slots() -> None:
    _, slots = reserve(Bucket(ceiling=RATE, tat=105.0), now=100.0, calls=2)
    assert slots == pytest.approx([105.0, 105.0 + 1 / PACE])


def test_time_refills_the_bucket_but_never_banks_a_burst() -> None:
    bucket, _ = reserve(Bucket(ceiling=RATE), now=100.0, calls=1)
    # Ten idle seconds later the next call goes at once, and the one after it is paced again
    bucket, first = reserve(bucket, now=110.0, calls=1)
    _, second = reserve(bucket, now=110.0, calls=1)
    assert first == [110.0]
    assert second == pytest.approx([110.0 + 1 / PACE])


def test_a_429_cuts_the_rate_and_keeps_new_slots_after_retry_after() -> None:
    bucket = throttled(Bucket(ceiling=RATE, tat=100.5), now=100.0, retry_after=3)
    assert bucket.rate(100.0) == pytest.approx(PACE * DECREASE)
    _, slots = reserve(bucket, now=100.0, calls=1)
    assert slots == [103.0]


def test_a_429_without_retry_after_pauses_a_second() -> None:
    bucket = throttled(Bucket(ceiling=RATE), now=100.0, retry_after=None)
    assert bucket.tat == 101.0


def test_concurrent_429s_cut_the_rate_once() -> None:
    bucket = throttled(Bucket(ceiling=RATE), now=100.0, retry_after=1)
    again = throttled(bucket, now=100.0 + CUT_COOLDOWN_SECONDS / 2, retry_after=1)
    assert again.rate(100.5) == pytest.approx(bucket.rate(100.5))
    later = throttled(bucket, now=100.0 + CUT_COOLDOWN_SECONDS, retry_after=1)
    assert later.rate(101.0) < bucket.rate(101.0)


def test_the_rate_limit_header_caps_the_cut_rate() -> None:
    bucket = throttled(Bucket(ceiling=RATE), now=100.0, retry_after=1, limit_hint=2)
    assert bucket.rate(100.0) == pytest.approx(2 * HEADROOM)


def test_the_rate_never_drops_to_nothing() -> None:
    bucket = Bucket(ceiling=RATE)
    for n in range(40):
        bucket = throttled(bucket, now=100.0 + 2 * n, retry_after=1)
    assert bucket.rate(180.0) >= MIN_RATE


def test_the_rate_recovers_slowly_and_additively_up_to_the_setting() -> None:
    bucket = throttled(Bucket(ceiling=RATE), now=100.0, retry_after=1)
    cut = bucket.rate(100.0)
    one, two = bucket.rate(101.0) - cut, bucket.rate(102.0) - cut
    assert 0 < one < 0.2
    assert two == pytest.approx(2 * one)
    assert bucket.rate(1000.0) == pytest.approx(PACE)


def test_a_429_under_the_named_limit_cuts_gently() -> None:
    bucket = throttled(Bucket(ceiling=RATE), now=100.0, retry_after=1, limit_hint=RATE)
    assert bucket.rate(100.0) == pytest.approx(PACE * DECREASE)


def test_a_429_over_the_named_limit_goes_just_under_it_and_stays_under_it() -> None:
    # Set to 20/s, Jira says 6/s: the rate drops to 95% of 6 at once, and never recovers past it
    bucket = throttled(Bucket(ceiling=20), now=100.0, retry_after=1, limit_hint=RATE)
    assert bucket.rate(100.0) == pytest.approx(PACE)
    assert bucket.rate(1000.0) == pytest.approx(PACE)
    # ... and a later 429 that names no limit still cuts from there
    again = throttled(bucket, now=200.0, retry_after=1)
    assert again.rate(200.0) == pytest.approx(PACE * DECREASE)


# --- the tasks' side -------------------------------------------------------------------------


def test_a_resumed_step_uses_the_slots_it_holds() -> None:
    event = {"jira": {"result": {"pace": {"step": "AddToOrganization", "slots": [104.2]}}}}
    assert held_slots(event, "add_to_organization", now=104.0) == [104.2]
    # ... not another step's, and not slots long past (a retry after a 429 reserves anew)
    assert held_slots(event, "add_to_service_desk", now=104.0) is None
    assert held_slots(event, "add_to_organization", now=106.0) is None


def test_the_customer_step_finds_its_slots_under_customer() -> None:
    event = {"customer": {"result": {"pace": {"step": "EnsureCustomer", "slots": [5.0, 5.2]}}}}
    assert held_slots(event, "ensure_customer", now=4.5) == [5.0, 5.2]


def test_calls_start_at_their_slots_for_at_most_a_second_and_a_half() -> None:
    slept: list[float] = []
    with pacing.scheduled([10.3, 13.0, 9.0]):
        for _ in range(4):  # no limiter: the fourth, beyond the slots, goes at once
            pacing.await_slot(clock=lambda: 10.0, sleep=slept.append)
    pacing.await_slot(clock=lambda: 0.0, sleep=slept.append)  # outside a paced step: at once
    assert slept == pytest.approx([0.3, pacing.MAX_ALIGN_SECONDS])


def never_sleeps(seconds: float) -> None:
    pytest.fail(f"the task slept {seconds} s instead of waiting in Step Functions")


class ScriptedPacer(pacing.JiraPacer):
    """A limiter whose reservations start at the given times, spaced 0.2 s (no DynamoDB)."""

    def __init__(self, *starts: float) -> None:
        super().__init__(ceiling=RATE, clock=lambda: 0.0)
        self.starts = list(starts)
        self.reserved: list[int] = []

    def reserve(self, calls: int) -> list[float]:
        self.reserved.append(calls)
        start = self.starts.pop(0)
        return [start + 0.2 * i for i in range(calls)]


def test_a_step_reserves_its_slots_at_its_first_call_not_before() -> None:
    pacer, slept = ScriptedPacer(10.5), list[float]()
    with pacing.scheduled([], pacer, calls=2):
        assert pacer.reserved == []  # the step's own work before its first call takes no slot
        pacing.await_slot(clock=lambda: 10.0, sleep=slept.append)
        pacing.await_slot(clock=lambda: 10.6, sleep=slept.append)
    assert pacer.reserved == [2]
    assert slept == pytest.approx([0.5, 0.1])


def test_slots_too_far_to_sleep_for_stop_the_step_before_its_call() -> None:
    pacer = ScriptedPacer(13.0)
    with pacing.scheduled([], pacer, calls=2), pytest.raises(pacing.CallDeferred) as stop:
        pacing.await_slot(clock=lambda: 10.0, sleep=never_sleeps)
    assert stop.value.slots == pytest.approx([13.0, 13.2])


def test_a_late_call_takes_new_slots_instead_of_bunching() -> None:
    # Given a step holding slots 10.0 and 10.2, whose first call is ready only at 10.3
    pacer, slept = ScriptedPacer(10.8), list[float]()
    with pacing.scheduled([10.0, 10.2], pacer, calls=2):
        pacing.await_slot(clock=lambda: 10.3, sleep=slept.append)
    # Then it took two new slots and waited for the first, rather than going 0.3 s late
    assert pacer.reserved == [2]
    assert slept == pytest.approx([0.5])


def test_a_deferred_step_holds_slots_for_every_call_of_its_next_run() -> None:
    # Given a step whose first call went, and whose second is late with the queue 5 s long
    pacer = ScriptedPacer(10.0, 15.0, 15.4)
    with pacing.scheduled([], pacer, calls=2):
        pacing.await_slot(clock=lambda: 10.0, sleep=lambda _: None)
        with pytest.raises(pacing.CallDeferred) as stop:
            pacing.await_slot(clock=lambda: 10.5, sleep=never_sleeps)
    # Then it runs again from its start with a slot for each of its two calls
    assert pacer.reserved == [2, 1, 1]
    assert stop.value.slots == pytest.approx([15.0, 15.4])


def test_a_call_beyond_the_steps_slots_is_paced_too() -> None:
    pacer, slept = ScriptedPacer(10.0, 10.4), list[float]()
    with pacing.scheduled([], pacer, calls=1):
        pacing.await_slot(clock=lambda: 10.0, sleep=slept.append)
        pacing.await_slot(clock=lambda: 10.1, sleep=slept.append)  # a rare re-add
    assert pacer.reserved == [1, 1]
    assert slept == pytest.approx([0.3])
