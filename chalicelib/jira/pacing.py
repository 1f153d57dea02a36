"""One limiter for every Jira call the workflows make, shared by all executions (SPEC §3).

`JiraPacer` keeps the bucket (`bucket.py`) in one DynamoDB item and moves it with atomic
conditional UpdateItems, never a read-then-write: a reservation adds its calls' cost to `tat`
when the bucket is busy (`tat >= now`), or sets `tat` from now when it is idle, so a thousand
concurrent reservations each take their own slots in one round trip, and none loses a race
to retry. The rate a reservation spaces its slots at is the one this container last saw (every
update returns the item); a 429 writes the cut for everyone.

A step reserves the slots of its calls at its first call (`await_slot`), after its own work
(a cold start, a read), so its slots are still ahead when it starts them. Slots a second and a
half or more ahead are waited for in Step Functions: the step stops (`CallDeferred`), returns
them, and a `Wait` state sleeps the whole seconds before it runs again with the slots it holds;
the JSM client starts each call at its slot, sleeping the rest. If the limiter's item cannot be
written (DynamoDB throttles or fails), the call goes unpaced rather than not at all: Jira's own
429 and the workflow's retry still hold it back.
"""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from pynamodb.exceptions import GetError, UpdateError
from pynamodb.expressions.condition import Condition
from pynamodb.expressions.update import Action

from ..observability import count, logger
from ..store.tables import PaceItem
from .bucket import CUT_COOLDOWN_SECONDS, Bucket, cut, pause_until, slots

KEY = ("limit#jira", "bucket")
# Busy and idle updates failing in turn (the bucket went idle or busy in between) is rare.
ATTEMPTS = 5
# Steps arrive from their Wait this early and sleep the rest: a task starting late would start
# its call late, and a late call bunches with the calls after it (pacing is per sliding second).
ARRIVE_EARLY_SECONDS = 0.5
# A call never waits in the function for longer than a Wait state cannot (whole seconds).
MAX_ALIGN_SECONDS = 1.0 + ARRIVE_EARLY_SECONDS
# Seven consecutive slots span 1.05 s at 95% of the limit: a call later than this takes a new slot.
LATE_TOLERANCE_SECONDS = 0.05


class JiraPacer:
    """The limiter's item in DynamoDB; `clock` is epoch seconds (tests pass their own)."""

    def __init__(self, ceiling: float, clock: Callable[[], float] = time.time) -> None:
        self.ceiling = ceiling
        self._clock = clock
        self._seen = Bucket(ceiling=ceiling)  # the item as the last update returned it

    def now(self) -> float:
        return self._clock()

    def reserve(self, calls: int) -> list[float]:
        """The slots (epoch seconds) of the next `calls` Jira calls, now taken for the caller;
        [] (go now, unpaced) when the limiter's item cannot be written."""
        now = self.now()
        rate = self._seen.rate(now)
        cost = calls / rate
        try:
            start = self._take(now, cost)
        except UpdateError as exc:
            self._unavailable("reserve", exc.cause_response_code)
            return []
        if start is None:
            self._unavailable("reserve", "ConditionalCheckFailedException")
            return []
        return slots(start, calls, rate)

    def throttled(self, retry_after: float | None, limit_hint: float | None = None) -> None:
        """Jira answered 429: every caller waits for `Retry-After` and slows down (`bucket.cut`)."""
        now = self.now()
        resume = pause_until(now, retry_after)
        try:
            self._update(
                [PaceItem.tat.set(resume)],
                PaceItem.tat.does_not_exist() | (PaceItem.tat < resume),
            )
            changed = cut(self._seen, now, limit_hint)
            if changed is None or changed.cut_rate is None:
                return
            actions = [PaceItem.cut_rate.set(changed.cut_rate), PaceItem.cut_at.set(now)]
            if changed.limit is not None:
                actions.append(PaceItem.limit.set(changed.limit))
            # Concurrent 429s cut once: the first write within the cooldown wins, and the
            # others read the cut it made (their next reservations are spaced by it).
            won = self._update(
                actions,
                PaceItem.cut_at.does_not_exist() | (PaceItem.cut_at <= now - CUT_COOLDOWN_SECONDS),
            )
            if won is None:
                self._learn(PaceItem.get(*KEY, consistent_read=True))
        except (UpdateError, GetError) as exc:
            self._unavailable("throttled", exc.cause_response_code)

    def _take(self, now: float, cost: float) -> float | None:
        """Move `tat` past `cost` seconds of calls: the start of the caller's first slot."""
        for attempt in range(ATTEMPTS):
            busy = self._update([PaceItem.tat.add(cost)], PaceItem.tat >= now)
            if busy is not None:
                return float(busy.tat) - cost
            idle = self._update(
                [PaceItem.tat.set(now + cost)],
                PaceItem.tat.does_not_exist() | (PaceItem.tat < now),
            )
            if idle is not None:
                return now
            time.sleep(random.uniform(0, 0.005 * (attempt + 1)))  # noqa: S311 - jitter
        return None

    def _update(self, actions: Sequence[Action], condition: Condition) -> PaceItem | None:
        """One conditional UpdateItem of the limiter's item: the item after it, or None when
        the condition did not hold. Other errors (throttling, ...) raise `UpdateError`."""
        item = PaceItem(*KEY)
        try:
            item.update(actions=list(actions), condition=condition)
        except UpdateError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                return None
            raise
        self._learn(item)
        return item

    def _learn(self, item: PaceItem) -> None:
        """Remember the item as DynamoDB returned it: the next reservation's rate."""
        self._seen = Bucket(
            ceiling=self.ceiling,
            tat=float(item.tat or 0),
            cut_rate=None if item.cut_rate is None else float(item.cut_rate),
            cut_at=float(item.cut_at or 0),
            limit=None if item.limit is None else float(item.limit),
        )

    def _unavailable(self, what: str, error: str | None) -> None:
        logger.warning(
            "jira limiter unavailable: the call goes unpaced",
            extra={"limiter": {"operation": what, "error": error}},
        )
        count("JiraLimiterUnavailable")


class CallDeferred(Exception):
    """A paced call missed its slot and the next free one is further than a task may sleep:
    the step stops before the call and waits for `slots` in Step Functions, then runs again
    (steps are idempotent, as after any failed call)."""

    def __init__(self, slots: list[float]) -> None:
        super().__init__(f"paced call deferred to {slots[0]:.3f}")
        self.slots = slots


@dataclass
class _Schedule:
    slots: deque[float]
    pacer: JiraPacer | None
    calls: int  # the step's calls: reserved at its first call when it holds no slots
    started: int = 0  # calls started so far in this run of the step


_schedule: ContextVar[_Schedule | None] = ContextVar("jira_schedule", default=None)


@contextmanager
def scheduled(slots: list[float], pacer: JiraPacer | None = None, calls: int = 0) -> Iterator[None]:
    """Within the block, the JSM client starts its calls at these slots, in order. With a
    `pacer`, the step's first call reserves slots for its `calls` when it holds none, a call
    beyond them reserves one more, and a call that missed its slot takes a new one
    (`await_slot`)."""
    token = _schedule.set(_Schedule(deque(slots), pacer, calls))
    try:
        yield
    finally:
        _schedule.reset(token)


def await_slot(
    clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep
) -> None:
    """Before a Jira call: wait for the caller's next slot (never longer than
    `MAX_ALIGN_SECONDS`: longer waits are Step Functions').

    A step's first call reserves the step's slots, after whatever the step did before it (a
    cold start, a DynamoDB read): slots taken earlier could pass while it ran. When they are
    further than a task may sleep, it raises `CallDeferred`: the step stops and waits in Step
    Functions. A call more than `LATE_TOLERANCE_SECONDS` past its slot (its task resumed late,
    or the step's work between two calls took long) does not go late either: Jira counts calls
    per sliding second, so a late call lands among the calls of the next slots and one of them
    gets a 429. It reserves new slots for itself and the step's remaining calls, likewise."""
    schedule = _schedule.get()
    if schedule is None:
        return
    if schedule.pacer is not None:
        if not schedule.slots:
            unreserved = schedule.calls - schedule.started
            _take_slots(schedule, schedule.pacer, max(1, unreserved), clock)
        elif schedule.slots[0] - clock() < -LATE_TOLERANCE_SECONDS:
            count("JiraSlotsMissed")
            _take_slots(schedule, schedule.pacer, len(schedule.slots), clock)
    schedule.started += 1
    if schedule.slots:
        _sleep_until(schedule.slots.popleft(), clock, sleep)


def _take_slots(
    schedule: _Schedule, pacer: JiraPacer, calls: int, clock: Callable[[], float]
) -> None:
    fresh = pacer.reserve(calls)  # [] when the limiter is unavailable: unpaced
    if fresh and fresh[0] - clock() > MAX_ALIGN_SECONDS:
        # The step runs again from its start after the wait: slots for the calls it made too.
        if schedule.started:
            fresh += pacer.reserve(schedule.started)
        schedule.slots.clear()
        raise CallDeferred(fresh)
    schedule.slots = deque(fresh)


def _sleep_until(slot: float, clock: Callable[[], float], sleep: Callable[[float], None]) -> None:
    delay = slot - clock()
    if delay > 0:
        sleep(min(delay, MAX_ALIGN_SECONDS))
