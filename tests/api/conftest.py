"""Fixtures of the API tests: the world a refused request must leave unchanged."""

from __future__ import annotations

import pytest

from local.stack import LocalStack
from tests.api.expect import World


@pytest.fixture
def world(stack: LocalStack) -> World:
    return World(stack)
