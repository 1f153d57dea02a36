"""Shared fixtures: one local stack per test process (moto + real ASL + JSM emulator + mailbox),
reset before each test that uses it, and a `chalice.test.Client`-based API caller."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from local.stack import LocalStack
from tests.helpers import Api, Seeder

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def running_stack() -> Iterator[LocalStack]:
    """Started once per test process on free ports; Step Functions waits run 1000x faster."""
    with LocalStack(api_port=0, aws_port=0, jira_port=0, mail_port=0, fast_clock_scale=0.001) as s:
        yield s


@pytest.fixture
def stack(running_stack: LocalStack) -> LocalStack:
    """The stack with empty tables, queues, outbox and a fresh JSM site."""
    running_stack.reset()
    return running_stack


@pytest.fixture
def api(stack: LocalStack) -> Iterator[Api]:
    """The API through `chalice.test.Client` (in-process, same app as the Lambda tasks)."""
    with Api.for_app(stack.app, ROOT) as client:
        yield client


@pytest.fixture
def seed(api: Api) -> Seeder:
    return Seeder(api)
