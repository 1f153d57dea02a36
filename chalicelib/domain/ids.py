"""ULIDs: 128-bit ids that sort by creation time (48-bit ms timestamp + 80 random bits).

A few lines of our own instead of a dependency: the package we used read its own version
through `importlib.metadata` at import, a tenth of the app's cold start.
"""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime

from .models import utc_now

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
LENGTH = 26


_RANDOM_BITS = 80
_last = [0, 0]  # the (millisecond, random part) of the latest ULID made in this process
_lock = threading.Lock()


def new_ulid(moment: datetime | None = None) -> str:
    """A ULID for `moment` (default now), in Crockford base32.

    Monotonic within a process: ULIDs made in the same millisecond increment the random part,
    so entries written one after the other (a contact, then its grant) keep their order.
    """
    millis = int((moment or utc_now()).timestamp() * 1000)
    with _lock:
        if millis == _last[0] and _last[1] + 1 < 1 << _RANDOM_BITS:
            random_part = _last[1] + 1
        else:
            random_part = int.from_bytes(os.urandom(_RANDOM_BITS // 8), "big")
        _last[:] = [millis, random_part]
    value = (millis << _RANDOM_BITS) | random_part
    return "".join(CROCKFORD[(value >> (5 * i)) & 31] for i in reversed(range(LENGTH)))


def ulid_time(ulid: str) -> datetime:
    """When a ULID was minted (ms precision); ValueError for anything that is not a ULID."""
    if len(ulid) != LENGTH or any(c not in CROCKFORD for c in ulid.upper()):
        raise ValueError(f"not a ULID: {ulid!r}")
    value = 0
    for char in ulid.upper():
        value = value * 32 + CROCKFORD.index(char)
    return datetime.fromtimestamp((value >> _RANDOM_BITS) / 1000, tz=UTC)


_MAX_RANDOM = (1 << _RANDOM_BITS) - 1


def _encode(value: int) -> str:
    return "".join(CROCKFORD[(value >> (5 * i)) & 31] for i in reversed(range(LENGTH)))


def _millis_at_or_after(moment: datetime) -> int:
    """The first whole millisecond not before `moment` (ULIDs and `at` carry milliseconds)."""
    micros = int(moment.timestamp() * 1_000_000)
    return -(-micros // 1000)


def ulid_range(since: datetime | None, until: datetime | None) -> tuple[str, str]:
    """The smallest and largest ULID (both inclusive) minted in `since` <= t < `until`: a key
    condition on a ULID sort key selects a time window without reading outside it."""
    low = _millis_at_or_after(since) << _RANDOM_BITS if since else 0
    high = ((_millis_at_or_after(until) - 1) << _RANDOM_BITS | _MAX_RANDOM) if until else -1
    if high < 0 or high >= 1 << (5 * LENGTH):
        high = (1 << 128) - 1
    return _encode(max(low, 0)), _encode(high)
