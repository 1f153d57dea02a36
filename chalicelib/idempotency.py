"""Run-once guards on the idempotency table (Powertools idempotency), for API requests carrying an
`Idempotency-Key` and for side effects a retried workflow step must not repeat (emails)."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache, lru_cache
from typing import Any

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyValidationError,
)

from .aws import client
from .config import get_settings
from .errors import Conflict, FieldError, ValidationFailed

Guarded = Callable[..., Any]


@lru_cache(maxsize=1)
def _persistence() -> DynamoDBPersistenceLayer:
    return DynamoDBPersistenceLayer(
        table_name=get_settings().idempotency_table, boto3_client=client("dynamodb")
    )


@cache
def _guard(name: str, payload_path: str | None, ttl_seconds: int) -> Guarded:
    config = IdempotencyConfig(
        event_key_jmespath="key",
        payload_validation_jmespath=payload_path or "",
        expires_after_seconds=ttl_seconds,
        raise_on_no_idempotency_key=True,
    )

    @idempotent_function(  # type: ignore[untyped-decorator]
        data_keyword_argument="data",
        persistence_store=_persistence(),
        config=config,
        key_prefix=name,
    )
    def guarded(data: dict[str, Any], compute: Callable[[], Any]) -> Any:
        return compute()

    guarded_function: Guarded = guarded
    return guarded_function


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
    guarded = _guard(name, "payload" if payload is not None else None, ttl_seconds)
    try:
        return guarded(data={"key": key, "payload": payload}, compute=compute)
    except IdempotencyValidationError as exc:
        message = "this Idempotency-Key was already used with another request body"
        raise ValidationFailed(message, [FieldError("Idempotency-Key", message)]) from exc
    except IdempotencyAlreadyInProgressError as exc:
        raise Conflict(
            "a request with this Idempotency-Key is still in progress", retry_after=1
        ) from exc
