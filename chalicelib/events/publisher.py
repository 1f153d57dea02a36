"""`EventBridgePublisher`: puts the service's domain events on its bus (SPEC §3)."""

from __future__ import annotations

import json
from typing import Any

from ..aws import client
from ..config import get_settings
from ..errors import DependencyUnavailable
from ..observability import logger

EVENT_TYPES = frozenset(
    {
        "GrantActivated",
        "GrantRemoved",
        "GrantFailed",
        "ExternalContactUnlinked",
        "SupportAccessChanged",
        "ContactOffboarded",
    }
)


class EventBridgePublisher:
    def publish(self, detail_type: str, detail: dict[str, Any]) -> None:
        if detail_type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {detail_type}")
        settings = get_settings()
        response = client("events").put_events(
            Entries=[
                {
                    "Source": settings.events_source,
                    "DetailType": detail_type,
                    "Detail": json.dumps(detail, default=str),
                    "EventBusName": settings.event_bus_name,
                }
            ]
        )
        if response.get("FailedEntryCount"):
            raise DependencyUnavailable(f"EventBridge refused the {detail_type} event")
        logger.info("event published", extra={"event_type": detail_type})
