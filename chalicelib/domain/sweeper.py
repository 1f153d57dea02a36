"""Finds grants whose lifecycle stalled and moves them on, so nothing stays pending forever.

A grant is pending while its execution runs. If the API died between writing the grant and
starting the execution, or the execution ended without recording an outcome (its failure step
could not write), the grant would wait forever: the sweeper starts the missing execution under
the same deterministic name, or records the failure so the grant can be retried.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from ..errors import DependencyUnavailable
from .grant_lifecycle import GrantLifecycle
from .models import Grant, GrantError, GrantStatus, utc_now
from .ports import EventPublisher, Store, WorkflowStarter

STALL_AFTER = timedelta(minutes=10)


@dataclass
class SweepReport:
    restarted: int = 0
    failed: int = 0
    running: int = 0


def start_removal_or_leave_to_sweeper(workflows: WorkflowStarter, grant: Grant) -> bool:
    """Start a removal the service recorded itself (expiry, review); False when Step Functions
    cannot take it now: the grant stays `deletion_pending` with its removal recorded, and the
    sweep below starts the execution under the same name, as for an API that died there."""
    try:
        workflows.start_removal(grant)
    except DependencyUnavailable:
        return False
    return True


def sweep_stalled_grants(
    store: Store,
    workflows: WorkflowStarter,
    events: EventPublisher,
    now: datetime | None = None,
) -> SweepReport:
    now = now or utc_now()
    lifecycle = GrantLifecycle(store, events)
    report = SweepReport()
    for grant in store.pending_grants():
        if now - _updated(grant) < STALL_AFTER:
            continue
        status = workflows.execution_status(grant)
        if status == "RUNNING":
            report.running += 1
        elif status is None:
            try:
                if grant.status is GrantStatus.ACTIVATION_PENDING:
                    workflows.start_activation(grant)
                else:
                    workflows.start_removal(grant)
                report.restarted += 1
            except DependencyUnavailable:
                continue  # try again on the next sweep
        else:
            error = GrantError(
                "ExecutionEnded", f"the workflow ended ({status}) without an outcome"
            )
            if lifecycle.fail(grant, error) is not None:
                report.failed += 1
    return report


def _updated(grant: Grant) -> datetime:
    return datetime.fromisoformat(grant.updated_at.replace("Z", "+00:00"))
