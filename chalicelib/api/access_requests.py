"""`/projects/{project_id}/access-requests`: asking for access and deciding (rule 11)."""

from __future__ import annotations

from chalice.app import Blueprint

from .. import services
from ..domain.models import AccessRequest
from .models import (
    AccessRequestList,
    AccessRequestResponse,
    ApproveAccessRequestRequest,
    CreateAccessRequestRequest,
    DenyAccessRequestRequest,
)
from .routing import Call, Result, operation

bp = Blueprint(__name__)

REQUESTS = "/projects/{project_id}/access-requests"
REQUEST = REQUESTS + "/{request_id}"


def _request(request: AccessRequest) -> AccessRequestResponse:
    return AccessRequestResponse(
        request_id=request.request_id,
        project_id=request.project_id,
        contact_id=request.contact_id,
        email=request.email,
        reason=request.reason,
        status=request.status,
        requested_at=request.requested_at,
        decided_by=request.decided_by,
        decided_at=request.decided_at,
        expires_at=request.expires_at,
        grant_expires_at=request.grant_expires_at,
    )


@operation(
    bp,
    "POST",
    REQUESTS,
    summary="Ask for helpdesk access to the project (for yourself)",
    who="a console_user of the customer or integrator company, for themselves",
    request=CreateAccessRequestRequest,
    response=AccessRequestResponse,
    status=201,
    errors=(400, 401, 403, 404, 409, 422),
)
def create_access_request(call: Call, project_id: str) -> Result:
    body: CreateAccessRequestRequest = call.body
    request = services.access_requests().create(call.user, project_id, body.reason)
    location = f"/projects/{project_id}/access-requests/{request.request_id}"
    return Result(_request(request), status=201, headers={"Location": location})


@operation(
    bp,
    "GET",
    REQUESTS,
    summary="Access requests: a manager sees their company's contacts', a requester their own",
    who="project_manager, supervisor (requests of their company's contacts); the requester (own)",
    response=AccessRequestList,
    query=("status",),
    errors=(400, 401, 403, 404, 422),
)
def list_access_requests(call: Call, project_id: str) -> Result:
    status = call.query.get("status") or None
    found = services.access_requests().list(call.user, project_id, status)
    return Result(AccessRequestList(items=[_request(r) for r in found], next_cursor=None))


@operation(
    bp,
    "POST",
    REQUEST + "/approve",
    summary="Approve a pending request: the grant's activation starts (requested by you)",
    who="project_manager, supervisor of the requester's company",
    request=ApproveAccessRequestRequest,
    response=AccessRequestResponse,
    errors=(400, 401, 403, 404, 409, 422, 503),
)
def approve_access_request(call: Call, project_id: str, request_id: str) -> Result:
    body: ApproveAccessRequestRequest = call.body
    decided = services.access_requests().approve(call.user, project_id, request_id, body.expires_at)
    return Result(_request(decided))


@operation(
    bp,
    "POST",
    REQUEST + "/deny",
    summary="Deny a pending request",
    who="project_manager, supervisor of the requester's company",
    request=DenyAccessRequestRequest,
    response=AccessRequestResponse,
    errors=(400, 401, 403, 404, 409, 422),
)
def deny_access_request(call: Call, project_id: str, request_id: str) -> Result:
    body: DenyAccessRequestRequest = call.body
    decided = services.access_requests().deny(call.user, project_id, request_id, body.reason)
    return Result(_request(decided))
