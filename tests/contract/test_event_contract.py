"""Event contract: `docs/events.md` publishes each event's JSON Schema, generated from the models
in `chalicelib/domain/events.py`; the page and the models never drift, and what the lifecycle
publishes is exactly what the schema says."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from chalicelib.domain.events import EVENT_TYPES, json_schemas
from chalicelib.domain.grant_lifecycle import GrantLifecycle, Move
from chalicelib.domain.models import GrantError, GrantStatus
from tests.fakes.adapters import RecordingEvents
from tests.fakes.builders import contact, grant, project
from tests.fakes.store import InMemoryStore

DOC = Path(__file__).resolve().parents[2] / "docs" / "events.md"
SPEC_EVENT_NAMES = {
    "GrantActivated",
    "GrantRemoved",
    "GrantFailed",
    "ExternalContactUnlinked",
    "SupportAccessChanged",
    "ContactOffboarded",
    "DriftFound",
    "AccessReviewOpened",
    "AccessReviewClosed",
    "AccessRequested",
    "AccessRequestDecided",
}


def documented() -> dict[str, dict[str, Any]]:
    """Each `## <name>` section's JSON block."""
    text = DOC.read_text()
    sections = re.findall(r"^## (\w+)\n.*?```json\n(.*?)\n```", text, re.M | re.S)
    return {name: json.loads(block) for name, block in sections}


def test_the_published_schemas_are_the_models_schemas() -> None:
    assert documented() == json_schemas()


def test_every_event_the_service_publishes_today_has_a_model() -> None:
    assert {cls.detail_type() for cls in EVENT_TYPES} == SPEC_EVENT_NAMES


@pytest.mark.parametrize(
    ("start", "target"),
    [
        (GrantStatus.ACTIVATION_PENDING, GrantStatus.ACTIVATED),
        (GrantStatus.ACTIVATION_PENDING, GrantStatus.ACTIVATION_FAILED),
        (GrantStatus.DELETION_PENDING, GrantStatus.REMOVED),
        (GrantStatus.DELETION_PENDING, GrantStatus.DELETION_FAILED),
    ],
)
def test_lifecycle_events_validate_against_their_published_schema(start, target) -> None:
    # Given a pending grant
    store, events = InMemoryStore(), RecordingEvents()
    stored = grant(project(), contact("alice"), start, jira_account_id="acc-1")
    store.seed(stored)

    # When its run ends
    GrantLifecycle(store, events).apply(stored, Move(target, error=GrantError("E", "m")))

    # Then the published detail has exactly the documented fields, with their types
    [(name, detail)] = events.published
    schema = documented()[name]
    assert set(detail) == set(schema["properties"])
    assert set(schema["required"]) <= set(detail)
    model = next(cls for cls in EVENT_TYPES if cls.detail_type() == name)
    assert model.model_validate(detail).detail() == detail
