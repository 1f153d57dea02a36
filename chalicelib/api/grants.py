"""`/projects/{project_id}/grants` and `/activity`: the User Access and Activity Log tabs."""

from __future__ import annotations

import re
from typing import Any

from chalice.app import Blueprint

from .. import services
from ..domain.grants import AddGrant, GrantView, NewContact
from ..domain.models import ActivityFilter
from ..errors import FieldError, ValidationFailed
from ..idempotency import run_once
from ..observability import count
from . import csv_export, presenters
from .models import (
    ActivityList,
    AddGrantRequest,
    ChangeExpiryRequest,
    GrantList,
    GrantResponse,
)
from .routing import Call, Result, operation

bp = Blueprint(__name__)

GRANT = "/projects/{project_id}/grants/{contact_id}"


def _accepted(view: GrantView) -> Result:
    grant = view.grant
    location = f"/projects/{grant.project_id}/grants/{grant.contact_id}"
    return Result(presenters.grant(view), status=202, headers={"Location": location})


def add_request(body: AddGrantRequest) -> AddGrant:
    """The domain's request from the API's body (also each add of a grant batch)."""
    new = body.new_contact
    return AddGrant(
        contact_id=body.contact_id,
        email=body.email,
        expires_at=body.expires_at,
        new_contact=NewContact(new.email, new.name, new.kind, list(new.groups)) if new else None,
    )


@operation(
    bp,
    "GET",
    "/projects/{project_id}/grants",
    summary="Grants of the project",
    who="members",
    response=GrantList,
    query=("limit", "cursor"),
    errors=(400, 401, 403, 404, 422),
)
def list_grants(call: Call, project_id: str) -> Result:
    page = services.grants().list_grants(call.user, project_id, call.limit(), call.cursor())
    return Result(
        GrantList(items=[presenters.grant(v) for v in page.items], next_cursor=page.next_cursor)
    )


@operation(
    bp,
    "POST",
    "/projects/{project_id}/grants",
    summary="Give a contact helpdesk access",
    who="project_manager, supervisor",
    request=AddGrantRequest,
    response=GrantResponse,
    status=202,
    errors=(400, 401, 403, 404, 409, 422, 503),
    headers=("Idempotency-Key",),
)
def add_grant(call: Call, project_id: str) -> Result:
    body: AddGrantRequest = call.body
    request = add_request(body)

    def add() -> dict[str, Any]:
        view = services.grants().add(call.user, project_id, request)
        count("GrantsRequested")
        return presenters.grant(view).model_dump(mode="json")

    key = call.headers.get("idempotency-key")
    if key:
        scope = f"{call.user.sub}:{project_id}:{key}"
        data = run_once("add-grant", scope, add, payload=body.model_dump(mode="json"))
    else:
        data = add()
    response = GrantResponse.model_validate(data)
    location = f"/projects/{project_id}/grants/{response.contact_id}"
    return Result(response, status=202, headers={"Location": location})


@operation(
    bp,
    "GET",
    GRANT,
    summary="One grant",
    who="members",
    response=GrantResponse,
    errors=(400, 401, 403, 404),
)
def get_grant(call: Call, project_id: str, contact_id: str) -> Result:
    view: GrantView = services.grants().get_grant(call.user, project_id, contact_id)
    return Result(presenters.grant(view))


@operation(
    bp,
    "DELETE",
    GRANT,
    summary="Remove a contact's helpdesk access",
    who="project_manager, supervisor",
    response=GrantResponse,
    status=202,
    errors=(400, 401, 403, 404, 409, 503),
)
def remove_grant(call: Call, project_id: str, contact_id: str) -> Result:
    return _accepted(services.grants().remove(call.user, project_id, contact_id))


@operation(
    bp,
    "PATCH",
    GRANT,
    summary="Change or clear when a grant expires (its removal then starts by itself)",
    who="project_manager, supervisor",
    request=ChangeExpiryRequest,
    response=GrantResponse,
    errors=(400, 401, 403, 404, 409, 422),
)
def change_grant(call: Call, project_id: str, contact_id: str) -> Result:
    body: ChangeExpiryRequest = call.body
    view = services.grants().change_expiry(call.user, project_id, contact_id, body.expires_at)
    return Result(presenters.grant(view))


@operation(
    bp,
    "POST",
    f"{GRANT}/password-reset",
    summary="Email the helpdesk password reset link (at most one per grant per 5 minutes)",
    who="project_manager, supervisor",
    response=GrantResponse,
    status=202,
    errors=(400, 401, 403, 404, 409, 422, 429, 503),
    headers=("Idempotency-Key",),
)
def password_reset(call: Call, project_id: str, contact_id: str) -> Result:
    def reset() -> dict[str, Any]:
        view = services.grants().send_password_reset(call.user, project_id, contact_id)
        return presenters.grant(view).model_dump(mode="json")

    key = call.headers.get("idempotency-key")
    if key:
        scope = f"{call.user.sub}:{project_id}:{contact_id}:{key}"
        data = run_once("password-reset", scope, reset, payload={})
    else:
        data = reset()
    return Result(GrantResponse.model_validate(data), status=202)


@operation(
    bp,
    "POST",
    f"{GRANT}/retry",
    summary="Retry a failed grant",
    who="project_manager, supervisor",
    response=GrantResponse,
    status=202,
    errors=(400, 401, 403, 404, 409, 422, 503),
)
def retry_grant(call: Call, project_id: str, contact_id: str) -> Result:
    return _accepted(services.grants().retry(call.user, project_id, contact_id))


# SPEC §2: an export of more rows than this is refused (413); read at call time so tests can
# lower it.
EXPORT_ROW_LIMIT = 100_000
MAX_ACTIONS = 20
ACTION_RE = re.compile(r"[a-z][a-z_]{0,39}(\.[a-z][a-z_]{0,39}){1,2}")


def _activity_filter(call: Call) -> ActivityFilter:
    actions = call.values("action")
    if len(actions) > MAX_ACTIONS or not all(ACTION_RE.fullmatch(a) for a in actions):
        message = f"up to {MAX_ACTIONS} action names such as grant.activated"
        raise ValidationFailed("action is not valid", [FieldError("action", message)])
    since, until = call.moment("since"), call.moment("until")
    if since and until and since >= until:
        message = "until must be later than since"
        raise ValidationFailed(message, [FieldError("until", message)])
    return ActivityFilter(actions=frozenset(actions), since=since, until=until)


@operation(
    bp,
    "GET",
    "/projects/{project_id}/activity",
    summary="Activity log, newest first; `Accept: text/csv` exports every matching entry",
    who="members",
    response=ActivityList,
    query=("limit", "cursor", "contact_id", "action", "since", "until"),
    errors=(400, 401, 403, 404, 413, 422),
    headers=("Accept",),
    alternative=csv_export.MEDIA_TYPE,
)
def list_activity(call: Call, project_id: str) -> Result:
    contact_id = call.id_filter("contact_id")
    where = _activity_filter(call)
    grants = services.grants()
    if csv_export.wants_csv(call.headers.get("accept")):
        entries = grants.export_activity(call.user, project_id, contact_id, where, EXPORT_ROW_LIMIT)
        return Result(None, text=csv_export.activity_csv(entries), media_type=csv_export.MEDIA_TYPE)
    page = grants.activity(call.user, project_id, contact_id, call.limit(), call.cursor(), where)
    return Result(
        ActivityList(
            items=[presenters.activity(e) for e in page.items], next_cursor=page.next_cursor
        )
    )
