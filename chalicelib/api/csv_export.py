"""The Activity Log as a spreadsheet: RFC 4180 CSV (SPEC §2), safe to open in Excel or Sheets."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable

from ..domain.models import ActivityEntry

MEDIA_TYPE = "text/csv; charset=utf-8"
HEADER = (
    "at",
    "action",
    "actor_type",
    "actor_id",
    "actor_email",
    "contact_id",
    "contact_email",
    "detail",
)
# A spreadsheet runs a cell starting with one of these as a formula (OWASP "CSV injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: str | None) -> str:
    text = value or ""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _row(entry: ActivityEntry) -> list[str]:
    detail = json.dumps(entry.detail, separators=(",", ":"), ensure_ascii=False, sort_keys=True)
    cells = (
        entry.at,
        entry.action,
        entry.actor.type.value,
        entry.actor.id,
        entry.actor.email,
        entry.contact_id,
        entry.contact_email,
        detail,
    )
    return [safe_cell(cell) for cell in cells]


def activity_csv(entries: Iterable[ActivityEntry]) -> str:
    """The header row, then one row per entry in the order given; CRLF line ends, fields quoted
    only when they hold a comma, a quote or a line break (quotes doubled), as RFC 4180 says."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow(HEADER)
    for entry in entries:
        writer.writerow(_row(entry))
    return out.getvalue()


def wants_csv(accept: str | None) -> bool:
    """Whether `Accept` prefers `text/csv` to JSON (the highest q wins, the first on a tie)."""
    best: tuple[float, int, str] | None = None
    for position, part in enumerate((accept or "").split(",")):
        media, *params = (p.strip() for p in part.split(";"))
        if media.lower() not in {"text/csv", "application/json", "application/*", "*/*"}:
            continue
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if quality > 0 and (best is None or quality > best[0]):
            best = (quality, position, media.lower())
    return best is not None and best[2] == "text/csv"
