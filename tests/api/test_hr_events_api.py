"""`POST /hr/events` (SPEC §2): the signature is checked over the raw body before anything reads
it; a refused request queues nothing and says nothing about the secret."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chalicelib.api.hr_events import sign
from chalicelib.config import LOCAL_HR_SECRET
from chalicelib.hr.queue import SqsHrQueue
from local.stack import LocalStack
from tests.api.expect import assert_problem
from tests.helpers import ACME_PM, Api

EVENT = {
    "id": "evt-1",
    "type": "contact.offboarded",
    "contact_id": "dev-1",
    "occurred_at": "2026-03-01T10:00:00Z",
}


class Queue:
    """Stands in for the HR queue: what the webhook enqueued (the consumer is tested apart)."""

    def __init__(self) -> None:
        self.bodies: list[str] = []

    def enqueue(self, body: str) -> str:
        self.bodies.append(body)
        return f"m-{len(self.bodies)}"


@pytest.fixture
def queue(stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> Queue:
    recorder = Queue()
    monkeypatch.setattr(SqsHrQueue, "enqueue", lambda _self, body: recorder.enqueue(body))
    return recorder


def queued(queue: Queue) -> list[Any]:
    return [json.loads(b) for b in queue.bodies]


def signed(body: bytes, secret: str = LOCAL_HR_SECRET) -> dict[str, str]:
    return {"X-Signature": sign(body, secret)}


def test_a_signed_event_is_queued_as_received(api: Api, queue: Queue) -> None:
    body = json.dumps(EVENT).encode()
    answer = api.call("POST", "/hr/events", body, signed(body))
    assert answer.status == 202, answer.body
    assert answer.body == {"id": "evt-1", "status": "queued"}
    assert queued(queue) == [EVENT]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Signature": ""},
        {"X-Signature": "sha256="},
        {"X-Signature": "sha1=" + "0" * 40},
        {"X-Signature": "sha256=" + "0" * 64},
        {"X-Signature": "sha256=ünïcode"},
        {"Authorization": "Bearer whatever"},
    ],
    ids=["missing", "empty", "no hex", "other algorithm", "wrong", "non-ascii", "jwt instead"],
)
def test_a_missing_or_bad_signature_is_401_and_queues_nothing(
    api: Api, queue: Queue, headers: dict[str, str]
) -> None:
    body = json.dumps(EVENT).encode()
    answer = api.call("POST", "/hr/events", body, headers)
    problem = assert_problem(answer, 401)
    assert LOCAL_HR_SECRET not in json.dumps(problem)
    assert sign(body, LOCAL_HR_SECRET) not in json.dumps(problem)
    assert queued(queue) == []


def test_a_signature_with_another_secret_or_body_is_401(api: Api, queue: Queue) -> None:
    body = json.dumps(EVENT).encode()
    other = json.dumps({**EVENT, "contact_id": "pm-1"}).encode()
    assert_problem(api.call("POST", "/hr/events", body, signed(body, "guess")), 401)
    assert_problem(api.call("POST", "/hr/events", other, signed(body)), 401)
    # A console JWT does not open it either (the route is HMAC only)
    assert_problem(api.call("POST", "/hr/events", body, {**ACME_PM}), 401)
    assert queued(queue) == []


def test_a_body_over_64_kib_is_413_even_signed(api: Api, queue: Queue) -> None:
    body = json.dumps({**EVENT, "padding": "x" * 65 * 1024}).encode()
    assert_problem(api.call("POST", "/hr/events", body, signed(body)), 413)
    assert queued(queue) == []


@pytest.mark.parametrize(
    ("event", "field"),
    [
        ({**EVENT, "type": "contact.hired"}, "type"),
        ({k: v for k, v in EVENT.items() if k != "id"}, "id"),
        ({k: v for k, v in EVENT.items() if k != "contact_id"}, "body"),
        ({**EVENT, "occurred_at": "yesterday"}, "occurred_at"),
        ({**EVENT, "occurred_at": "2026-03-01T10:00:00"}, "body"),
        ({**EVENT, "type": "contact.company_changed"}, "body"),
        ({**EVENT, "contact_id": "../../etc"}, "contact_id"),
        ({**EVENT, "surprise": 1}, "surprise"),
        ([EVENT], "body"),
    ],
    ids=[
        "unknown type",
        "no id",
        "no contact",
        "not a time",
        "no zone",
        "company change without company",
        "bad id",
        "unknown field",
        "not an object",
    ],
)
def test_a_signed_body_that_is_not_an_event_is_422(
    api: Api, queue: Queue, event: Any, field: str
) -> None:
    body = json.dumps(event).encode()
    answer = api.call("POST", "/hr/events", body, signed(body))
    problem = assert_problem(answer, 422)
    assert field in [e["field"] for e in problem["errors"]] or field == "body", problem
    assert queued(queue) == []


def test_signed_garbage_is_422(api: Api, queue: Queue) -> None:
    body = b"\xff{not json"
    assert_problem(api.call("POST", "/hr/events", body, signed(body)), 422)
    assert queued(queue) == []
