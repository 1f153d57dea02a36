"""`/scim/v2`: SCIM 2.0 Users for a company's identity provider (SPEC §4), authenticated by the
company's SCIM token (not the console's JWT), answering `application/scim+json` and SCIM errors.

The SCIM libraries are imported by each handler on its first call (`scim_resources`), so no
other API call pays for them. These routes are not in openapi.json: SCIM describes itself at
`ServiceProviderConfig`, `ResourceTypes` and `Schemas` (docs/decisions.md).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any

from chalice.app import Blueprint, Response

from .. import services
from ..domain.models import ScimToken
from ..errors import (
    Conflict,
    DependencyUnavailable,
    EmailTaken,
    Forbidden,
    MalformedRequest,
    NotFound,
    ServiceError,
    StaleState,
    TooLarge,
    Unauthorized,
    ValidationFailed,
    WriteConflict,
)
from ..observability import logger
from .auth import bearer_token
from .models import ID_RE
from .routing import json_object

bp = Blueprint(__name__)

PREFIX = "/scim/v2"
SCIM_JSON = "application/scim+json"
CONTENT_TYPES = [SCIM_JSON, "application/json"]
Handler = Callable[..., tuple[int, dict[str, Any] | None]]

# (error class, HTTP status, scimType): the first that matches wins.
_ERRORS: list[tuple[type[ServiceError], int, str | None]] = [
    (EmailTaken, 409, "uniqueness"),
    (MalformedRequest, 400, "invalidSyntax"),
    (ValidationFailed, 400, "invalidValue"),
    (Unauthorized, 401, None),
    (Forbidden, 403, None),
    (NotFound, 404, None),
    (Conflict, 409, None),
    (StaleState, 409, None),
    (WriteConflict, 409, None),
    (TooLarge, 413, None),
    (DependencyUnavailable, 503, None),
]


def error_response(
    status: int, detail: str, scim_type: str | None = None, **headers: str
) -> Response:
    body: dict[str, Any] = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
        "status": str(status),
        "detail": detail,
    }
    if scim_type:
        body["scimType"] = scim_type
    return Response(
        body=json.dumps(body), status_code=status, headers={"Content-Type": SCIM_JSON, **headers}
    )


def _from_service_error(error: ServiceError) -> Response:
    status, scim_type = next(
        ((s, t) for cls, s, t in _ERRORS if isinstance(error, cls)), (500, None)
    )
    detail = error.message
    field_errors = getattr(error, "errors", None)
    if field_errors:
        detail += ": " + "; ".join(f"{e.field}: {e.message}" for e in field_errors)
    headers: dict[str, str] = {}
    if isinstance(error, Unauthorized):
        headers["WWW-Authenticate"] = 'Bearer realm="scim"'
    retry_after = getattr(error, "retry_after", None)
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return error_response(status, detail, scim_type, **headers)


def as_scim_error(response: Response) -> Response:
    """Chalice's own errors on a SCIM path (405, 415, 500) in the SCIM error schema."""
    if response.status_code < 400 or response.headers.get("Content-Type") == SCIM_JSON:
        return response
    if response.status_code >= 500:
        return error_response(
            response.status_code, "An internal error occurred; it has been logged."
        )
    return error_response(response.status_code, "The request is not supported here.")


class Scim:
    """One authenticated SCIM request as a handler sees it."""

    def __init__(self, token: ScimToken, body: bytes, query: dict[str, str], base_url: str) -> None:
        self.token = token
        self._body = body
        self.query = query
        self.base_url = base_url

    def json(self) -> dict[str, Any]:
        return json_object(self._body)


def _base_url(headers: dict[str, str], context: dict[str, Any]) -> str:
    scheme = headers.get("x-forwarded-proto", "http")
    host = headers.get("host", "localhost")
    stage = context.get("stage")
    # Behind API Gateway the path starts with the stage (`/api/scim/v2/...`).
    prefix = f"/{stage}" if stage and str(context.get("path", "")).startswith(f"/{stage}/") else ""
    return f"{scheme}://{host}{prefix}{PREFIX}"


def scim_route(
    path: str, method: str, *, ids: bool = True
) -> Callable[[Handler], Callable[..., Response]]:
    def register(view: Handler) -> Callable[..., Response]:
        @functools.wraps(view)
        def handle(**params: str) -> Response:
            from . import scim_resources  # noqa: PLC0415 - the SCIM libraries, on first use

            request = bp.current_request
            headers = {k.lower(): v for k, v in (request.headers or {}).items()}
            try:
                if ids and any(not ID_RE.fullmatch(v) for v in params.values()):
                    raise NotFound("not found")
                secret = bearer_token(headers.get("authorization"))
                token = services.scim_tokens().authenticate(secret)
                raw = request.raw_body or b""
                call = Scim(
                    token,
                    raw if isinstance(raw, bytes) else raw.encode(),
                    dict(request.query_params or {}),
                    _base_url(headers, request.context or {}),
                )
                status, body = view(call, **params)
            except scim_resources.InvalidScim as error:
                return error_response(error.status, error.detail, error.scim_type)
            except ServiceError as error:
                if not isinstance(error, MalformedRequest | ValidationFailed | Unauthorized):
                    logger.info("scim request refused", extra={"problem": error.code})
                return _from_service_error(error)
            if body is None:
                return Response(body="", status_code=status)
            return Response(
                body=json.dumps(body), status_code=status, headers={"Content-Type": SCIM_JSON}
            )

        bp.route(PREFIX + path, methods=[method], content_types=CONTENT_TYPES)(handle)
        return handle

    return register


def _resources() -> Any:
    from . import scim_resources  # noqa: PLC0415 - imported by SCIM requests only

    return scim_resources


# --- discovery --------------------------------------------------------------------------------


@scim_route("/ServiceProviderConfig", "GET")
def service_provider_config(call: Scim) -> tuple[int, dict[str, Any]]:
    return 200, _resources().service_provider_config(call.base_url)


@scim_route("/ResourceTypes", "GET")
def resource_types(call: Scim) -> tuple[int, dict[str, Any]]:
    r = _resources()
    users = r.user_resource_type(call.base_url)
    return 200, {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
        "totalResults": 1,
        "startIndex": 1,
        "itemsPerPage": 1,
        "Resources": [users],
    }


@scim_route("/ResourceTypes/{resource_type}", "GET")
def resource_type(call: Scim, resource_type: str) -> tuple[int, dict[str, Any]]:
    if resource_type != "User":
        raise NotFound("only the User resource type is offered (no Groups)")
    return 200, _resources().user_resource_type(call.base_url)


@scim_route("/Schemas", "GET")
def schemas(call: Scim) -> tuple[int, dict[str, Any]]:
    schema = _resources().user_schema(call.base_url)
    return 200, {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
        "totalResults": 1,
        "startIndex": 1,
        "itemsPerPage": 1,
        "Resources": [schema],
    }


@scim_route("/Schemas/{schema_id}", "GET", ids=False)  # a schema id is a URN, not a path id
def schema(call: Scim, schema_id: str) -> tuple[int, dict[str, Any]]:
    r = _resources()
    if schema_id != r.USER_SCHEMA:
        raise NotFound("only the core User schema is offered")
    return 200, r.user_schema(call.base_url)


# --- users ------------------------------------------------------------------------------------


def _whole_number(raw: str | None, default: int) -> int:
    if raw is None or raw == "":
        return default
    text = raw.strip()
    if not (text.lstrip("-").isascii() and text.lstrip("-").isdigit()) or len(text) > 9:
        raise ValidationFailed("startIndex and count must be whole numbers")
    return int(text)


@scim_route("/Users", "GET")
def list_users(call: Scim) -> tuple[int, dict[str, Any]]:
    r = _resources()
    query = r.parse_query(call.query.get("filter"))
    start = max(_whole_number(call.query.get("startIndex"), 1), 1)  # RFC 7644 §3.4.2.4
    count = min(max(_whole_number(call.query.get("count"), r.MAX_RESULTS), 0), r.MAX_RESULTS)
    found = services.scim_users().list(call.token, query)
    page = found[start - 1 : start - 1 + count]
    users = [r.dump_user(c, call.base_url) for c in page]
    return 200, r.list_response(users, total=len(found), start_index=start)


@scim_route("/Users/{user_id}", "GET")
def get_user(call: Scim, user_id: str) -> tuple[int, dict[str, Any]]:
    r = _resources()
    return 200, r.dump_user(services.scim_users().get(call.token, user_id), call.base_url)


@scim_route("/Users", "POST")
def create_user(call: Scim) -> tuple[int, dict[str, Any]]:
    r = _resources()
    user, primary = r.parse_user(call.json(), r.Context.RESOURCE_CREATION_REQUEST)
    contact = services.scim_users().create(call.token, r.profile_of(user, None, primary))
    logger.info(
        "scim user created",
        extra={"company_id": call.token.company_id, "contact_id": contact.contact_id},
    )
    return 201, r.dump_user(contact, call.base_url, r.Context.RESOURCE_CREATION_RESPONSE)


@scim_route("/Users/{user_id}", "PUT")
def replace_user(call: Scim, user_id: str) -> tuple[int, dict[str, Any]]:
    r = _resources()
    users = services.scim_users()
    current = users.get(call.token, user_id)
    user, primary = r.parse_user(call.json(), r.Context.RESOURCE_REPLACEMENT_REQUEST)
    contact = users.replace(call.token, user_id, r.profile_of(user, current, primary))
    return 200, r.dump_user(contact, call.base_url, r.Context.RESOURCE_REPLACEMENT_RESPONSE)


@scim_route("/Users/{user_id}", "PATCH")
def patch_user(call: Scim, user_id: str) -> tuple[int, dict[str, Any]]:
    r = _resources()
    users = services.scim_users()
    current = users.get(call.token, user_id)
    patched = r.apply_patch(call.json(), r.user_of(current, call.base_url))
    contact = users.replace(call.token, user_id, r.profile_of(patched, current))
    return 200, r.dump_user(contact, call.base_url, r.Context.RESOURCE_PATCH_RESPONSE)


@scim_route("/Users/{user_id}", "DELETE")
def delete_user(call: Scim, user_id: str) -> tuple[int, None]:
    services.scim_users().delete(call.token, user_id)
    return 204, None


@scim_route("/{proxy+}", "GET", ids=False)
def unknown(call: Scim, **path: str) -> tuple[int, dict[str, Any]]:
    raise NotFound("no such SCIM endpoint (this service offers Users only)")
