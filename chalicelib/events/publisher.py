"""`EventBridgePublisher`: puts the service's domain events on its bus (SPEC §3)."""

from __future__ import annotations

import json

from ..aws import client
from ..config import get_settings
from ..domain.events import DomainEvent
from ..errors import DependencyUnavailable
from ..observability import logger


class EventBridgePublisher:
    def publish(self, event: DomainEvent) -> None:
        detail_type, detail = event.detail_type(), event.detail()
        settings = get_settings()
        response = client("events").put_events(
            Entries=[
                {
                    "Source": settings.events_source,
                    "DetailType": detail_type,
                    "Detail": json.dumps(detail),
                    "EventBusName": settings.event_bus_name,
                }
            ]
        )
        if response.get("FailedEntryCount"):
            raise DependencyUnavailable(f"EventBridge refused the {detail_type} event")
        logger.info("event published", extra={"event_type": detail_type})
