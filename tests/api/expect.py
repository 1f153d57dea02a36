"""What the API tests check again and again: problem responses, and that a refused request
changed nothing (tables, JSM, mailbox, workflows)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from moto.dynamodb.models import dynamodb_backends

from chalicelib.config import get_settings
from chalicelib.domain.models import Grant, GrantStatus, iso, utc_now
from local.aws import ACCOUNT_ID, aws_client
from local.stack import LocalStack
from tests.helpers import Answer, wait_for

PROBLEM_JSON = "application/problem+json"
SLUGS = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    409: "conflict",
    413: "payload-too-large",
    415: "unsupported-media-type",
    422: "validation-error",
    429: "too-many-requests",
    503: "service-unavailable",
}


def header(answer: Answer, name: str) -> str | None:
    """A response header, whatever its case."""
    return next((v for k, v in answer.headers.items() if k.lower() == name.lower()), None)


def assert_problem(
    answer: Answer,
    status: int,
    *,
    field: str | None = None,
    detail: str | None = None,
    slug: str | None = None,
) -> dict[str, Any]:
    """An RFC 9457 problem with `status`; `field` must be among `errors[].field`, `detail` a
    substring of the detail (case-insensitive), `slug` the type when it is not the status's
    own (`/problems/contact-offboarded`). Returns the body."""
    assert answer.status == status, (answer.status, answer.body)
    assert header(answer, "Content-Type") == PROBLEM_JSON
    body = answer.body
    assert isinstance(body, dict), body
    assert body["type"] == f"/problems/{slug or SLUGS[status]}"
    assert isinstance(body["title"], str)
    assert body["title"]
    assert body["status"] == status
    assert isinstance(body["detail"], str)
    assert body["detail"]
    if status == 422 or field is not None:
        assert isinstance(body["errors"], list), body
        for error in body["errors"]:
            assert set(error) == {"field", "message"}, error
            assert isinstance(error["field"], str)
            assert isinstance(error["message"], str)
    if field is not None:
        assert field in [e["field"] for e in body["errors"]], body
    if detail is not None:
        assert detail.lower() in body["detail"].lower(), body
    return body


class World:
    """Everything a request could change, read straight from the stack."""

    def __init__(self, stack: LocalStack) -> None:
        assert stack.jira is not None
        assert stack.mailbox is not None
        assert stack.provisioned is not None
        self.stack = stack
        self._jira = stack.jira
        self._mailbox = stack.mailbox
        self._tables = dict(stack.provisioned.tables)
        self._machines = list(stack.provisioned.state_machines.values())
        # Read in-process from the moto server's backends (it runs in this process): a scan
        # over HTTP per table would make every "nothing changed" check ten times slower.
        region = get_settings().region
        self._dynamodb = dynamodb_backends[ACCOUNT_ID][region]
        self._sfn = aws_client("stepfunctions", stack.aws_url, region)

    def items(self, table: str) -> list[dict[str, Any]]:
        """Every item of one table (`projects`, `contacts`, `grants`, `activity`…), sorted."""
        found = self._dynamodb.get_table(self._tables[table]).all_items()
        items = [item.to_json()["Attributes"] for item in found]
        return sorted(items, key=lambda item: json.dumps(item, sort_keys=True))

    def executions(self) -> list[tuple[str, str]]:
        """`(execution arn, status)` of every workflow run."""
        return [
            (execution["executionArn"], execution["status"])
            for arn in self._machines
            for execution in self._sfn.list_executions(stateMachineArn=arn)["executions"]
        ]

    def settle(self, timeout: float = 20) -> None:
        """Wait until no workflow runs (a change in flight is not a change of the request)."""
        wait_for(
            lambda: all(status != "RUNNING" for _, status in self.executions()),
            timeout,
            "the workflows to finish",
        )

    def snapshot(self) -> dict[str, Any]:
        return {
            "tables": {name: self.items(name) for name in self._tables},
            "jsm": self._jira.state(),
            "jsm_writes": [c for c in self._jira.calls() if c["method"] != "GET"],
            "mail": self._mailbox.messages(),
            "executions": sorted(arn for arn, _ in self.executions()),
        }

    @contextmanager
    def unchanged(self, settle: bool = True) -> Iterator[None]:
        """Asserts the block changed nothing at all. The world is settled first, unless the test
        holds a workflow in flight on purpose (then it must not write during the block)."""
        if settle:
            self.settle()
        before = self.snapshot()
        yield
        after = self.snapshot()
        for part in before:
            assert after[part] == before[part], f"{part} changed"

    def put_grant(
        self,
        project: dict[str, Any],
        contact: dict[str, Any],
        status: GrantStatus,
        granted_by_company_id: str | None = None,
    ) -> None:
        """Given: a grant already in `status`, written straight to the store (running a real
        lifecycle per case would make the authorization matrix minutes long). It has no JSM
        account, so a removal has nothing to take out of JSM."""
        from chalicelib import services  # noqa: PLC0415 - the app's own store, as configured

        now = iso(utc_now())
        grant = Grant(
            project_id=project["project_id"],
            contact_id=contact["contact_id"],
            status=status,
            email=contact["email"],
            name=contact["name"],
            requested_by="seed",
            requested_at=now,
            updated_at=now,
            service_desk_id=project["service_desk_id"],
            organization_id=project["organization_id"],
            granted_by_company_id=granted_by_company_id or contact["company_id"],
            jira_account_id=None,
            account_created=False,
        )
        uow = services.store().unit_of_work()
        uow.create_grant(grant)
        uow.commit()
