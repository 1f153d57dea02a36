"""Fixtures of the unit tests: in-memory fakes of every port the domain talks to, and the JSM
emulator for the client tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from local.jsm_emulator import JsmEmulator
from tests.fakes.adapters import FakeJira, RecordingEvents, RecordingMailer, RecordingWorkflows
from tests.fakes.store import InMemoryStore


@pytest.fixture(scope="module")
def emulator() -> Iterator[JsmEmulator]:
    """A real JSM emulator on a free port, for the client and emulator tests."""
    server = JsmEmulator(port=0)
    server.start()
    yield server
    server.stop()


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
