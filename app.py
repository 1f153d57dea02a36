"""Entry points only: the Chalice app, its API, the workflow tasks and the scheduled sweeper."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from chalice.app import Chalice, ConvertToMiddleware, Rate

from chalicelib.api import register_api
from chalicelib.config import get_settings
from chalicelib.idempotency import remember_lambda_context
from chalicelib.observability import logger, metrics, tracer
from chalicelib.workflows.tasks import drift, run_step, sweep

# Outside the local stage a function missing a secret, table or state machine setting fails
# here, at its cold start, with a SettingsError naming them (chalicelib/config.py).
get_settings()

app = Chalice(app_name="helpdesk-access")
# Every entry point logs JSON with the Lambda context (the API's request id as correlation id),
# flushes its metrics and is traced.
app.register_middleware(
    ConvertToMiddleware(
        logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
    )
)
app.register_middleware(ConvertToMiddleware(metrics.log_metrics))
app.register_middleware(ConvertToMiddleware(tracer.capture_lambda_handler))
app.register_middleware(ConvertToMiddleware(remember_lambda_context))
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


@app.lambda_function(name="undo_activation")
def undo_activation(event: Event, context: Any) -> Event:
    return run_step("undo_activation", event)


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


@app.schedule(Rate(1, unit=Rate.DAYS), name="check_drift")
def check_drift(event: Any) -> Event:
    return drift()
