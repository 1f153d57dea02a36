"""The ASL of the grant workflows (SPEC §3), read as data: every Jira call retries, backs off and
fails into a visible state; Lambda's own service errors are retried; a recorded failure ends
the execution without failing it (only failures nobody recorded raise the alarm)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

MACHINES = sorted((Path(__file__).resolve().parents[2] / "statemachines").glob("*.asl.json"))
LAMBDA_SERVICE_ERRORS = {
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
}


def _states(path: Path) -> dict[str, Any]:
    states: dict[str, Any] = json.loads(path.read_text())["States"]
    return states


def _tasks(path: Path) -> list[tuple[str, dict[str, Any]]]:
    return [(name, s) for name, s in _states(path).items() if s["Type"] == "Task"]


@pytest.mark.parametrize("path", MACHINES, ids=lambda p: p.stem)
def test_every_task_retries_lambda_service_errors_before_its_catch_all(path: Path) -> None:
    for name, state in _tasks(path):
        retriers = [set(r["ErrorEquals"]) for r in state["Retry"]]
        assert LAMBDA_SERVICE_ERRORS in retriers, name
        position = retriers.index(LAMBDA_SERVICE_ERRORS)
        assert retriers[-1] == {"States.ALL"}, name  # the catch-all stays last
        assert position < len(retriers) - 1, name
        lambda_retry = state["Retry"][position]
        assert lambda_retry["MaxAttempts"] >= 3, name
        assert lambda_retry["BackoffRate"] > 1, name


@pytest.mark.parametrize("path", MACHINES, ids=lambda p: p.stem)
def test_a_recorded_failure_ends_the_execution_without_failing_it(path: Path) -> None:
    states = _states(path)
    assert [s["Type"] for s in states.values() if s["Type"] == "Fail"] == []
    assert states[states["RecordFailure"]["Next"]]["Type"] == "Succeed"


@pytest.mark.parametrize("path", MACHINES, ids=lambda p: p.stem)
def test_every_failure_path_of_a_task_is_recorded(path: Path) -> None:
    # Each task but the recorder catches everything, and every catch leads to RecordFailure
    # (through the activation's take-back, or the throttle loop that ends there too)
    states = _states(path)
    for name, state in _tasks(path):
        if name == "RecordFailure":
            continue
        catches = state.get("Catch", [])
        assert any(c["ErrorEquals"] == ["States.ALL"] for c in catches), name
        for catch in catches:
            assert catch["Next"] in states, name
