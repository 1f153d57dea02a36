"""The Activity Log tab's filters and its spreadsheet export (SPEC §2 `GET .../activity`):
`?action=` (repeatable), `?since=`, `?until=`, and `Accept: text/csv` (RFC 4180, newest first,
formula cells neutralised, more than 100,000 rows refused with 413)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest

from chalicelib import services
from chalicelib.api import grants as grants_api
from chalicelib.domain import activity
from chalicelib.domain.models import Actor, ActorType
from tests.api.expect import assert_problem, header
from tests.helpers import ACME_PM, OTHER_PM, Api, Seeder

ACTIVITY = "/projects/demo/activity"
CSV = {**ACME_PM, "Accept": "text/csv"}
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
PM = Actor(type=ActorType.USER, id="pm-1", email="priya.pm@acme.example")
HEADER = "at,action,actor_type,actor_id,actor_email,contact_id,contact_email,detail"


def record(action: str, minutes: int, **kwargs: object) -> None:
    services.store().append_activity(
        activity.entry("demo", action, PM, at=T0 + timedelta(minutes=minutes), **kwargs)  # type: ignore[arg-type]
    )


@pytest.fixture
def log(seed: Seeder) -> None:
    """The demo project, plus four entries an hour in the past of each other, from T0."""
    seed.project()
    record("grant.requested", 0, contact_id="dev-1", contact_email="dana.dev@acme.example")
    record("grant.activated", 1, contact_id="dev-1", contact_email="dana.dev@acme.example")
    record("grant.removal_requested", 2, contact_id="dev-1", contact_email="x@acme.example")
    record("grant.requested", 3, contact_id="eve-1", contact_email="eve@acme.example")


def actions(api: Api, query: str) -> list[str]:
    answer = api.get(f"{ACTIVITY}?{query}", ACME_PM)
    assert answer.status == 200, answer.body
    return [e["action"] for e in answer.body["items"] if e["at"].startswith("2026-03-01")]


def test_action_filter_is_repeatable(api: Api, log: None) -> None:
    assert actions(api, "action=grant.requested") == ["grant.requested"] * 2
    assert actions(api, "action=grant.requested&action=grant.activated") == [
        "grant.requested",
        "grant.activated",
        "grant.requested",
    ]


def test_since_is_inclusive_until_is_exclusive(api: Api, log: None) -> None:
    since = "2026-03-01T12:01:00Z"
    until = "2026-03-01T12:03:00Z"
    assert actions(api, f"since={since}&until={until}") == [
        "grant.removal_requested",
        "grant.activated",
    ]
    assert actions(api, f"since={since}&action=grant.requested") == ["grant.requested"]


def test_filters_combine_with_contact_and_paging(api: Api, log: None) -> None:
    # Given a filter matching two entries of dev-1 / When read one per page
    query = "contact_id=dev-1&action=grant.requested&action=grant.activated&limit=1"
    first = api.get(f"{ACTIVITY}?{query}", ACME_PM).body
    second = api.get(f"{ACTIVITY}?{query}&cursor={first['next_cursor']}", ACME_PM).body
    # Then the two come newest first, one per page
    assert [e["action"] for e in first["items"] + second["items"]] == [
        "grant.activated",
        "grant.requested",
    ]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("since=yesterday", "since"),
        ("until=2026-13-01T00:00:00Z", "until"),
        ("since=2026-03-02T00:00:00Z&until=2026-03-01T00:00:00Z", "until"),
        ("action=DROP%20TABLE", "action"),
        ("action=" + "a" * 90, "action"),
    ],
)
def test_bad_filters_are_422(api: Api, log: None, query: str, field: str) -> None:
    answer = api.get(f"{ACTIVITY}?{query}", ACME_PM)
    assert_problem(answer, 422, field=field)


def rows(answer_body: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(answer_body, newline="")))


def test_csv_export_is_rfc4180_newest_first(api: Api, log: None) -> None:
    # When the log is asked for as CSV
    answer = api.get(f"{ACTIVITY}?since=2026-03-01T00:00:00Z&until=2026-03-02T00:00:00Z", CSV)
    # Then every matching entry, newest first, with the header row and CRLF line ends
    assert answer.status == 200
    assert header(answer, "Content-Type") == "text/csv; charset=utf-8"
    text = answer.body
    assert text.startswith(HEADER + "\r\n")
    assert text.endswith("\r\n")
    table = rows(text)
    assert table[0] == HEADER.split(",")
    assert [r[1] for r in table[1:]] == [
        "grant.requested",
        "grant.removal_requested",
        "grant.activated",
        "grant.requested",
    ]
    assert table[1] == [
        "2026-03-01T12:03:00.000Z",
        "grant.requested",
        "user",
        "pm-1",
        "priya.pm@acme.example",
        "eve-1",
        "eve@acme.example",
        "{}",
    ]


def test_csv_export_has_no_pagination_and_honours_filters(api: Api, log: None) -> None:
    answer = api.get(f"{ACTIVITY}?action=grant.requested&limit=1", CSV)
    table = rows(answer.body)
    assert [r[5] for r in table[1:] if r[0].startswith("2026-03-01")] == ["eve-1", "dev-1"]
    assert "next_cursor" not in answer.body


def test_csv_detail_is_compact_json_quoted_per_rfc4180(api: Api, seed: Seeder) -> None:
    seed.project()
    record("grant.failed", 0, detail={"error": {"code": "X", "message": 'say "hi", then\nbye'}})
    answer = api.get(f"{ACTIVITY}?action=grant.failed", CSV)
    [row] = rows(answer.body)[1:]
    assert row[7] == '{"error":{"code":"X","message":"say \\"hi\\", then\\nbye"}}'
    assert '"{""error"":' in answer.body  # quotes doubled inside a quoted field


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_csv_cells_that_a_spreadsheet_would_run_are_prefixed(
    api: Api, seed: Seeder, start: str
) -> None:
    # Given an entry whose contact email and actor id start like a formula
    seed.project()
    evil = f'{start}HYPERLINK("http://evil.example")'
    hostile = Actor(type=ActorType.USER, id=evil, email="pm@acme.example")
    services.store().append_activity(
        activity.entry("demo", "grant.requested", hostile, contact_id="c-1", contact_email=evil)
    )
    # When exported
    [row] = rows(api.get(f"{ACTIVITY}?action=grant.requested", CSV).body)[1:]
    # Then those cells start with a quote and keep the rest
    assert row[3] == "'" + evil
    assert row[6] == "'" + evil
    assert row[4] == "pm@acme.example"


def test_csv_over_the_row_limit_is_413(
    api: Api, log: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a limit of 3 rows (100,000 in production) and 4 matching entries
    assert grants_api.EXPORT_ROW_LIMIT == 100_000
    monkeypatch.setattr(grants_api, "EXPORT_ROW_LIMIT", 3)
    window = "since=2026-03-01T00:00:00Z&until=2026-03-02T00:00:00Z"
    # When exported / Then 413 asking for a narrower range
    answer = api.get(f"{ACTIVITY}?{window}", CSV)
    assert_problem(answer, 413, detail="narrower")
    # And exactly the limit is fine
    narrower = api.get(f"{ACTIVITY}?{window}&action=grant.requested", CSV)
    assert narrower.status == 200


def test_csv_export_is_for_members_only(api: Api, log: None) -> None:
    assert api.get(ACTIVITY, {**OTHER_PM, "Accept": "text/csv"}).status == 403


def test_json_stays_the_default(api: Api, log: None) -> None:
    answer = api.get(ACTIVITY, {**ACME_PM, "Accept": "application/json, text/csv;q=0.5"})
    assert header(answer, "Content-Type") == "application/json"
