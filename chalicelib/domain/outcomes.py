"""How a lifecycle ends: the terminal writes shared by the API and the workflow steps.

Each outcome is one conditional transition plus its activity entry (one transaction), guarded by
the lifecycle id, so a step that runs twice (Lambda retry, duplicate delivery) records it once.
"""

from __future__ import annotations

from dataclasses import asdict

from ..errors import StaleState
from . import activity
from .grant_lifecycle import ACTIVITY_ACTION
from .models import SYSTEM_ACTOR, Grant, GrantError, GrantStatus
from .ports import EventPublisher, Store


def record_failure(
    store: Store,
    events: EventPublisher,
    grant: Grant,
    failed: GrantStatus,
    error: GrantError,
    jira_account_id: str | None = None,
    account_created: bool | None = None,
) -> bool:
    """Move a pending grant to `failed` with `error`; False when this lifecycle already ended.

    The JSM account id found so far is kept, so a later removal can clean up what was done.
    """
    uow = store.unit_of_work()
    uow.transition_grant(
        grant,
        failed,
        expected_lifecycle=grant.lifecycle_id,
        error=error,
        jira_account_id=jira_account_id,
        account_created=account_created,
    )
    uow.append(
        activity.entry(
            grant.project_id,
            ACTIVITY_ACTION[failed],
            SYSTEM_ACTOR,
            contact_id=grant.contact_id,
            contact_email=grant.email,
            detail={"error": asdict(error), "execution": grant.lifecycle_id},
        )
    )
    try:
        uow.commit()
    except StaleState:
        return False
    events.publish(
        "GrantFailed",
        {
            "project_id": grant.project_id,
            "contact_id": grant.contact_id,
            "status": failed.value,
            "error": asdict(error),
        },
    )
    return True
