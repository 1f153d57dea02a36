"""`/projects/{id}/helpdesk` and `/support-access`: the Helpdesk tab and seed 003's switch."""

from __future__ import annotations

from chalice.app import Blueprint

from .. import services
from . import presenters
from .models import (
    HelpdeskRequest,
    HelpdeskResponse,
    NamedRef,
    SupportAccessRequest,
    SupportAccessResponse,
)
from .routing import Call, Result, operation

bp = Blueprint(__name__)


@operation(
    bp,
    "GET",
    "/projects/{project_id}/helpdesk",
    summary="The Helpdesk tab: JSM links and the organization's latest open requests",
    who="members",
    response=HelpdeskResponse,
    errors=(400, 401, 403, 404),
)
def helpdesk(call: Call, project_id: str) -> Result:
    project = services.projects().get(call.user, project_id)
    view = services.helpdesk().view(call.user, project)
    latest = None
    if view.latest_requests is not None:
        latest = [
            HelpdeskRequest(
                key=r.key,
                summary=r.summary,
                status=r.status,
                created=r.created,
                reporter=r.reporter,
            )
            for r in view.latest_requests
        ]
    return Result(
        HelpdeskResponse(
            organization=NamedRef(id=project.organization_id, name=view.organization_name),
            service_desk=NamedRef(id=project.service_desk_id, name=view.service_desk_name),
            requests_url=view.requests_url,
            new_request_url=view.new_request_url,
            latest_requests=latest,
            requests_error=view.requests_error,
        )
    )


@operation(
    bp,
    "GET",
    "/projects/{project_id}/support-access",
    summary="Vendor support access",
    who="members",
    response=SupportAccessResponse,
    errors=(400, 401, 403, 404),
)
def get_support_access(call: Call, project_id: str) -> Result:
    access = services.support_access().get(call.user, project_id)
    return Result(presenters.support_access(access))


@operation(
    bp,
    "PUT",
    "/projects/{project_id}/support-access",
    summary='Enable or disable vendor support access (confirm with "Support")',
    who="company_admin of the customer company, the project's creator",
    request=SupportAccessRequest,
    response=SupportAccessResponse,
    errors=(400, 401, 403, 404, 409, 422, 503),
)
def put_support_access(call: Call, project_id: str) -> Result:
    body: SupportAccessRequest = call.body
    access = services.support_access().change(
        call.user, project_id, body.enabled, body.reason, body.confirmation
    )
    return Result(presenters.support_access(access))
