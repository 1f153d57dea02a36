"""Entry points only: the Chalice app, its API, the workflow tasks and the scheduled jobs.

Every Lambda function of the service loads this module, so it imports only what all of them
share; the code behind an entry point is imported when that entry point first runs. A workflow
task's cold start therefore never pays for the API's models and JWT, and the API's never for the
workflow tasks (measured by `make bench`, docs/performance.md).
"""

from __future__ import annotations

import gc

# No cyclic garbage collection while this function's modules load (here, and in the modules a
# handler imports on its first call): importing makes next to no garbage, yet the collections
# its allocations trigger cost ~0.1 s of every cold start (measured, docs/decisions.md "Cold
# start"). Once loaded, the modules' objects are frozen (they live as long as the process):
# later collections skip them, and resuming does not start with a collection of them all.
_COLLECTING = gc.isenabled()
gc.disable()

import os  # noqa: E402
from typing import Any  # noqa: E402

from aws_lambda_powertools.logging import correlation_paths  # noqa: E402
from chalice.app import Chalice, ConvertToMiddleware, Rate  # noqa: E402

from chalicelib.config import get_settings  # noqa: E402
from chalicelib.idempotency import remember_lambda_context  # noqa: E402
from chalicelib.observability import logger, metrics  # noqa: E402

# Outside the local stage a function missing a secret, table or state machine setting fails
# here, at its cold start, with a SettingsError naming them (chalicelib/config.py).
get_settings()

app = Chalice(app_name="helpdesk-access")
# Every entry point logs JSON with the Lambda context (the API's request id as correlation id)
# and flushes its metrics. Traces come from Lambda's and Step Functions' active tracing: the
# X-Ray SDK cost ~0.15 s of every cold start (docs/decisions.md).
app.register_middleware(
    ConvertToMiddleware(
        logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
    )
)
app.register_middleware(ConvertToMiddleware(metrics.log_metrics))
app.register_middleware(ConvertToMiddleware(remember_lambda_context))

API_HANDLER = "app.app"  # the handler `chalice package` gives the API function


def serves_http() -> bool:
    """False only in a deployed function whose handler is not the API (Lambda sets `_HANDLER`).

    Chalice needs the routes when it packages the app and when it serves it locally; a task or
    schedule function never routes a request, so it skips importing the API altogether.
    """
    return os.environ.get("_HANDLER", API_HANDLER) == API_HANDLER


if serves_http():
    from chalicelib.api import register_api

    register_api(app)

gc.freeze()  # see the top of this module
if _COLLECTING:
    gc.enable()

Event = dict[str, Any]


def _step(name: str, event: Event) -> Event:
    from chalicelib.workflows.tasks import run_step  # noqa: PLC0415 - imported by tasks only

    return run_step(name, event)


# --- grant activation tasks (statemachines/grant-activation.asl.json) ----------------------


@app.lambda_function(name="ensure_customer")
def ensure_customer(event: Event, context: Any) -> Event:
    return _step("ensure_customer", event)


@app.lambda_function(name="add_to_service_desk")
def add_to_service_desk(event: Event, context: Any) -> Event:
    return _step("add_to_service_desk", event)


@app.lambda_function(name="add_to_organization")
def add_to_organization(event: Event, context: Any) -> Event:
    return _step("add_to_organization", event)


@app.lambda_function(name="complete_activation")
def complete_activation(event: Event, context: Any) -> Event:
    return _step("complete_activation", event)


@app.lambda_function(name="undo_activation")
def undo_activation(event: Event, context: Any) -> Event:
    return _step("undo_activation", event)


# --- grant removal tasks (statemachines/grant-removal.asl.json) ----------------------------


@app.lambda_function(name="leave_organization")
def leave_organization(event: Event, context: Any) -> Event:
    return _step("leave_organization", event)


@app.lambda_function(name="leave_service_desk")
def leave_service_desk(event: Event, context: Any) -> Event:
    return _step("leave_service_desk", event)


@app.lambda_function(name="complete_removal")
def complete_removal(event: Event, context: Any) -> Event:
    return _step("complete_removal", event)


# --- shared by both workflows ----------------------------------------------------------------


@app.lambda_function(name="record_failure")
def record_failure(event: Event, context: Any) -> Event:
    return _step("record_failure", event)


# --- housekeeping -----------------------------------------------------------------------------


@app.schedule(Rate(5, unit=Rate.MINUTES), name="sweep_stalled_grants")
def sweep_stalled_grants(event: Any) -> Event:
    from chalicelib.workflows.tasks import sweep  # noqa: PLC0415 - imported by this job only

    return sweep()


# Every minute: a grant is being removed within 2 minutes of its `expires_at` (SPEC §2).
@app.schedule(Rate(1, unit=Rate.MINUTES), name="expire_grants")
def expire_grants(event: Any) -> Event:
    from chalicelib.workflows.tasks import expire  # noqa: PLC0415 - imported by this job only

    return expire()


# Every minute: a review's undecided grants are removed (and it closes) at its `due_at`.
@app.schedule(Rate(1, unit=Rate.MINUTES), name="close_due_reviews")
def close_due_reviews(event: Any) -> Event:
    from chalicelib.workflows.tasks import close_due_reviews as run  # noqa: PLC0415 - this job only

    return run()


# Every minute: an access request still pending at its `expires_at` expires.
@app.schedule(Rate(1, unit=Rate.MINUTES), name="expire_access_requests")
def expire_access_requests(event: Any) -> Event:
    from chalicelib.workflows.tasks import expire_access_requests as run  # noqa: PLC0415

    return run()


# --- identity sources (SPEC §4) --------------------------------------------------------------


# The HR queue: HR events (webhook or straight from an HR integration) and the follow-up rounds
# of a revocation. The template points the event source at the stack's queue, whatever the name.
@app.on_sqs_message(queue=get_settings().hr_queue_name, batch_size=10, name="hr_events")
def hr_events(event: Any) -> Event:
    from chalicelib.hr.consumer import handle_batch  # noqa: PLC0415 - imported by this consumer

    return handle_batch(event.to_dict(), event.context)


@app.schedule(Rate(1, unit=Rate.DAYS), name="check_drift")
def check_drift(event: Any) -> Event:
    from chalicelib.workflows.tasks import drift  # noqa: PLC0415 - imported by this job only

    return drift()
