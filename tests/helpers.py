"""Test helpers: tokens per role, an API caller over `chalice.test.Client`, seeding, waiting."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from chalice.test import Client

from chalicelib.api.auth import issue_token
from chalicelib.config import get_settings
from chalicelib.domain.grant_lifecycle import ExecutionName

SECRET = "local-dev-secret"
PENDING = {"activation_pending", "deletion_pending"}


def token(sub: str, email: str, company: str | None, roles: list[str], secret: str = SECRET) -> str:
    return issue_token(secret, sub, email, company, roles)


def bearer(sub: str, email: str, company: str | None, roles: list[str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(sub, email, company, roles)}"}


SERVICE = bearer("console", "console@example.com", None, ["service"])
ACME_PM = bearer("pm-1", "priya.pm@acme.example", "acme", ["project_manager"])
INTEGRATOR_PM = bearer("ipm-1", "ian.pm@integrator.example", "integrator", ["supervisor"])
OTHER_PM = bearer("opm-1", "olga.pm@other.example", "other", ["project_manager"])
ACME_USER = bearer("dev-1", "dana.dev@acme.example", "acme", ["console_user"])
PLATFORM_ADMIN = bearer("root-1", "root@platform.example", "platform", ["platform_admin"])


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: Any

    @property
    def json(self) -> Any:
        return self.body


class Api:
    """Calls the API in-process; bodies are dicts (sent as JSON) or raw strings/bytes."""

    def __init__(self, client: Client) -> None:
        self._client = client

    @classmethod
    @contextmanager
    def for_app(cls, app: Any, project_dir: Path) -> Iterator[Api]:
        with Client(app, stage_name="local", project_dir=str(project_dir)) as client:
            yield cls(client)

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        sent = {"Content-Type": "application/json", **(headers or {})}
        raw = body if isinstance(body, str | bytes) or body is None else json.dumps(body)
        payload = raw.encode() if isinstance(raw, str) else raw or b""
        response = self._client.http.request(method, path, headers=sent, body=payload)
        text = response.body.decode() if isinstance(response.body, bytes) else response.body
        try:
            parsed = json.loads(text) if text else None
        except ValueError:
            parsed = text
        return Answer(response.status_code, dict(response.headers), parsed)

    def get(self, path: str, headers: dict[str, str] | None = None) -> Answer:
        return self.call("GET", path, headers=headers)

    def post(self, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Answer:
        return self.call("POST", path, body if body is not None else {}, headers)

    def put(self, path: str, body: Any, headers: dict[str, str] | None = None) -> Answer:
        return self.call("PUT", path, body, headers)

    def delete(self, path: str, headers: dict[str, str] | None = None) -> Answer:
        return self.call("DELETE", path, headers=headers)


PROJECT = {
    "name": "Demo project",
    "customer_company_id": "acme",
    "integrator_company_id": "integrator",
    "created_by": "pm-1",
    "service_desk_id": "1",
}


class Seeder:
    """Creates projects and contacts through the API as the console's backend would."""

    def __init__(self, api: Api) -> None:
        self.api = api

    def project(self, project_id: str = "demo", **overrides: Any) -> dict[str, Any]:
        answer = self.api.put(f"/projects/{project_id}", {**PROJECT, **overrides}, SERVICE)
        assert answer.status in (200, 201), answer.body
        return dict(answer.body)

    def contact(
        self,
        contact_id: str,
        email: str,
        company: str | None = "acme",
        console_user: bool = True,
        name: str | None = None,
        groups: list[str] | None = None,
    ) -> dict[str, Any]:
        body = {
            "email": email,
            "name": name or email.split("@", maxsplit=1)[0].title(),
            "company_id": company,
            "console_user": console_user,
            "groups": groups or [],
        }
        answer = self.api.put(f"/contacts/{contact_id}", body, SERVICE)
        assert answer.status in (200, 201), answer.body
        return dict(answer.body)

    def demo(self) -> dict[str, Any]:
        """Project `demo` (acme + integrator, desk 1) with pm-1 and the developer dev-1."""
        project = self.project()
        self.contact("pm-1", "priya.pm@acme.example", name="Priya PM")
        self.contact("dev-1", "dana.dev@acme.example", name="Dana Dev")
        return project


def wait_for(
    check: Callable[[], Any], timeout: float = 20, what: str = "condition", every: float = 0.02
) -> Any:
    """`check()`'s first truthy result, asked `every` seconds (a heavy check: ask less often,
    it runs on the same CPU as the stack it watches)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


def runs_in_progress(project_id: str, contact_id: str) -> bool:
    """Whether an execution of this grant's lifecycles is still running (in the test's moto)."""
    settings = get_settings()
    sfn = boto3.client("stepfunctions", region_name=settings.region)
    prefix = ExecutionName.prefix(project_id, contact_id)
    for machine in (settings.activation_state_machine_arn, settings.removal_state_machine_arn):
        running = sfn.list_executions(stateMachineArn=machine, statusFilter="RUNNING")
        if any(x["name"].startswith(prefix) for x in running["executions"]):
            return True
    return False


def settled_grant(
    api: Api,
    project_id: str,
    contact_id: str,
    headers: dict[str, str] = ACME_PM,
    timeout: float = 20,
) -> dict[str, Any] | None:
    """The grant once no lifecycle runs: its status settled and its execution ended (a run
    records its outcome, then publishes its event and may unlink an external, before it ends).
    None once removed."""

    def settled() -> Any:
        answer = api.get(f"/projects/{project_id}/grants/{contact_id}", headers)
        if answer.status == 404:
            result: dict[str, Any] = {"gone": True}
        elif answer.body["status"] in PENDING:
            return None
        else:
            result = answer.body
        return None if runs_in_progress(project_id, contact_id) else result

    result = wait_for(settled, timeout, f"grant {project_id}/{contact_id} to settle")
    return None if result.get("gone") else dict(result)


def active_grant(
    api: Api,
    project_id: str,
    contact_id: str,
    headers: dict[str, str] = ACME_PM,
    timeout: float = 20,
) -> dict[str, Any]:
    """The grant once no lifecycle runs; the test fails if it was removed instead."""
    grant = settled_grant(api, project_id, contact_id, headers, timeout)
    assert grant is not None, f"grant {project_id}/{contact_id} was removed"
    return grant


def activity_actions(api: Api, project_id: str, contact_id: str | None = None) -> list[str]:
    """Actions of the project's activity, oldest first."""
    query = f"?limit=100&contact_id={contact_id}" if contact_id else "?limit=100"
    items = api.get(f"/projects/{project_id}/activity{query}", ACME_PM).body["items"]
    return [entry["action"] for entry in reversed(items)]


@contextmanager
def jira_paced(rate: float) -> Iterator[None]:
    """Within the block the workflows pace their Jira calls at `rate` per second (the setting
    HELPDESK_JIRA_RATE_PER_SECOND, read again by the app's settings and its limiter)."""
    from chalicelib import services  # noqa: PLC0415

    patch = pytest.MonkeyPatch()
    patch.setenv("HELPDESK_JIRA_RATE_PER_SECOND", str(rate))
    get_settings.cache_clear()
    services.jira_pacer.cache_clear()
    try:
        yield
    finally:
        patch.undo()
        get_settings.cache_clear()
        services.jira_pacer.cache_clear()
