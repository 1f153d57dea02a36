"""Run-once guards on the idempotency table (Powertools idempotency), for API requests carrying an
`Idempotency-Key` and for side effects a retried workflow step must not repeat (emails)."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

from .aws import client
from .config import get_settings
from .errors import Conflict, FieldError, ValidationFailed

Handler = Callable[[Any, Any], Any]

# The Lambda context of the invocation running on this thread: Powertools uses its remaining time
# to expire an "in progress" record, so a crashed invocation does not block its retry for a day.
_invocation = threading.local()


def remember_lambda_context(handler: Handler) -> Handler:
    """Chalice middleware (via `ConvertToMiddleware`) making the context known to `run_once`."""

    @functools.wraps(handler)
    def wrapper(event: Any, context: Any) -> Any:
        _invocation.context = context
        try:
            return handler(event, context)
        finally:
            _invocation.context = None

    return wrapper


def run_once(
    name: str,
    key: str,
    compute: Callable[[], Any],
    *,
    payload: Any = None,
    ttl_seconds: int = 24 * 3600,
) -> Any:
    """`compute()` once per (`name`, `key`); a repeat returns the first result (JSON-able).

    With `payload`, a repeat carrying another payload under the same key is refused (422), and a
    repeat arriving while the first is still running gets a 409.
    """
    # Imported on first use: every entry point loads this module for its middleware, few guard.
    from aws_lambda_powertools.utilities.idempotency import (  # noqa: PLC0415
        DynamoDBPersistenceLayer,
        IdempotencyConfig,
        idempotent_function,
    )
    from aws_lambda_powertools.utilities.idempotency.exceptions import (  # noqa: PLC0415
        IdempotencyAlreadyInProgressError,
        IdempotencyValidationError,
    )

    config = IdempotencyConfig(
        event_key_jmespath="key",
        payload_validation_jmespath="payload" if payload is not None else "",
        expires_after_seconds=ttl_seconds,
        raise_on_no_idempotency_key=True,
    )
    context = getattr(_invocation, "context", None)
    if context is not None:
        config.register_lambda_context(context)
    # A persistence layer per guard: Powertools configures one for the first config it sees.
    persistence = DynamoDBPersistenceLayer(
        table_name=get_settings().idempotency_table, boto3_client=client("dynamodb")
    )

    @idempotent_function(  # type: ignore[untyped-decorator]
        data_keyword_argument="data",
        persistence_store=persistence,
        config=config,
        key_prefix=name,
    )
    def guarded(data: dict[str, Any], compute: Callable[[], Any]) -> Any:
        return compute()

    try:
        return guarded(data={"key": key, "payload": payload}, compute=compute)
    except IdempotencyValidationError as exc:
        message = "this Idempotency-Key was already used with another request body"
        raise ValidationFailed(message, [FieldError("Idempotency-Key", message)]) from exc
    except IdempotencyAlreadyInProgressError as exc:
        raise Conflict(
            "a request with this Idempotency-Key is still in progress", retry_after=1
        ) from exc
