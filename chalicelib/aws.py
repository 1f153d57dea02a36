"""Cached boto3 clients: one per service per process (Lambda reuses them across invocations)."""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3
from botocore.config import Config

from .config import get_settings

_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 3}, connect_timeout=3, read_timeout=10
)


@cache
def client(service: str) -> Any:
    """The boto3 client for `service` (endpoint from `AWS_ENDPOINT_URL` when set, e.g. moto)."""
    return boto3.client(service, region_name=get_settings().region, config=_CONFIG)
