"""Committing a change: its writes and activity entries in one transaction, then its event.

Every state change of the service goes through `commit_change`, so each one is whole or absent,
loses a race visibly (False) and publishes its event only once it is stored. A transaction that
DynamoDB cancelled because another one touched the same items at the same moment is retried a
few times with jitter; one that keeps losing becomes a 409 the client may retry.
"""

from __future__ import annotations

import random
import time

from ..errors import Conflict, StaleState, WriteConflict
from .events import DomainEvent
from .ports import EventPublisher, UnitOfWork

CONFLICT_ATTEMPTS = 3
CONFLICT_BACKOFF_SECONDS = 0.05
CONFLICT_RETRY_AFTER_SECONDS = 1


def commit_change(uow: UnitOfWork, events: EventPublisher, event: DomainEvent | None) -> bool:
    """Commit `uow`, then publish `event`; False (nothing written) when a condition failed."""
    for attempt in range(CONFLICT_ATTEMPTS):
        try:
            uow.commit()
            break
        except StaleState:
            return False
        except WriteConflict:
            if attempt + 1 == CONFLICT_ATTEMPTS:
                raise Conflict(
                    "another change of the same items is being written; retry in a moment",
                    retry_after=CONFLICT_RETRY_AFTER_SECONDS,
                ) from None
            time.sleep(random.uniform(0, CONFLICT_BACKOFF_SECONDS * 2**attempt))  # noqa: S311
    if event is not None:
        events.publish(event)
    return True
