"""`operation`: declares one HTTP operation — route, auth, input model, response model — so that
every view parses, authenticates and fails the same way, and the OpenAPI document is generated
from the very declarations that serve the requests."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from chalice.app import Blueprint, Response
from pydantic import BaseModel, ValidationError

from ..domain.models import Principal
from ..errors import FieldError, MalformedRequest, ServiceError, ValidationFailed
from ..observability import logger, mask_emails_in
from .auth import principal_from_header
from .models import ID_RE
from .problems import problem_for

MAX_BODY_BYTES = 64 * 1024
MAX_LIMIT = 100
DEFAULT_LIMIT = 50


@dataclass(frozen=True)
class Operation:
    """What the OpenAPI document says about one route."""

    method: str
    path: str
    summary: str
    who: str
    status: int
    request: type[BaseModel] | None
    response: type[BaseModel] | None
    public: bool
    query: tuple[str, ...]
    errors: tuple[int, ...]
    headers: tuple[str, ...] = ()
    alternative: str | None = None  # another media type of the success response (CSV)


OPERATIONS: list[Operation] = []


@dataclass
class Call:
    """One parsed, authenticated request as a view receives it."""

    principal: Principal | None
    body: Any
    query: dict[str, str]
    headers: dict[str, str]
    raw_body: bytes = b""
    path_params: dict[str, str] = field(default_factory=dict)
    query_lists: dict[str, list[str]] = field(default_factory=dict)  # every value of each name

    @property
    def user(self) -> Principal:
        assert self.principal is not None  # only public operations have no principal
        return self.principal

    def limit(self) -> int:
        raw = self.query.get("limit")
        if raw is None:
            return DEFAULT_LIMIT
        # ASCII only: str.isdigit() also accepts "²", which int() then refuses (a 500).
        if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_LIMIT:
            message = f"limit must be a whole number from 1 to {MAX_LIMIT}"
            raise ValidationFailed(message, [FieldError("limit", message)])
        return int(raw)

    def cursor(self) -> str | None:
        return self.query.get("cursor") or None

    def id_filter(self, name: str) -> str | None:
        """An optional id in the query (`?contact_id=`), shaped like the ids in paths."""
        raw = self.query.get(name) or None
        if raw is not None and not ID_RE.fullmatch(raw):
            message = "ids are 1-64 characters of A-Z a-z 0-9 . _ -"
            raise ValidationFailed(f"{name} is not a valid id", [FieldError(name, message)])
        return raw

    def moment(self, name: str) -> datetime | None:
        """An optional ISO-8601 timestamp in the query (`?since=`); no offset means UTC."""
        raw = self.query.get(name) or None
        if raw is None:
            return None
        text = raw.replace("Z", "+00:00").replace("z", "+00:00")
        # An unencoded `+01:00` offset arrives as ` 01:00`: try that reading second.
        for candidate in (text, text.replace(" ", "+")):
            try:
                moment = datetime.fromisoformat(candidate)
            except ValueError:
                continue
            return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        message = "an ISO-8601 timestamp, e.g. 2026-03-01T00:00:00Z"
        raise ValidationFailed(f"{name} is not a timestamp", [FieldError(name, message)])

    def values(self, name: str) -> list[str]:
        """Every value of a repeatable query parameter (`?action=a&action=b`), in order."""
        return self.query_lists.get(name) or ([self.query[name]] if name in self.query else [])


@dataclass(frozen=True)
class Result:
    """A view's answer: a response model (or list of them) with status and extra headers, or
    `text` of `media_type` (the CSV export)."""

    body: BaseModel | None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    text: str | None = None
    media_type: str = "application/json"


class _DuplicateKey(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object's members, refusing a name given twice (parsers disagree on which wins)."""
    found: dict[str, Any] = {}
    for name, value in pairs:
        if name in found:
            raise _DuplicateKey(name)
        found[name] = value
    return found


def json_object(raw: bytes) -> dict[str, Any]:
    """A request body that must be one JSON object of at most 64 KiB, each member named once."""
    if len(raw) > MAX_BODY_BYTES:
        raise MalformedRequest(f"the body is larger than {MAX_BODY_BYTES // 1024} KiB")
    try:
        data = json.loads(raw or b"null", object_pairs_hook=_unique_keys)
    except _DuplicateKey as exc:
        raise MalformedRequest(f"the body gives the member {str(exc)[:64]!r} twice") from exc
    except (ValueError, RecursionError) as exc:
        raise MalformedRequest("the body is not valid JSON") from exc
    if not isinstance(data, dict):
        raise MalformedRequest("the body must be a JSON object")
    return data


def validated(model: type[BaseModel], data: Any) -> BaseModel:
    """A request body, already parsed from JSON, as `model`: 400 unless a JSON object, 422 with
    one error per invalid field (also each item of a grant batch, as its single call)."""
    if not isinstance(data, dict):
        raise MalformedRequest("the body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed("the request body is not valid", field_errors(exc)) from exc


def field_errors(exc: ValidationError) -> list[FieldError]:
    """One `{field, message}` per invalid field of a body pydantic refused (the 422's `errors`)."""
    return [
        FieldError(
            ".".join(str(p) for p in e["loc"]) or "body", e["msg"].removeprefix("Value error, ")
        )
        for e in exc.errors(include_url=False)
    ]


def _parse_body(raw: bytes, model: type[BaseModel]) -> BaseModel:
    return validated(model, json_object(raw))


def check_ids(params: dict[str, Any]) -> None:
    """Ids in a path (or a grant batch's removals): 400 unless each is `[A-Za-z0-9._-]{1,64}`."""
    # fullmatch: `$` alone also matches before a trailing newline, which API Gateway passes on
    # once it has decoded `%0A` in a path.
    bad = [n for n, v in params.items() if not (isinstance(v, str) and ID_RE.fullmatch(v))]
    if bad:
        errors = [FieldError(n, "ids are 1-64 characters of A-Z a-z 0-9 . _ -") for n in bad]
        raise MalformedRequest("the path has an invalid id", errors)


def operation(
    blueprint: Blueprint,
    method: str,
    path: str,
    *,
    summary: str,
    who: str,
    status: int = 200,
    request: type[BaseModel] | None = None,
    response: type[BaseModel] | None = None,
    public: bool = False,
    query: tuple[str, ...] = (),
    errors: tuple[int, ...] = (),
    headers: tuple[str, ...] = (),
    alternative: str | None = None,
    raw_request: bool = False,
) -> Callable[[Callable[..., Result]], Callable[..., Response]]:
    """Declare one operation. `raw_request`: `request` only documents the body; the view reads
    `call.raw_body` itself (a signed webhook verifies the bytes before anything parses them)."""
    OPERATIONS.append(
        Operation(
            method,
            path,
            summary,
            who,
            status,
            request,
            response,
            public,
            query,
            errors,
            headers,
            alternative,
        )
    )

    def register(view: Callable[..., Result]) -> Callable[..., Response]:
        @functools.wraps(view)
        def handle(**path_params: str) -> Response:
            current = blueprint.current_request
            try:
                check_ids(path_params)
                headers_in = {k.lower(): v for k, v in (current.headers or {}).items()}
                principal = (
                    None if public else principal_from_header(headers_in.get("authorization"))
                )
                raw = current.raw_body or b""
                raw = raw if isinstance(raw, bytes) else raw.encode()
                body = _parse_body(raw, request) if request and not raw_request else None
                params = current.query_params
                lists = {k: list(params.getlist(k)) for k in params} if params else {}
                query = dict(params or {})
                call = Call(principal, body, query, headers_in, raw, path_params, lists)
                result = view(call, **path_params)
            except ServiceError as error:
                if not isinstance(error, MalformedRequest | ValidationFailed):
                    logger.info(
                        "request refused",
                        extra={"problem": error.code, "detail": mask_emails_in(error.message)},
                    )
                return problem_for(error)
            if result.text is not None:
                return Response(
                    body=result.text,
                    status_code=result.status,
                    headers={"Content-Type": result.media_type, **result.headers},
                )
            payload = result.body.model_dump(mode="json") if result.body is not None else None
            return Response(
                body=json.dumps(payload) if payload is not None else "",
                status_code=result.status,
                headers={"Content-Type": "application/json", **result.headers},
            )

        blueprint.route(path, methods=[method])(handle)
        return handle

    return register
