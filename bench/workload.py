"""The bench's hands: the console's HTTP calls, Step Functions look-ups and bulk seeding."""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import boto3
import requests

PENDING = {"activation_pending", "deletion_pending"}
CUSTOMER = "acme"
PM = {"sub": "pm-1", "email": "priya.pm@acme.example", "company_id": CUSTOMER}


def _token(sub: str, email: str, company_id: str | None, roles: list[str]) -> str:
    from chalicelib.api.auth import issue_token  # noqa: PLC0415 - after the stack set the env
    from chalicelib.config import jwt_secret  # noqa: PLC0415

    return issue_token(jwt_secret(), sub, email, company_id, roles)


class Console:
    """Calls the local API over HTTP as the console's backend and a project manager do.

    Each request opens its own connection: on a kept-alive connection chalice's local server
    (headers and body written separately, Nagle on) meets the client's delayed ACK and every
    answer takes ~40 ms more, which API Gateway does not do.
    """

    def __init__(self, api_url: str) -> None:
        self.api_url = api_url
        service = _token("console", "console@example.com", None, ["service"])
        manager = _token(roles=["project_manager"], **PM)
        self.service = {"Authorization": f"Bearer {service}"}
        self.manager = {"Authorization": f"Bearer {manager}"}

    def _call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return requests.request(
            method, f"{self.api_url}{path}", timeout=kwargs.pop("timeout", 30), **kwargs
        )

    def _ok(self, response: requests.Response, *codes: int) -> dict[str, Any]:
        if response.status_code not in codes:
            raise RuntimeError(
                f"{response.request.method} {response.url}: {response.status_code} {response.text}"
            )
        body: dict[str, Any] = response.json() if response.content else {}
        return body

    def put_project(self, project_id: str) -> dict[str, Any]:
        body = {
            "name": f"Bench {project_id}",
            "customer_company_id": CUSTOMER,
            "created_by": PM["sub"],
            "service_desk_id": "1",
        }
        response = self._call("PUT", f"/projects/{project_id}", json=body, headers=self.service)
        return self._ok(response, 200, 201)

    def put_contact(self, contact_id: str, email: str, name: str) -> None:
        body = {"email": email, "name": name, "company_id": CUSTOMER, "console_user": True}
        response = self._call("PUT", f"/contacts/{contact_id}", json=body, headers=self.service)
        self._ok(response, 200, 201)

    def grant(self, project_id: str, contact_id: str) -> requests.Response:
        return self._call(
            "POST",
            f"/projects/{project_id}/grants",
            json={"contact_id": contact_id},
            headers=self.manager,
        )

    def grant_batch(self, project_id: str, contact_ids: list[str]) -> requests.Response:
        return self._call(
            "POST",
            f"/projects/{project_id}/grant-batches",
            json={"add": [{"contact_id": contact_id} for contact_id in contact_ids]},
            headers=self.manager,
            timeout=120,  # 100 items on the one-process local stack take longer than a POST
        )

    def remove(self, project_id: str, contact_id: str) -> requests.Response:
        return self._call(
            "DELETE", f"/projects/{project_id}/grants/{contact_id}", headers=self.manager
        )

    def grant_status(self, project_id: str, contact_id: str) -> str | None:
        """The grant's status, None once it is removed."""
        response = self._call(
            "GET", f"/projects/{project_id}/grants/{contact_id}", headers=self.manager
        )
        if response.status_code == 404:
            return None
        return str(self._ok(response, 200)["status"])

    def list_grants(
        self, project_id: str, limit: int | None = None, cursor: str = ""
    ) -> requests.Response:
        query = f"?limit={limit}" if limit else ""
        if cursor:
            query += f"&cursor={cursor}"
        return self._call("GET", f"/projects/{project_id}/grants{query}", headers=self.manager)

    def health(self) -> requests.Response:
        return self._call("GET", "/health")


def contacts(console: Console, prefix: str, count: int) -> list[str]:
    """`count` console users of the customer company, ids `<prefix>-00`, `<prefix>-01`, …"""
    ids = [f"{prefix}-{i:02d}" for i in range(count)]
    for contact_id in ids:
        console.put_contact(contact_id, f"{contact_id}@acme.example", contact_id.title())
    return ids


class Workflows:
    """Step Functions executions of the local stack, read through moto's API."""

    def __init__(self, aws_url: str, region: str) -> None:
        self._sfn = boto3.client(
            "stepfunctions",
            endpoint_url=aws_url,
            region_name=region,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",  # noqa: S106 - moto's dummy credentials
        )

    def executions(self, machine_arn: str, name_prefix: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for page in self._sfn.get_paginator("list_executions").paginate(
            stateMachineArn=machine_arn
        ):
            found += [x for x in page["executions"] if x["name"].startswith(name_prefix)]
        return found

    def wait_finished(
        self, machine_arn: str, name_prefix: str, timeout: float = 60
    ) -> dict[str, Any]:
        """The one execution named `<name_prefix>…`, once it left RUNNING."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.executions(machine_arn, name_prefix)
            if found and all(x["status"] != "RUNNING" for x in found):
                return found[-1]
            if time.monotonic() > deadline:
                raise TimeoutError(f"execution {name_prefix}… still running after {timeout} s")
            time.sleep(0.05)

    def states_entered(self, execution_arn: str) -> int:
        """State transitions Standard workflows bill: the `*StateEntered` history events."""
        count = 0
        for page in self._sfn.get_paginator("get_execution_history").paginate(
            executionArn=execution_arn
        ):
            count += sum(e["type"].endswith("StateEntered") for e in page["events"])
        return count


def execution_prefix(project_id: str, contact_id: str, kind: str) -> str:
    """How the names of a grant's `kind` runs start (`grant_lifecycle.ExecutionName`)."""
    from chalicelib.domain.grant_lifecycle import ExecutionName, Kind  # noqa: PLC0415

    return f"{ExecutionName.prefix(project_id, contact_id)}{Kind(kind).value}-"


def seed_grants(project: dict[str, Any], contact_ids: Iterable[str]) -> int:
    """Activated grants written straight into DynamoDB (what 1,000 finished workflows leave)."""
    from chalicelib.store.tables import GrantItem  # noqa: PLC0415 - after the stack set the env

    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    count = 0
    with GrantItem.batch_write() as batch:
        for contact_id in contact_ids:
            batch.save(
                GrantItem(
                    project_id=project["project_id"],
                    contact_id=contact_id,
                    status="activated",
                    email=f"{contact_id}@acme.example",
                    name=contact_id.title(),
                    requested_by=PM["sub"],
                    requested_at=now,
                    updated_at=now,
                    service_desk_id=project["service_desk_id"],
                    organization_id=project["organization_id"],
                    jira_account_id=f"acct-{contact_id}",
                    account_created=True,
                )
            )
            count += 1
    return count
