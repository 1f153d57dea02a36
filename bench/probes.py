"""What the bench counts inside the local stack: AWS requests reaching moto, task invocations.

Both patch the local stack only (moto's request handling, the app's handler map), never the
app's code paths: the app talks to moto over HTTP exactly as it talks to AWS.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Undo = Callable[[], None]


@dataclass(frozen=True)
class AwsRequest:
    """One AWS API request moto answered: the service, the action and what billing needs."""

    service: str
    action: str
    status: int
    response_bytes: int
    params: dict[str, Any] = field(default_factory=dict)
    entries: int = 1  # PutEvents: events in the request
    seconds: float = 0.0  # time moto spent answering it (in-process, after parsing the request)


class AwsRequestLog:
    """Records every request the in-process moto server dispatches (all services, all callers).

    It wraps `BaseResponse.call_action`, which every moto service handler goes through after
    parsing the request: DynamoDB's parsed parameters (table, items, ConsistentRead) are kept so
    the cost model can turn requests into read and write request units.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: list[AwsRequest] = []

    def install(self) -> Undo:
        from moto.core.responses import BaseResponse  # noqa: PLC0415

        original = BaseResponse.call_action
        log = self

        def call_action(handler: Any) -> Any:
            started = time.perf_counter()
            try:
                result = original(handler)
            except Exception:  # moto's own failure: the client sees a 500
                log._record(handler, (500, {}, b""), time.perf_counter() - started)
                raise
            log._record(handler, result, time.perf_counter() - started)
            return result

        setattr(BaseResponse, "call_action", call_action)  # noqa: B010

        def undo() -> None:
            setattr(BaseResponse, "call_action", original)  # noqa: B010

        return undo

    def _record(self, handler: Any, result: Any, seconds: float) -> None:
        try:
            status, _headers, body = result
            service = str(handler.service_name or "")
            action = str(handler._get_action() or "")
            params: dict[str, Any] = {}
            entries = 1
            if service == "dynamodb":
                params = dict(getattr(handler, "body", None) or {})
            elif service == "events" and action == "PutEvents":
                entries = len(handler._get_param("Entries") or []) or 1
            size = len(body) if isinstance(body, str | bytes) else 0
            request = AwsRequest(service, action, int(status), size, params, entries, seconds)
        except Exception:  # a request the probe cannot read must not break moto's answer
            return
        with self._lock:
            self._requests.append(request)

    def mark(self) -> int:
        """A position in the log; `since(mark)` returns what was recorded after it."""
        with self._lock:
            return len(self._requests)

    def since(self, mark: int) -> list[AwsRequest]:
        with self._lock:
            return list(self._requests[mark:])

    def server_errors(self, mark: int = 0) -> list[AwsRequest]:
        """Requests moto itself failed on (5xx) since `mark`."""
        return [r for r in self.since(mark) if r.status >= 500]


@dataclass(frozen=True)
class TaskRun:
    """One workflow task Lambda invocation, timed in-process."""

    name: str
    seconds: float
    failed: bool


class TaskTimer:
    """Wraps the app's workflow task handlers (what moto's Lambda invoke calls) with a timer."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: list[TaskRun] = []

    def install(self, app: Any, names: list[str]) -> Undo:
        originals = {name: app.handler_map[name] for name in names}
        for name, handler in originals.items():
            app.handler_map[name] = self._timed(name, handler)

        def undo() -> None:
            app.handler_map.update(originals)

        return undo

    def _timed(self, name: str, handler: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
        def timed(event: Any, context: Any) -> Any:
            started = time.perf_counter()
            failed = True
            try:
                result = handler(event, context)
                failed = False
                return result
            finally:
                run = TaskRun(name, time.perf_counter() - started, failed)
                with self._lock:
                    self._runs.append(run)

        return timed

    def mark(self) -> int:
        with self._lock:
            return len(self._runs)

    def since(self, mark: int) -> list[TaskRun]:
        with self._lock:
            return list(self._runs[mark:])
