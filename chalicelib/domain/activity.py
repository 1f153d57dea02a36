"""Building activity entries: one constructor so every entry has the same shape and clock."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from .ids import new_ulid
from .models import ActivityEntry, Actor, iso, utc_now


def entry(
    project_id: str,
    action: str,
    actor: Actor,
    *,
    contact_id: str | None = None,
    contact_email: str | None = None,
    detail: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> ActivityEntry:
    """A new entry stamped `at` (default now), with a time-ordered ULID as its id."""
    now = at or utc_now()
    return ActivityEntry(
        project_id=project_id,
        at=iso(now),
        id=new_ulid(now),
        action=action,
        actor=actor,
        contact_id=contact_id,
        contact_email=contact_email,
        detail=detail or {},
    )
