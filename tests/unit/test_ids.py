"""ULIDs sort by time and give their time back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.domain.ids import LENGTH, new_ulid, ulid_range, ulid_time

moments = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)


@given(moments)
def test_a_ulid_gives_back_its_millisecond(moment: datetime) -> None:
    ulid = new_ulid(moment)
    assert len(ulid) == LENGTH
    assert ulid_time(ulid) == moment.replace(microsecond=moment.microsecond // 1000 * 1000)


@given(moments, st.integers(min_value=1, max_value=10**9))
def test_later_ulids_sort_after_earlier_ones(moment: datetime, later_ms: int) -> None:
    assert new_ulid(moment) < new_ulid(moment + timedelta(milliseconds=later_ms))


@pytest.mark.parametrize("text", ["", "short", "U" * LENGTH, "01M846R8QS987QED6N533HKZK2!"])
def test_anything_else_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a ULID"):
        ulid_time(text)


def test_ulids_of_one_millisecond_keep_their_order() -> None:
    moment = datetime(2026, 11, 23, tzinfo=UTC)
    made = [new_ulid(moment) for _ in range(1000)]
    assert made == sorted(made)
    assert len(set(made)) == len(made)


def test_ulid_range_selects_exactly_the_window_since_inclusive_until_exclusive() -> None:
    t0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    low, high = ulid_range(t0, t0 + timedelta(seconds=1))
    assert low <= new_ulid(t0) <= high
    assert low <= new_ulid(t0 + timedelta(milliseconds=999)) <= high
    assert new_ulid(t0 + timedelta(seconds=1)) > high
    assert new_ulid(t0 - timedelta(milliseconds=1)) < low
    everything_low, everything_high = ulid_range(None, None)
    assert everything_low <= new_ulid() <= everything_high
