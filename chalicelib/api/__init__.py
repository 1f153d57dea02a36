"""The HTTP API: blueprints per route group, one middleware that makes every error a problem."""

from __future__ import annotations

from collections.abc import Callable

from chalice.app import Chalice, Request, Response

from . import (
    access_requests,
    contacts,
    grant_batches,
    grants,
    health,
    helpdesk,
    hr_events,
    projects,
    reviews,
    scim,
    scim_tokens,
)
from .problems import as_problem


def register_api(app: Chalice) -> None:
    for blueprint in (
        health.bp,
        projects.bp,
        contacts.bp,
        grants.bp,
        grant_batches.bp,
        helpdesk.bp,
        reviews.bp,
        access_requests.bp,
        hr_events.bp,
        scim_tokens.bp,
        scim.bp,
    ):
        app.register_blueprint(blueprint)

    @app.middleware("http")
    def problems_only(event: Request, get_response: Callable[[Request], Response]) -> Response:
        response = get_response(event)
        if event.path.startswith(scim.PREFIX):  # SCIM clients read SCIM errors
            return scim.as_scim_error(response)
        return as_problem(response)
