"""Time and memory of the activity CSV export (issue 15): `rows` generated entries through the
export path, once timed and once under `tracemalloc`, fed as the store feeds them (a generator,
one page at a time)."""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class ExportMemory:
    rows: int
    csv_bytes: int
    peak_bytes: int
    seconds: float  # without tracemalloc, which slows it several times


def export_memory(rows: int) -> ExportMemory:
    from chalicelib.api.csv_export import activity_csv  # noqa: PLC0415
    from chalicelib.domain import activity  # noqa: PLC0415
    from chalicelib.domain.models import ActivityEntry, Actor, ActorType  # noqa: PLC0415

    actor = Actor(ActorType.USER, "pm-1", "priya.pm@acme.example")

    def entries() -> Iterator[ActivityEntry]:
        for i in range(rows):
            yield activity.entry(
                "bench-export",
                "grant.requested",
                actor,
                contact_id=f"c-{i:06d}",
                contact_email=f"contact-{i:06d}@acme.example",
                detail={"execution": f"bench-export-c-{i:06d}-activation", "retry": False},
            )

    started = time.perf_counter()
    activity_csv(entries())
    seconds = time.perf_counter() - started
    tracemalloc.start()
    text = activity_csv(entries())
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return ExportMemory(rows, len(text.encode()), peak, seconds)
