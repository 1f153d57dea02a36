"""`/projects/{project_id}`: the project and its helpdesk link."""

from __future__ import annotations

from chalice.app import Blueprint

from .. import services
from ..domain.projects import ProjectSpec
from . import presenters
from .models import (
    ContactList,
    ExtraAccountResponse,
    MissingAccountResponse,
    ProjectResponse,
    PutProjectRequest,
    ReconcileRequest,
    ReconcileResponse,
)
from .routing import Call, Result, operation

bp = Blueprint(__name__)


@operation(
    bp,
    "PUT",
    "/projects/{project_id}",
    summary="Create or update a project and link its helpdesk",
    who="service, platform_admin",
    request=PutProjectRequest,
    response=ProjectResponse,
    status=200,
    errors=(400, 401, 403, 409, 422, 503),
)
def put_project(call: Call, project_id: str) -> Result:
    body: PutProjectRequest = call.body
    spec = ProjectSpec(**body.model_dump())
    project, created = services.projects().put(call.user, project_id, spec)
    return Result(presenters.project(project), status=201 if created else 200)


@operation(
    bp,
    "GET",
    "/projects/{project_id}",
    summary="A project",
    who="members",
    response=ProjectResponse,
    errors=(400, 401, 403, 404),
)
def get_project(call: Call, project_id: str) -> Result:
    return Result(presenters.project(services.projects().get(call.user, project_id)))


@operation(
    bp,
    "GET",
    "/projects/{project_id}/eligible-contacts",
    summary="Contacts of the caller's company with Console User and no grant yet",
    who="project_manager, supervisor",
    response=ContactList,
    errors=(400, 401, 403, 404),
)
def eligible_contacts(call: Call, project_id: str) -> Result:
    contacts = services.contacts().eligible(call.user, project_id)
    return Result(ContactList(items=[presenters.contact(c) for c in contacts], next_cursor=None))


@operation(
    bp,
    "POST",
    "/projects/{project_id}/reconcile",
    summary="Compare JSM with the grants; re-add the missing, remove the extra when asked",
    who="platform_admin",
    request=ReconcileRequest,
    response=ReconcileResponse,
    errors=(400, 401, 403, 404, 422, 503),
)
def reconcile(call: Call, project_id: str) -> Result:
    body: ReconcileRequest = call.body
    result = services.drift_repair().reconcile(
        call.user, project_id, repair=body.repair, remove_extra=body.remove_extra
    )
    return Result(
        ReconcileResponse(
            checked_at=result.checked_at,
            missing=[
                MissingAccountResponse(
                    contact_id=m.contact_id,
                    email=m.email,
                    jira_account_id=m.jira_account_id,
                    where=m.where,  # type: ignore[arg-type]
                )
                for m in result.missing
            ],
            extra=[
                ExtraAccountResponse(jira_account_id=e.jira_account_id, email=e.email)
                for e in result.extra
            ],
            repaired=result.repaired,
            removed=result.removed,
        )
    )
