"""The maths of the service-wide Jira limiter: a token bucket kept as one "next free slot" time.

Virtual scheduling (GCRA): `tat` is the time the next call may start; a reservation of `n`
calls takes the slots `max(tat, now) + i / rate` and moves `tat` past them, so every caller
knows at once when its calls may go, and a waiter holds its slots while it waits. The rate
adapts: a 429 cuts it (multiplicative decrease, and nobody gets a slot before Jira's
`Retry-After`), then it grows back linearly (additive increase) up to the configured ceiling.
Pure functions of their inputs, so the state can live in one DynamoDB item.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

# The limiter aims a little under the configured limit: the calls start a few tens of
# milliseconds off their slots (Lambda and Step Functions latency), and Jira counts strictly.
HEADROOM = 0.95
# On a 429 the rate is cut to this share of what it was (once per second, however many
# concurrent calls were answered 429 together) ...
DECREASE = 0.7
CUT_COOLDOWN_SECONDS = 1.0
# ... then grows back by this share of the ceiling per second (from 70% back to 100% in ~18 s).
RECOVERY_PER_SECOND = 1 / 60
MIN_RATE = 0.2  # calls per second: a storm of 429s never stops the service entirely


@dataclass(frozen=True)
class Bucket:
    """The limiter's state: `tat` and `cut_at` are epoch seconds."""

    ceiling: float  # calls per second, from the setting (HELPDESK_JIRA_RATE_PER_SECOND)
    tat: float = 0.0  # the next free slot
    cut_rate: float | None = None  # the rate right after the last cut (None: never cut)
    cut_at: float = 0.0

    def rate(self, now: float) -> float:
        """The calls per second the bucket hands out at `now` (adapted, recovering)."""
        full = self.ceiling * HEADROOM
        if self.cut_rate is None:
            return full
        recovered = self.cut_rate + self.ceiling * RECOVERY_PER_SECOND * max(0.0, now - self.cut_at)
        return min(full, recovered)


def reserve(bucket: Bucket, now: float, calls: int) -> tuple[Bucket, list[float]]:
    """Reserve the next `calls` slots: the new state and the slot times (first may be now)."""
    rate = bucket.rate(now)
    start = max(bucket.tat, now)
    slots = [start + i / rate for i in range(calls)]
    recovered = bucket.cut_rate is not None and rate >= bucket.ceiling * HEADROOM
    return (
        replace(bucket, tat=start + calls / rate, cut_rate=None if recovered else bucket.cut_rate),
        slots,
    )


def throttled(
    bucket: Bucket, now: float, retry_after: float | None, limit_hint: float | None = None
) -> Bucket:
    """Jira answered 429: cut the rate (at most once a cooldown) and keep every new slot after
    its `Retry-After` (1 s when it sent none). `limit_hint` (X-RateLimit-Limit per second) caps
    the cut rate too."""
    pause = max(1.0, retry_after if retry_after is not None else 1.0)
    tat = max(bucket.tat, now + pause)
    if bucket.cut_rate is not None and now - bucket.cut_at < CUT_COOLDOWN_SECONDS:
        return replace(bucket, tat=tat)
    rate = bucket.rate(now) * DECREASE
    if limit_hint is not None and limit_hint > 0:
        rate = min(rate, limit_hint * HEADROOM)
    return replace(bucket, tat=tat, cut_rate=max(MIN_RATE, rate), cut_at=now)
