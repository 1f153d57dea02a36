"""A function's cold start imports only what its entry point serves (issue 12, item 4).

Each check runs a fresh interpreter with `_HANDLER` set as Lambda sets it and lists what the
entry point imported. `make bench` measures the time (infra/measure_import.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from chalicelib.config import REQUIRED_OUTSIDE_LOCAL
from infra.measure_import import ENTRY_POINTS

ROOT = Path(__file__).resolve().parents[2]
# pydantic is not among them: every function validates its settings with it at cold start
# (issue 11, chalicelib/config.py), and the domain events are pydantic models.
API_ONLY = ("chalicelib.api", "chalicelib.api.models", "jwt")
NEVER = ("aws_xray_sdk", "aws_lambda_powertools.tracing.tracer_xray")


def imported_by(statement: str, handler: str | None) -> dict[str, object]:
    """`{"modules": [...], "routes": n}` after `statement` in a fresh interpreter."""
    # A deployed stage's environment: the settings the template gives every function.
    given = {name: f"probe-{name.lower()}" for name in REQUIRED_OUTSIDE_LOCAL}
    env = {**os.environ, **given, "HELPDESK_STAGE": "dev"}
    env.pop("_HANDLER", None)
    if handler is not None:
        env["_HANDLER"] = handler
    probe = (
        f"{statement}; import json, sys, app; "
        "print(json.dumps({'modules': sorted(sys.modules), 'routes': len(app.app.routes)}))"
    )
    answer = subprocess.run(  # noqa: S603 - our own interpreter, fixed statements
        [sys.executable, "-c", probe],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
    )
    found: dict[str, object] = json.loads(answer.stdout.splitlines()[-1])
    return found


def test_a_jira_task_does_not_import_the_api() -> None:
    # Given a workflow task function (Lambda sets _HANDLER=app.ensure_customer)
    entry = ENTRY_POINTS["Jira task (ensure_customer)"]
    assert entry is not None
    # When it imports what its first call imports
    found = imported_by(entry.statement, entry.handler)
    # Then neither the API, its models and JWT, nor the X-Ray SDK were loaded
    modules = set(found["modules"])  # type: ignore[call-overload]
    assert modules & {*API_ONLY, *NEVER} == set()
    assert "chalicelib.workflows.tasks" in modules
    assert found["routes"] == 0


def test_the_api_does_not_import_the_workflow_tasks_or_xray() -> None:
    entry = ENTRY_POINTS["API (api_handler)"]
    assert entry is not None
    found = imported_by(entry.statement, entry.handler)
    modules = set(found["modules"])  # type: ignore[call-overload]
    assert "chalicelib.workflows.tasks" not in modules
    assert modules & set(NEVER) == set()
    assert found["routes"]  # the API is served


def test_an_api_call_does_not_import_the_jira_client() -> None:
    entry = ENTRY_POINTS["API (api_handler)"]
    assert entry is not None
    modules = set(imported_by(entry.statement, entry.handler)["modules"])  # type: ignore[call-overload]
    assert {"chalicelib.jira", "chalicelib.jira.client", "requests"} & modules == set()


def test_outside_lambda_every_route_is_registered() -> None:
    # Given no _HANDLER (chalice package, chalice local, the tests) / Then the API is there
    found = imported_by("import app", None)
    assert found["routes"]


def test_every_kind_of_entry_point_is_measured() -> None:
    # Given the app's functions
    from chalice.app import SQSEventConfig  # noqa: PLC0415

    import app  # noqa: PLC0415

    # Then each measured entry point exists, and an HR consumer is measured once it does
    for name, entry in ENTRY_POINTS.items():
        if entry is None:
            continue
        attribute = entry.handler.removeprefix("app.")
        assert hasattr(app, attribute), name
    consumers = [s for s in app.app.event_sources if isinstance(s, SQSEventConfig)]
    assert bool(consumers) == (ENTRY_POINTS["HR consumer"] is not None)
