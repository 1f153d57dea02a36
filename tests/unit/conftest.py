"""Fixtures of the unit tests: fresh in-memory fakes of every port the domain talks to."""

from __future__ import annotations

import pytest

from tests.fakes.adapters import FakeJira, RecordingEvents, RecordingMailer, RecordingWorkflows
from tests.fakes.store import InMemoryStore


@pytest.fixture
def store() -> InMemoryStore:
    return InMemoryStore()


@pytest.fixture
def events() -> RecordingEvents:
    return RecordingEvents()


@pytest.fixture
def mailer() -> RecordingMailer:
    return RecordingMailer()


@pytest.fixture
def workflows() -> RecordingWorkflows:
    return RecordingWorkflows()


@pytest.fixture
def jira() -> FakeJira:
    return FakeJira()
