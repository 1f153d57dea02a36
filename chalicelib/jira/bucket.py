"""The maths of the service-wide Jira limiter: a token bucket kept as one "next free slot" time.

Virtual scheduling (GCRA): `tat` is the time the next call may start; a reservation of `n`
calls takes the slots `max(tat, now) + i / rate` and moves `tat` past them, so every caller
knows at once when its calls may go, and a waiter holds its slots while it waits. The rate
adapts: a 429 cuts it (to just under the limit Jira names, or by 5% when it was already
under it) and nobody gets a slot before Jira's `Retry-After`; it then grows back linearly up to
the configured ceiling. Pure functions of their inputs. `pacing.py` makes the same changes to
one DynamoDB item with atomic conditional updates (`slots`, `pause_until` and `cut` directly;
`reserve` and `throttled` state the whole change each makes, as the unit tests check it).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

# The limiter aims a little under the limit: Jira counts calls per sliding second, strictly, and
# calls start a few tens of milliseconds off their slots (Lambda, Step Functions and network
# latency). At 95%, seven consecutive slots span 1.05 s: a call may start 50 ms late.
HEADROOM = 0.95
# A 429 while already under the limit Jira names (a late call, or another client of the same
# site) cuts the rate by 5%, at most once a second however many calls were refused ...
DECREASE = 0.95
CUT_COOLDOWN_SECONDS = 1.0
# ... and it grows back by this share of the full rate per second (those 5% in 3 s).
RECOVERY_PER_SECOND = 1 / 60
MIN_RATE = 0.2  # calls per second: a storm of 429s never stops the service entirely


@dataclass(frozen=True)
class Bucket:
    """The limiter's state: `tat` and `cut_at` are epoch seconds."""

    ceiling: float  # calls per second, from the setting (HELPDESK_JIRA_RATE_PER_SECOND)
    tat: float = 0.0  # the next free slot
    cut_rate: float | None = None  # the rate right after the last cut (None: never cut)
    cut_at: float = 0.0
    limit: float | None = None  # calls per second Jira last named (X-RateLimit-Limit)

    def full_rate(self) -> float:
        """The rate with no cut to recover from: under the setting and under Jira's limit."""
        limit = self.ceiling if self.limit is None else min(self.ceiling, self.limit)
        return limit * HEADROOM

    def rate(self, now: float) -> float:
        """The calls per second the bucket hands out at `now` (adapted, recovering)."""
        full = self.full_rate()
        if self.cut_rate is None:
            return full
        recovered = self.cut_rate + full * RECOVERY_PER_SECOND * max(0.0, now - self.cut_at)
        return min(full, recovered)


def slots(start: float, calls: int, rate: float) -> list[float]:
    """The start times of `calls` consecutive calls from `start` at `rate` per second."""
    return [start + i / rate for i in range(calls)]


def reserve(bucket: Bucket, now: float, calls: int) -> tuple[Bucket, list[float]]:
    """Reserve the next `calls` slots: the new state and the slot times (first may be now)."""
    rate = bucket.rate(now)
    start = max(bucket.tat, now)
    return replace(bucket, tat=start + calls / rate), slots(start, calls, rate)


def pause_until(now: float, retry_after: float | None) -> float:
    """After a 429, no slot before Jira's `Retry-After` (a second when it sent none)."""
    return now + max(1.0, retry_after if retry_after is not None else 1.0)


def cut(bucket: Bucket, now: float, limit_hint: float | None = None) -> Bucket | None:
    """The bucket after a 429 cuts its rate, or None within the cooldown of the last cut.

    Above the limit Jira names (`X-RateLimit-Limit`, per second), the rate goes just under it;
    otherwise it is cut by `DECREASE`. Jira's limit is remembered as a ceiling."""
    if bucket.cut_rate is not None and now - bucket.cut_at < CUT_COOLDOWN_SECONDS:
        return None
    rate = bucket.rate(now)
    limit = limit_hint if limit_hint is not None and limit_hint > 0 else bucket.limit
    if limit is not None and rate > limit * HEADROOM:
        new_rate = limit * HEADROOM
    else:
        new_rate = rate * DECREASE
    return replace(bucket, cut_rate=max(MIN_RATE, new_rate), cut_at=now, limit=limit)


def throttled(
    bucket: Bucket, now: float, retry_after: float | None, limit_hint: float | None = None
) -> Bucket:
    """Jira answered 429: slots wait for `Retry-After` and the rate is cut (see `cut`)."""
    paused = replace(bucket, tat=max(bucket.tat, pause_until(now, retry_after)))
    return cut(paused, now, limit_hint) or paused
