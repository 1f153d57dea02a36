"""Entry points only: the Chalice app, its API, the workflow tasks and the scheduled sweeper."""

from __future__ import annotations

from typing import Any

from chalice.app import Chalice, Rate

from chalicelib.api import register_api
from chalicelib.workflows.tasks import run_step, sweep

app = Chalice(app_name="helpdesk-access")
register_api(app)

Event = dict[str, Any]


# --- grant activation tasks (statemachines/grant-activation.asl.json) ----------------------


@app.lambda_function(name="ensure_customer")
def ensure_customer(event: Event, context: Any) -> Event:
    return run_step("ensure_customer", event)


@app.lambda_function(name="add_to_service_desk")
def add_to_service_desk(event: Event, context: Any) -> Event:
    return run_step("add_to_service_desk", event)


@app.lambda_function(name="add_to_organization")
def add_to_organization(event: Event, context: Any) -> Event:
    return run_step("add_to_organization", event)


@app.lambda_function(name="complete_activation")
def complete_activation(event: Event, context: Any) -> Event:
    return run_step("complete_activation", event)


# --- grant removal tasks (statemachines/grant-removal.asl.json) ----------------------------


@app.lambda_function(name="leave_organization")
def leave_organization(event: Event, context: Any) -> Event:
    return run_step("leave_organization", event)


@app.lambda_function(name="leave_service_desk")
def leave_service_desk(event: Event, context: Any) -> Event:
    return run_step("leave_service_desk", event)


@app.lambda_function(name="complete_removal")
def complete_removal(event: Event, context: Any) -> Event:
    return run_step("complete_removal", event)


# --- shared by both workflows ----------------------------------------------------------------


@app.lambda_function(name="record_failure")
def record_failure(event: Event, context: Any) -> Event:
    return run_step("record_failure", event)


# --- housekeeping -----------------------------------------------------------------------------


@app.schedule(Rate(5, unit=Rate.MINUTES), name="sweep_stalled_grants")
def sweep_stalled_grants(event: Any) -> Event:
    return sweep()
