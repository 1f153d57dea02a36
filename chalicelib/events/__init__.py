"""Domain events to EventBridge."""

from .publisher import EventBridgePublisher

__all__ = ["EventBridgePublisher"]
