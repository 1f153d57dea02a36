"""One limiter for every Jira call the workflows make, shared by all executions (SPEC §3).

`JiraPacer` keeps the bucket (`bucket.py`) in one DynamoDB item and changes it with a read and a
write conditional on the version it read, retried on a lost race: a reservation is one
strongly consistent GetItem and one conditional PutItem. A task reserves the slots of its calls
before it starts them; slots a second or more ahead are waited for in Step Functions (the task
returns them and a `Wait` state sleeps the whole seconds), and `scheduled` hands them to the
JSM client, which starts each call at its slot (`await_slot`: at most the sub-second rest of it).
"""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from pynamodb.exceptions import PutError

from ..store.tables import PaceItem
from .bucket import Bucket, reserve, throttled

KEY = ("limit#jira", "bucket")
ATTEMPTS = 20  # lost races before giving up (then the call goes unpaced, and Jira may 429)
# A call never waits in the function for more than the part of a second a Wait state cannot.
MAX_ALIGN_SECONDS = 1.0

_schedule: ContextVar[deque[float] | None] = ContextVar("jira_schedule", default=None)


class JiraPacer:
    """The limiter's item in DynamoDB; `clock` is epoch seconds (tests pass their own)."""

    def __init__(self, ceiling: float, clock: Callable[[], float] = time.time) -> None:
        self.ceiling = ceiling
        self._clock = clock

    def now(self) -> float:
        return self._clock()

    def reserve(self, calls: int) -> list[float]:
        """The slots (epoch seconds) of the next `calls` Jira calls, now taken for the caller."""
        return self._change(lambda bucket, now: reserve(bucket, now, calls))

    def throttled(self, retry_after: float | None, limit_hint: float | None = None) -> None:
        """Jira answered 429: every caller slows down (see `bucket.throttled`)."""
        self._change(lambda bucket, now: (throttled(bucket, now, retry_after, limit_hint), []))

    def _change(self, step: Callable[[Bucket, float], tuple[Bucket, list[float]]]) -> list[float]:
        for attempt in range(ATTEMPTS):
            try:
                item = PaceItem.get(*KEY, consistent_read=True)
            except PaceItem.DoesNotExist:
                item = PaceItem(*KEY, version=0)
            old_version = int(item.version or 0)
            bucket = Bucket(
                ceiling=self.ceiling,
                tat=float(item.tat or 0),
                cut_rate=None if item.cut_rate is None else float(item.cut_rate),
                cut_at=float(item.cut_at or 0),
            )
            changed, slots = step(bucket, self.now())
            item.tat, item.cut_rate, item.cut_at = changed.tat, changed.cut_rate, changed.cut_at
            item.version = old_version + 1
            condition = (
                PaceItem.version == old_version if old_version else PaceItem.pk.does_not_exist()
            )
            try:
                item.save(condition=condition)
            except PutError as exc:
                if exc.cause_response_code != "ConditionalCheckFailedException":
                    raise
                time.sleep(random.uniform(0, 0.01 * (attempt + 1)))  # noqa: S311 - jitter
                continue
            return slots
        return []


@contextmanager
def scheduled(slots: list[float]) -> Iterator[None]:
    """Within the block, the JSM client starts its calls at these slots, in order."""
    token = _schedule.set(deque(slots))
    try:
        yield
    finally:
        _schedule.reset(token)


def await_slot(
    clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep
) -> None:
    """Before a Jira call: wait for the caller's next slot (never a second or more: those
    waits are Step Functions'); calls beyond the reserved slots go at once."""
    slots = _schedule.get()
    if not slots:
        return
    delay = slots.popleft() - clock()
    if delay > 0:
        sleep(min(delay, MAX_ALIGN_SECONDS))
