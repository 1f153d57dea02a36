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
def stack(running_stack: LocalStack) -> Iterator[LocalStack]:
    """The stack with empty tables, queues, outbox and a fresh JSM site.

    Every function runs with its own role from the template (local/iam.py): a call its role
    does not allow fails as in AWS, and fails the test here even if the code swallowed it.
    """
    running_stack.reset()
    yield running_stack
    assert running_stack.iam is not None
    denied = running_stack.iam.take_denials()
    assert denied == [], "calls the functions' roles do not allow (local/iam.py)"


@pytest.fixture
def api(stack: LocalStack) -> Iterator[Api]:
    """The API through `chalice.test.Client` (in-process, same app as the Lambda tasks)."""
    with Api.for_app(stack.app, ROOT) as client:
        yield client


@pytest.fixture
def seed(api: Api) -> Seeder:
    return Seeder(api)
