"""Projects and their helpdesk link (SPEC §2 `PUT/GET /projects/{id}`)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import Conflict, FieldError, JiraNotFound, NotFound, StaleState, ValidationFailed
from . import activity
from .authorization import ensure_member, ensure_role
from .models import Principal, Project, Role
from .ports import HelpdeskDirectory, Store


@dataclass(frozen=True)
class ProjectSpec:
    """What the console says a project is; the helpdesk link is completed from JSM."""

    name: str
    customer_company_id: str
    service_desk_id: str
    integrator_company_id: str | None = None
    created_by: str | None = None
    organization_id: str | None = None
    allowed_email_domains: list[str] = field(default_factory=list)


def organization_name(project_name: str, project_id: str) -> str:
    """The name of the organization the service creates for a project (SPEC §1): unique per
    project, because JSM answers a create with an existing name with that organization."""
    return f"{project_name} ({project_id})"


def require_project(store: Store, project_id: str) -> Project:
    return existing_project(store.get_project(project_id), project_id)


def existing_project(project: Project | None, project_id: str) -> Project:
    """`project` as read, or NotFound when the read found none."""
    if project is None:
        raise NotFound(f"project {project_id} does not exist")
    return project


def member_project(store: Store, principal: Principal, project_id: str) -> Project:
    """The project, if the principal may see it (404 before 403: ids are not secrets here)."""
    project = require_project(store, project_id)
    ensure_member(principal, project)
    return project


class ProjectService:
    def __init__(self, store: Store, jira: HelpdeskDirectory) -> None:
        self._store = store
        self._jira = jira

    def get(self, principal: Principal, project_id: str) -> Project:
        return member_project(self._store, principal, project_id)

    def put(self, principal: Principal, project_id: str, spec: ProjectSpec) -> tuple[Project, bool]:
        """Create or update; returns the project and whether it was created.

        A repeated PUT converges: the organization created for a project the first time is
        kept, and `helpdesk.linked` is only recorded when the link actually changes. An
        organization another project has is a `Conflict` (checked before JSM is touched, and
        again by the claim written with the project, which a concurrent PUT cannot both win).
        """
        ensure_role(principal, Role.SERVICE, Role.PLATFORM_ADMIN)
        existing = self._store.get_project(project_id)
        desk = self._require_service_desk(spec.service_desk_id)
        organization_id = spec.organization_id or (existing.organization_id if existing else None)
        if organization_id is None:
            organization = self._jira.create_organization(organization_name(spec.name, project_id))
        else:
            organization = self._require_organization(organization_id)
        organization_id = str(organization.id)
        self._ensure_unclaimed(organization_id, project_id)
        self._jira.attach_organization(spec.service_desk_id, organization_id)

        project = Project(
            project_id=project_id,
            name=spec.name,
            customer_company_id=spec.customer_company_id,
            integrator_company_id=spec.integrator_company_id,
            created_by=spec.created_by,
            service_desk_id=spec.service_desk_id,
            organization_id=organization_id,
            allowed_email_domains=sorted(set(spec.allowed_email_domains)),
            service_desk_name=str(desk.project_name),
            organization_name=str(organization.name),
        )
        if existing is not None:
            project = replace(project, support_access=existing.support_access)
        linked = existing is None or (existing.service_desk_id, existing.organization_id) != (
            project.service_desk_id,
            project.organization_id,
        )
        previous = existing.organization_id if existing else None
        released = None
        if previous not in (None, organization_id) and self._owner(previous) == project_id:
            released = previous
        uow = self._store.unit_of_work()
        uow.put_project(
            project, expected_organization_id=previous, released_organization_id=released
        )
        if linked:
            uow.append(
                activity.entry(
                    project_id,
                    "helpdesk.linked",
                    principal.as_actor(),
                    detail={
                        "service_desk_id": project.service_desk_id,
                        "organization_id": project.organization_id,
                        "organization_name": project.organization_name,
                    },
                )
            )
        try:
            uow.commit()
        except StaleState as exc:
            raise Conflict(
                f"organization {organization_id} or project {project_id} changed meanwhile "
                "(another project may have linked the organization); read and try again"
            ) from exc
        return project, existing is None

    def _owner(self, organization_id: str | None) -> str | None:
        return self._store.organization_owner(organization_id) if organization_id else None

    def _ensure_unclaimed(self, organization_id: str, project_id: str) -> None:
        owner = self._owner(organization_id)
        if owner is not None and owner != project_id:
            raise Conflict(
                f"organization {organization_id} is already linked to project {owner}: "
                "each project has its own organization"
            )

    def _require_service_desk(self, service_desk_id: str) -> Any:
        try:
            return self._jira.get_service_desk(service_desk_id)
        except JiraNotFound as exc:
            message = f"service desk {service_desk_id} does not exist in Jira Service Management"
            raise ValidationFailed(message, [FieldError("service_desk_id", message)]) from exc

    def _require_organization(self, organization_id: str) -> Any:
        try:
            return self._jira.get_organization(organization_id)
        except JiraNotFound as exc:
            message = f"organization {organization_id} does not exist in Jira Service Management"
            raise ValidationFailed(message, [FieldError("organization_id", message)]) from exc
