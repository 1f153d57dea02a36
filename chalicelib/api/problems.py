"""RFC 9457 problem responses: the one place errors become HTTP."""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

from chalice.app import Response

from ..errors import (
    Conflict,
    ContactOffboarded,
    DependencyUnavailable,
    FieldError,
    Forbidden,
    MalformedRequest,
    NotFound,
    ServiceError,
    StaleState,
    TooLarge,
    TooManyRequests,
    Unauthorized,
    ValidationFailed,
    WriteConflict,
)

PROBLEM_JSON = "application/problem+json"

STATUS_OF: dict[type[ServiceError], int] = {
    MalformedRequest: 400,
    Unauthorized: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    StaleState: 409,
    WriteConflict: 409,
    TooLarge: 413,
    ValidationFailed: 422,
    TooManyRequests: 429,
    DependencyUnavailable: 503,
}

# Errors with a problem type of their own (SPEC §2), rather than the one of their status.
OWN_TYPE: tuple[type[ServiceError], ...] = (ContactOffboarded,)

SLUG_OF_STATUS = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    409: "conflict",
    413: "payload-too-large",
    415: "unsupported-media-type",
    422: "validation-error",
    429: "too-many-requests",
    500: "internal-error",
    503: "service-unavailable",
}


def problem(
    status: int,
    detail: str,
    *,
    errors: list[FieldError] | None = None,
    headers: dict[str, str] | None = None,
    slug: str | None = None,
) -> Response:
    body = _document(status, detail, errors, slug)
    return Response(
        body=json.dumps(body),
        status_code=status,
        headers={"Content-Type": PROBLEM_JSON, **(headers or {})},
    )


def _document(
    status: int, detail: str, errors: list[FieldError] | None, slug: str | None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": f"/problems/{slug or SLUG_OF_STATUS.get(status, 'error')}",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    if errors is not None:
        body["errors"] = [{"field": e.field, "message": e.message} for e in errors]
    return body


def problem_for(error: ServiceError) -> Response:
    status, headers, errors, slug = _problem_parts(error)
    return problem(status, error.message, errors=errors, headers=headers, slug=slug)


def problem_body(error: ServiceError) -> dict[str, Any]:
    """The problem `error` makes, as a JSON object (a grant batch item's `problem`); a
    `Retry-After` its own response would carry is the extension member `retry_after`."""
    status, headers, errors, slug = _problem_parts(error)
    body = _document(status, error.message, errors, slug)
    if "Retry-After" in headers:
        body["retry_after"] = int(headers["Retry-After"])
    return body


def _problem_parts(
    error: ServiceError,
) -> tuple[int, dict[str, str], list[FieldError] | None, str | None]:
    status = next((s for cls, s in STATUS_OF.items() if isinstance(error, cls)), 500)
    headers: dict[str, str] = {}
    retry_after = getattr(error, "retry_after", None)
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    if isinstance(error, Unauthorized):
        headers["WWW-Authenticate"] = 'Bearer realm="helpdesk-access"'
    errors = getattr(error, "errors", None)
    if status == 422 and errors is None:
        errors = []
    slug = error.code if isinstance(error, OWN_TYPE) else None
    return status, headers, errors, slug


def as_problem(response: Response) -> Response:
    """Chalice's own error responses (`{"Code", "Message"}`: 405, 415, 500…) as problems."""
    if response.status_code < 400 or response.headers.get("Content-Type") == PROBLEM_JSON:
        return response
    body = response.body
    if isinstance(body, str | bytes):
        try:
            body = json.loads(body)
        except ValueError:
            body = {}
    detail = body.get("Message") or body.get("message") if isinstance(body, dict) else None
    if response.status_code >= 500:
        detail = "An internal error occurred; it has been logged."
    extra = {
        k: str(v) for k, v in response.headers.items() if k.lower() in {"allow", "retry-after"}
    }
    return problem(
        response.status_code, str(detail or HTTPStatus(response.status_code).phrase), headers=extra
    )
