"""`POST /projects/{project_id}/grant-batches`: many adds and removals in one request (207)."""

from __future__ import annotations

import json
from typing import Any

from chalice.app import Blueprint

from .. import services
from ..domain.grant_batches import BatchItem, BatchOutcome
from ..errors import InternalFault, ServiceError
from ..idempotency import run_once
from ..observability import count, logger, mask_emails_in
from . import presenters
from .grants import add_request
from .models import (
    AddGrantRequest,
    GrantBatchRequest,
    GrantBatchResponse,
    GrantBatchResult,
    ItemProblem,
)
from .problems import problem_body
from .routing import Call, Result, check_ids, operation, validated

bp = Blueprint(__name__)


def _add_item(data: Any) -> BatchItem:
    try:
        body = validated(AddGrantRequest, data)
    except ServiceError as refused:
        return BatchItem.refusing("add", refused)
    assert isinstance(body, AddGrantRequest)
    return BatchItem.adding(add_request(body))


def _remove_item(data: Any) -> BatchItem:
    try:
        check_ids({"contact_id": data})
    except ServiceError as refused:
        return BatchItem.refusing("remove", refused)
    return BatchItem.removing(data)


def _result(outcome: BatchOutcome) -> GrantBatchResult:
    error = outcome.error
    if error is None:
        assert outcome.view is not None
        view = outcome.view
        grant = presenters.grant(view)
        return GrantBatchResult(
            index=outcome.index, op=outcome.op, contact_id=grant.contact_id, status=202, grant=grant
        )
    problem = ItemProblem.model_validate(problem_body(error))
    if isinstance(error, InternalFault):
        logger.error("grant batch item failed", exc_info=error.__cause__)
    elif problem.status not in (400, 422):
        logger.info(
            "grant batch item refused",
            extra={"problem": error.code, "detail": mask_emails_in(error.message)},
        )
    return GrantBatchResult(
        index=outcome.index,
        op=outcome.op,
        contact_id=outcome.contact_id,
        status=problem.status,
        problem=problem,
    )


def _seconds_left() -> float | None:
    """The API function's remaining time (None where the context does not tell)."""
    remaining = getattr(bp.lambda_context, "get_remaining_time_in_millis", None)
    return remaining() / 1000 if callable(remaining) else None


@operation(
    bp,
    "POST",
    "/projects/{project_id}/grant-batches",
    summary=(
        "Add and remove access for many contacts: one result per item, `add` items first, each "
        "item answered as its single call (POST .../grants, DELETE .../grants/{contact_id})"
    ),
    who="project_manager, supervisor",
    request=GrantBatchRequest,
    response=GrantBatchResponse,
    status=207,
    errors=(400, 401, 403, 404, 409, 422, 503),
    headers=("Idempotency-Key",),
)
def run_batch(call: Call, project_id: str) -> Result:
    body: GrantBatchRequest = call.body
    items = [_add_item(a) for a in body.add] + [_remove_item(r) for r in body.remove]

    def run() -> dict[str, Any]:
        outcomes = services.grant_batches().run(call.user, project_id, items, _seconds_left)
        requested = sum(1 for o in outcomes if o.view is not None and o.op == "add")
        if requested:
            count("GrantsRequested", requested)
        results = [_result(o) for o in outcomes]
        return GrantBatchResponse(results=results).model_dump(mode="json")

    key = call.headers.get("idempotency-key")
    if key:
        scope = f"{call.user.sub}:{project_id}:{key}"
        data = run_once("grant-batch", scope, run, payload=json.loads(call.raw_body))
    else:
        data = run()
    return Result(GrantBatchResponse.model_validate(data), status=207)
