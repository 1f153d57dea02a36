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

import pytest

from chalicelib.config import REQUIRED_OUTSIDE_LOCAL
from infra.measure_import import ENTRY_POINTS, lambda_like_paths

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
        f"{statement}; import gc, json, sys, app; "
        "print(json.dumps({'modules': sorted(sys.modules), 'routes': len(app.app.routes), "
        "'collecting': gc.isenabled(), 'frozen': gc.get_freeze_count()}))"
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


SCIM_LIBRARIES = {"scim2_models", "scim2_filter_parser", "lark", "sly"}


def test_the_api_imports_the_scim_libraries_only_for_a_scim_request() -> None:
    # Given the API function (scim2-models builds its pydantic models at import: ~0.5 s)
    entry = ENTRY_POINTS["API (api_handler)"]
    assert entry is not None
    # When it starts / Then none of the SCIM libraries is loaded
    modules = set(imported_by(entry.statement, entry.handler)["modules"])  # type: ignore[call-overload]
    assert modules & SCIM_LIBRARIES == set()
    # ...but a SCIM request's handler finds them
    scim = imported_by(entry.statement + "; import chalicelib.api.scim_resources", entry.handler)
    assert set(scim["modules"]) >= SCIM_LIBRARIES  # type: ignore[call-overload]


@pytest.mark.parametrize("name", [n for n, e in ENTRY_POINTS.items() if e is not None])
def test_a_cold_start_loads_without_collecting_then_collects_again(name: str) -> None:
    # Given an entry point (GC paused while its modules load: app.py, workflows/tasks.py)
    entry = ENTRY_POINTS[name]
    assert entry is not None
    # When it has imported what its first call imports
    found = imported_by(entry.statement, entry.handler)
    # Then the loaded modules are frozen out of the collector, which runs again afterwards
    assert found["frozen"]
    assert found["collecting"] is True


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


# Counts the modules Python compiles from source: a .pyc it can use is loaded without this.
COMPILES_SPY = """
import importlib._bootstrap_external as loading
compiled = []
_original = loading.SourceLoader.source_to_code
def _spy(self, data, path, *, _optimize=-1):
    compiled.append(path)
    return _original(self, data, path, _optimize=_optimize)
loading.SourceLoader.source_to_code = _spy
"""


@pytest.mark.parametrize("name", [n for n, e in ENTRY_POINTS.items() if e is not None])
def test_a_cold_start_loads_the_shipped_bytecode_and_compiles_nothing(name: str) -> None:
    # Given the task root as the zip ships it (a .pyc beside each module, infra.synth), whose
    # sources no longer carry the mtimes they were compiled with (Lambda unzips them anew)
    entry = ENTRY_POINTS[name]
    assert entry is not None
    given = {variable: f"probe-{variable.lower()}" for variable in REQUIRED_OUTSIDE_LOCAL}
    env = {**os.environ, **given, "HELPDESK_STAGE": "dev", "_HANDLER": entry.handler}
    with lambda_like_paths(bytecode=True) as paths:
        task_root = Path(paths[0])
        for source in task_root.rglob("*.py"):
            os.utime(source)
        # When the entry point cold-starts in a Lambda-like interpreter
        probe = (
            f"import sys; sys.path[:0] = {paths!r}\n{COMPILES_SPY}\n{entry.statement}\n"
            "import json; print(json.dumps([p for p in compiled if p.startswith(sys.path[0])]))"
        )
        answer = subprocess.run(  # noqa: S603 - our own interpreter, fixed statements
            [sys.executable, "-I", "-S", "-B", "-c", probe],
            check=True,
            capture_output=True,
            text=True,
            cwd=task_root,
            env=env,
        )
    # Then no module of the zip was compiled: all came from their .pyc
    assert json.loads(answer.stdout.splitlines()[-1]) == []
