"""AWS calls per API operation, counted by a botocore event hook (`before-call`).

Every botocore client made after `install()` gets a `before-call` handler that counts the calls
of the thread that is measuring, so the Step Functions executions a request starts (their tasks
run on other threads) do not add to the request's count. Requests go through
`chalice.test.Client` on the measuring thread, exactly as API Gateway would hand them over.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

Undo = Callable[[], None]


class CallCounter:
    def __init__(self) -> None:
        self._local = threading.local()

    def install(self) -> Undo:
        from botocore.session import Session  # noqa: PLC0415

        original = Session.create_client
        counter = self

        def create_client(session: Any, *args: Any, **kwargs: Any) -> Any:
            client = original(session, *args, **kwargs)
            client.meta.events.register("before-call", counter._count)
            return client

        setattr(Session, "create_client", create_client)  # noqa: B010
        return lambda: setattr(Session, "create_client", original)

    def _count(self, model: Any, **_: Any) -> None:
        calls = getattr(self._local, "calls", None)
        if calls is not None:
            calls.append(f"{model.service_model.service_name}:{model.name}")

    @contextmanager
    def counting(self) -> Iterator[list[str]]:
        calls: list[str] = []
        self._local.calls = calls
        try:
            yield calls
        finally:
            self._local.calls = None


# (label, method, path, body) of the operations the issue names; `{c}` is a fresh contact id.
OPERATIONS: list[tuple[str, str, str, dict[str, Any] | None]] = [
    ("POST /grants (contact_id)", "POST", "/projects/{p}/grants", {"contact_id": "{c}"}),
    ("POST /grants (email)", "POST", "/projects/{p}/grants", {"email": "{c}@acme.example"}),
    (
        "POST /grants (new_contact)",
        "POST",
        "/projects/{p}/grants",
        {"new_contact": {"email": "new-{c}@acme.example", "name": "New", "kind": "company"}},
    ),
    ("GET /grants (page of 50)", "GET", "/projects/{p}/grants?limit=50", None),
    ("GET /grants/{contact_id}", "GET", "/projects/{p}/grants/{c}", None),
]


def measure(
    app: Any, counter: CallCounter, project_id: str, contact_ids: list[str], headers: dict[str, str]
) -> list[tuple[str, int, list[str]]]:
    """`(operation, HTTP status, AWS calls)` for each operation, one fresh contact each."""
    from chalice.test import Client  # noqa: PLC0415

    measured = []
    with Client(app) as client:
        for (label, method, path, body), contact_id in zip(OPERATIONS, contact_ids, strict=True):
            url = path.format(p=project_id, c=contact_id)
            text = json.dumps(body).replace("{c}", contact_id) if body is not None else None
            with counter.counting() as calls:
                if method == "POST":
                    answer = client.http.post(
                        url, body=text, headers={**headers, "Content-Type": "application/json"}
                    )
                else:
                    answer = client.http.get(url, headers=headers)
            measured.append((label, answer.status_code, list(calls)))
    return measured
