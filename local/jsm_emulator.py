"""A Jira Service Management Cloud emulator over real HTTP, for the local stack and tests.

It serves the JSM REST calls the service makes (SPEC §7) with the same status codes, ids as JSON
strings and `{"errorMessage", "i18nErrorMessage"}` error bodies, plus the `/_emulator/*` control
endpoints of SPEC §5 to seed data, inspect state and calls, and inject faults or a rate limit.
Standard library only, so the local stack and the unit tests need nothing else to run it:

    python -m local.jsm_emulator --port 8081

Choices where JSM leaves room: `POST /organization` with an existing name answers 201 with that
organization; `GET /request` honours `requestOwnership` `ALL_REQUESTS` (the default: the bot is an
agent and sees every request) and `ORGANIZATION`; `user/search` matches the query as a
case-insensitive prefix of the email or display name, as Jira does, so callers must filter for
the exact email themselves. Each API call meets, in order: the rate limit, the fault rules, then
basic auth and the emulated answer; every one is recorded in `/_emulator/calls`.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import os
import re
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from local.http_server import LocalHttpServer

DEFAULT_EMAIL = "helpdesk-bot@example.com"
DEFAULT_TOKEN = "local-token"  # noqa: S105 (the documented local-stack token, no secret)
# JSM caps page sizes; callers asking for more get this many.
MAX_PAGE = 100
DEFAULT_PAGE = 50

JsonObject = dict[str, Any]


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(at: datetime) -> str:
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _error_body(message: str, i18n_key: str) -> JsonObject:
    return {"errorMessage": message, "i18nErrorMessage": {"i18nKey": i18n_key, "parameters": []}}


class JsmError(Exception):
    """An answer JSM would give as an error; handlers raise it, and so do the seeding helpers."""

    def __init__(self, status: int, message: str, i18n_key: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.i18n_key = i18n_key


@dataclass
class _Reply:
    status: int
    body: Any = None  # None: no body at all (204)
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def error(cls, status: int, message: str, i18n_key: str) -> _Reply:
        return cls(status, _error_body(message, i18n_key))


@dataclass(frozen=True)
class _Call:
    """One JSM API call as the handlers see it."""

    params: dict[str, str]
    query: dict[str, str]
    body: bytes

    def json(self) -> JsonObject:
        try:
            data = json.loads(self.body or b"null")
        except ValueError as exc:
            raise JsmError(400, f"Malformed JSON body: {exc}", "sd.request.body.malformed") from exc
        if not isinstance(data, dict):
            raise JsmError(
                400, "The request body must be a JSON object.", "sd.request.body.invalid"
            )
        return data

    def int_query(self, name: str, default: int) -> int:
        raw = self.query.get(name)
        if raw is None or raw == "":
            return default
        try:
            return int(raw)
        except ValueError as exc:
            raise JsmError(
                400, f"The parameter '{name}' must be an integer.", "sd.request.param.invalid"
            ) from exc


def _page(values: list[JsonObject], call: _Call) -> JsonObject:
    start = call.int_query("start", 0)
    limit = call.int_query("limit", DEFAULT_PAGE)
    if start < 0 or limit < 1:
        raise JsmError(400, "start must be >= 0 and limit >= 1.", "sd.request.paging.invalid")
    limit = min(limit, MAX_PAGE)
    chunk = values[start : start + limit]
    return {
        "size": len(chunk),
        "start": start,
        "limit": limit,
        "isLastPage": start + len(chunk) >= len(values),
        "values": chunk,
    }


def _jsm_date(at: datetime) -> JsonObject:
    return {
        "iso8601": at.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "friendly": at.strftime("%d/%b/%y %I:%M %p"),
        "epochMillis": int(at.timestamp() * 1000),
    }


@dataclass
class _Customer:
    account_id: str
    email: str
    display_name: str

    def view(self) -> JsonObject:
        return {
            "accountId": self.account_id,
            "emailAddress": self.email,
            "displayName": self.display_name,
        }


@dataclass
class _ServiceDesk:
    id: str
    project_id: str
    project_key: str
    project_name: str
    customers: list[str] = field(default_factory=list)
    organizations: list[str] = field(default_factory=list)


@dataclass
class _Organization:
    id: str
    name: str
    users: list[str] = field(default_factory=list)


@dataclass
class _Request:
    issue_key: str
    service_desk_id: str
    organization_id: str | None
    summary: str
    status: str  # "open" | "closed", as seeded through the control API
    reporter: _Customer
    created: datetime


class _State:
    """The emulated JSM site and its API handlers; callers hold the emulator's lock."""

    def __init__(self) -> None:
        self.customers: dict[str, _Customer] = {}
        self.service_desks: dict[str, _ServiceDesk] = {}
        self.organizations: dict[str, _Organization] = {}
        self.requests: list[_Request] = []
        self._issue_numbers: dict[str, int] = {}
        self.add_service_desk("SUP", "Support")

    # --- seeding (control API) ------------------------------------------------------------------

    def add_service_desk(self, project_key: str, project_name: str) -> _ServiceDesk:
        if any(d.project_key == project_key for d in self.service_desks.values()):
            raise JsmError(409, f"Project key '{project_key}' is taken.", "emulator.desk.exists")
        number = len(self.service_desks) + 1
        desk = _ServiceDesk(str(number), str(10000 + number), project_key, project_name)
        self.service_desks[desk.id] = desk
        return desk

    def add_customer(self, email: str, display_name: str) -> _Customer:
        # Real customer account ids are opaque "qm:<uuid>..." strings; uuid4 keeps them unique
        # across resets so a stale id from an earlier test never resolves by accident.
        customer = _Customer(f"qm:{uuid.uuid4()}", email, display_name)
        self.customers[customer.account_id] = customer
        return customer

    def customer_by_email(self, email: str) -> _Customer | None:
        wanted = email.lower()
        return next((c for c in self.customers.values() if c.email.lower() == wanted), None)

    def add_request(
        self,
        desk: _ServiceDesk,
        organization_id: str | None,
        summary: str,
        status: str,
        reporter_email: str,
    ) -> _Request:
        reporter = self.customer_by_email(reporter_email) or self.add_customer(
            reporter_email, reporter_email
        )
        number = self._issue_numbers.get(desk.project_key, 0) + 1
        self._issue_numbers[desk.project_key] = number
        # JSM dates have millisecond precision; keep them strictly increasing at that precision
        # so "newest first" is unambiguous even for requests seeded within one millisecond.
        now = _now()
        created = now.replace(microsecond=now.microsecond // 1000 * 1000)
        if self.requests and created <= self.requests[-1].created:
            created = self.requests[-1].created + timedelta(milliseconds=1)
        request = _Request(
            f"{desk.project_key}-{number}",
            desk.id,
            organization_id,
            summary,
            status,
            reporter,
            created,
        )
        self.requests.append(request)
        return request

    def snapshot(self) -> JsonObject:
        return {
            "customers": [c.view() for c in self.customers.values()],
            "service_desks": [
                {
                    "id": d.id,
                    "projectKey": d.project_key,
                    "projectName": d.project_name,
                    "customers": list(d.customers),
                    "organizations": list(d.organizations),
                }
                for d in self.service_desks.values()
            ],
            "organizations": [
                {"id": o.id, "name": o.name, "users": list(o.users)}
                for o in self.organizations.values()
            ],
            "requests": [
                {
                    "issueKey": r.issue_key,
                    "serviceDeskId": r.service_desk_id,
                    "organizationId": r.organization_id,
                    "summary": r.summary,
                    "status": r.status,
                    "reporter": r.reporter.email,
                }
                for r in self.requests
            ],
        }

    # --- lookups that answer like JSM -------------------------------------------------------------

    def desk(self, desk_id: str) -> _ServiceDesk:
        desk = self.service_desks.get(desk_id)
        if desk is None:
            raise JsmError(
                404,
                f"Service Desk with id {desk_id} does not exist.",
                "sd.servicedesk.error.notfound",
            )
        return desk

    def organization(self, organization_id: str) -> _Organization:
        organization = self.organizations.get(organization_id)
        if organization is None:
            raise JsmError(
                404,
                f"Organization with id {organization_id} does not exist.",
                "sd.organization.error.notfound",
            )
        return organization

    def _account_ids(self, call: _Call) -> list[str]:
        ids = call.json().get("accountIds")
        if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
            raise JsmError(
                400,
                "accountIds must be a non-empty list of account ids.",
                "sd.customer.accountids.required",
            )
        unknown = [i for i in ids if i not in self.customers]
        if unknown:
            raise JsmError(
                400,
                f"The following accounts do not exist: {', '.join(unknown)}.",
                "sd.customer.accountids.invalid",
            )
        return ids

    # --- JSM API handlers ---------------------------------------------------------------------

    def user_search(self, call: _Call) -> _Reply:
        query = call.query.get("query", "").strip().lower()
        if not query:
            raise JsmError(
                400,
                "One of 'query' or 'accountId' parameters must be provided.",
                "jira.user.search.query.required",
            )
        found = [
            {**c.view(), "accountType": "customer", "active": True}
            for c in self.customers.values()
            if c.email.lower().startswith(query) or c.display_name.lower().startswith(query)
        ]
        return _Reply(200, found)

    def create_customer(self, call: _Call) -> _Reply:
        data = call.json()
        email = data.get("email")
        if not isinstance(email, str) or "@" not in email:
            raise JsmError(400, "A valid email address is required.", "sd.customer.email.invalid")
        display_name = data.get("displayName")
        if not isinstance(display_name, str) or not display_name.strip():
            display_name = email
        if self.customer_by_email(email) is not None:
            strict = call.query.get("strictConflictStatusCode", "").lower() == "true"
            raise JsmError(
                409 if strict else 400,
                "An account already exists for this email.",
                "sd.customer.error.email.exists",
            )
        return _Reply(201, self.add_customer(email, display_name).view())

    def get_service_desk(self, call: _Call) -> _Reply:
        desk = self.desk(call.params["desk"])
        return _Reply(
            200,
            {
                "id": desk.id,
                "projectId": desk.project_id,
                "projectKey": desk.project_key,
                "projectName": desk.project_name,
            },
        )

    def add_desk_customers(self, call: _Call) -> _Reply:
        desk = self.desk(call.params["desk"])
        for account_id in self._account_ids(call):
            if account_id not in desk.customers:
                desk.customers.append(account_id)
        return _Reply(204)

    def list_desk_customers(self, call: _Call) -> _Reply:
        desk = self.desk(call.params["desk"])
        return _Reply(200, _page([self.customers[a].view() for a in desk.customers], call))

    def remove_desk_customers(self, call: _Call) -> _Reply:
        desk = self.desk(call.params["desk"])
        for account_id in self._account_ids(call):
            if account_id in desk.customers:
                desk.customers.remove(account_id)
        return _Reply(204)

    def create_organization(self, call: _Call) -> _Reply:
        name = call.json().get("name")
        if not isinstance(name, str) or not name.strip():
            raise JsmError(400, "The organization name is required.", "sd.organization.name.empty")
        existing = next(
            (o for o in self.organizations.values() if o.name.lower() == name.lower()), None
        )
        organization = existing or _Organization(str(len(self.organizations) + 1), name)
        self.organizations[organization.id] = organization
        return _Reply(201, {"id": organization.id, "name": organization.name})

    def get_organization(self, call: _Call) -> _Reply:
        organization = self.organization(call.params["org"])
        return _Reply(200, {"id": organization.id, "name": organization.name})

    def attach_organization(self, call: _Call) -> _Reply:
        desk = self.desk(call.params["desk"])
        organization_id = call.json().get("organizationId")
        # JSM takes a JSON number here; a string is a client bug worth surfacing.
        if not isinstance(organization_id, int) or isinstance(organization_id, bool):
            raise JsmError(400, "organizationId must be an integer.", "sd.organization.id.invalid")
        organization = self.organization(str(organization_id))
        if organization.id not in desk.organizations:
            desk.organizations.append(organization.id)
        return _Reply(204)

    def add_organization_users(self, call: _Call) -> _Reply:
        organization = self.organization(call.params["org"])
        for account_id in self._account_ids(call):
            if account_id not in organization.users:
                organization.users.append(account_id)
        return _Reply(204)

    def remove_organization_users(self, call: _Call) -> _Reply:
        organization = self.organization(call.params["org"])
        for account_id in self._account_ids(call):
            if account_id in organization.users:
                organization.users.remove(account_id)
        return _Reply(204)

    def list_organization_users(self, call: _Call) -> _Reply:
        organization = self.organization(call.params["org"])
        users = [self.customers[a].view() for a in organization.users]
        return _Reply(200, _page(users, call))

    def list_requests(self, call: _Call) -> _Reply:
        requests = list(reversed(self.requests))
        if call.query.get("serviceDeskId"):
            desk = self.desk(call.query["serviceDeskId"])
            requests = [r for r in requests if r.service_desk_id == desk.id]
        ownership = call.query.get("requestOwnership") or "ALL_REQUESTS"
        if ownership == "ORGANIZATION":
            if not call.query.get("organizationId"):
                raise JsmError(
                    400,
                    "organizationId is required with requestOwnership=ORGANIZATION.",
                    "sd.request.organization.required",
                )
            organization = self.organization(call.query["organizationId"])
            requests = [r for r in requests if r.organization_id == organization.id]
        elif ownership != "ALL_REQUESTS":
            raise JsmError(
                400,
                f"requestOwnership={ownership} is not supported by the emulator.",
                "sd.request.ownership.invalid",
            )
        wanted = {
            "OPEN_REQUESTS": {"open"},
            "CLOSED_REQUESTS": {"closed"},
            "ALL_REQUESTS": {"open", "closed"},
        }.get(call.query.get("requestStatus") or "ALL_REQUESTS")
        if wanted is None:
            raise JsmError(400, "Invalid requestStatus.", "sd.request.status.invalid")
        values = [_request_view(r) for r in requests if r.status in wanted]
        return _Reply(200, _page(values, call))


def _request_view(request: _Request) -> JsonObject:
    closed = request.status == "closed"
    return {
        "issueKey": request.issue_key,
        "requestTypeId": "1",
        "serviceDeskId": request.service_desk_id,
        "createdDate": _jsm_date(request.created),
        "reporter": request.reporter.view(),
        "requestFieldValues": [
            {"fieldId": "summary", "label": "Summary", "value": request.summary}
        ],
        "currentStatus": {
            "status": "Closed" if closed else "Open",
            "statusCategory": "DONE" if closed else "NEW",
        },
    }


_RouteHandler = Callable[[_State, _Call], _Reply]
_SD = "/rest/servicedeskapi"
_ROUTES: list[tuple[str, re.Pattern[str], _RouteHandler]] = [
    (method, re.compile(pattern), handler)
    for method, pattern, handler in [
        ("GET", r"/rest/api/3/user/search", _State.user_search),
        ("POST", rf"{_SD}/customer", _State.create_customer),
        ("GET", rf"{_SD}/servicedesk/(?P<desk>[^/]+)", _State.get_service_desk),
        ("POST", rf"{_SD}/servicedesk/(?P<desk>[^/]+)/customer", _State.add_desk_customers),
        ("DELETE", rf"{_SD}/servicedesk/(?P<desk>[^/]+)/customer", _State.remove_desk_customers),
        ("GET", rf"{_SD}/servicedesk/(?P<desk>[^/]+)/customer", _State.list_desk_customers),
        ("POST", rf"{_SD}/servicedesk/(?P<desk>[^/]+)/organization", _State.attach_organization),
        ("POST", rf"{_SD}/organization", _State.create_organization),
        ("GET", rf"{_SD}/organization/(?P<org>[^/]+)", _State.get_organization),
        ("POST", rf"{_SD}/organization/(?P<org>[^/]+)/user", _State.add_organization_users),
        ("DELETE", rf"{_SD}/organization/(?P<org>[^/]+)/user", _State.remove_organization_users),
        ("GET", rf"{_SD}/organization/(?P<org>[^/]+)/user", _State.list_organization_users),
        ("GET", rf"{_SD}/request", _State.list_requests),
    ]
]


@dataclass
class _FaultRule:
    method: str | None  # None: any method
    path_regex: re.Pattern[str]
    status: int | None  # None: answer normally, after the delay
    times: int | None  # None: forever
    retry_after: str | None
    delay_ms: int

    def matches(self, method: str, path: str) -> bool:
        return (
            (self.times is None or self.times > 0)
            and (self.method is None or self.method == method)
            and self.path_regex.search(path) is not None
        )


def _parse_rule(raw: Any) -> _FaultRule:
    if not isinstance(raw, dict):
        raise TypeError("each rule must be an object")
    method = raw.get("method")
    if method is not None and not isinstance(method, str):
        raise ValueError("method must be a string or null")
    path_regex = raw.get("path_regex") or ""
    if not isinstance(path_regex, str):
        raise TypeError("path_regex must be a string")
    try:
        pattern = re.compile(path_regex)
    except re.error as exc:
        raise ValueError(f"invalid path_regex: {exc}") from exc
    status = raw.get("status")
    if status is not None and not (_is_int(status) and 400 <= status <= 599):
        raise ValueError("status must be null or an integer 400..599")
    times = raw.get("times")
    if times is not None and not (_is_int(times) and times >= 0):
        raise ValueError("times must be null or an integer >= 0")
    retry_after = raw.get("retry_after")
    # Strings are allowed so tests can send an HTTP-date or garbage Retry-After.
    if retry_after is not None and not isinstance(retry_after, int | str):
        raise ValueError("retry_after must be null, an integer or a string")
    delay_ms = raw.get("delay_ms") or 0
    if not (_is_int(delay_ms) and delay_ms >= 0):
        raise ValueError("delay_ms must be null or an integer >= 0")
    return _FaultRule(
        method=None if method in (None, "*") else method.upper(),
        path_regex=pattern,
        status=status,
        times=times,
        retry_after=None if retry_after is None else str(retry_after),
        delay_ms=delay_ms,
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class JsmEmulator:
    """An in-process JSM Cloud site on a real port; all state behind one lock."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 8081,
        email: str = DEFAULT_EMAIL,
        token: str = DEFAULT_TOKEN,
    ) -> None:
        self._host = host
        self._port = port
        self._credentials = (email, token)
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._state = _State()
        self._calls: list[JsonObject] = []
        self._rules: list[_FaultRule] = []
        self._rate_limit: float | None = None
        self._admitted: deque[float] = deque()

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Serve on a daemon thread; with `port=0` the OS picks a free port (see `url`)."""
        if self._server is not None:
            raise RuntimeError("the JSM emulator is already running")
        self._server = _Server((self._host, self._port), self)
        self._thread = threading.Thread(
            # A short poll interval lets stop() return in ~50 ms instead of the default 0.5 s.
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="jsm-emulator",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is None or self._thread is None:
            return
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
        self._server = None
        self._thread = None

    @property
    def url(self) -> str:
        port = self._server.server_address[1] if self._server is not None else self._port
        return f"http://{self._host}:{port}"

    # --- control API (also over HTTP under /_emulator) -----------------------------------------

    def reset(self) -> None:
        """Back to the initial site: service desk 1 only, no faults, no rate limit, no calls."""
        with self._lock:
            self._state = _State()
            self._calls = []
            self._rules = []
            self._rate_limit = None
            self._admitted.clear()

    def state(self) -> JsonObject:
        with self._lock:
            return self._state.snapshot()

    def calls(self) -> list[JsonObject]:
        """JSM API calls, oldest first; `status` is null while a call is still being answered."""
        with self._lock:
            return [dict(call) for call in self._calls]

    def set_faults(
        self, rules: list[JsonObject], rate_limit_per_second: float | None = None
    ) -> None:
        """Replace the fault set (raises ValueError or TypeError on a malformed rule)."""
        parsed = [_parse_rule(rule) for rule in rules]
        if rate_limit_per_second is not None and not (
            isinstance(rate_limit_per_second, int | float)
            and not isinstance(rate_limit_per_second, bool)
            and rate_limit_per_second > 0
        ):
            raise ValueError("rate_limit_per_second must be null or a number > 0")
        with self._lock:
            self._rules = parsed
            self._rate_limit = rate_limit_per_second
            # A new limit starts with an empty window, so tests do not inherit earlier traffic.
            self._admitted.clear()

    def add_service_desk(self, project_key: str, project_name: str) -> str:
        """Create a service desk (no JSM API does this) and return its id.

        Raises JsmError (409) when the project key is taken.
        """
        with self._lock:
            return self._state.add_service_desk(project_key, project_name).id

    def add_members(self, organization_id: str, count: int, desk_id: str | None = None) -> None:
        """Seed `count` new customers into an organization (and a desk's customers), without
        API calls: for paging tests with thousands of members."""
        with self._lock:
            organization = self._state.organization(organization_id)
            desk = self._state.desk(desk_id) if desk_id else None
            for n in range(count):
                customer = self._state.add_customer(f"member{n}@bulk.example", f"Member {n}")
                organization.users.append(customer.account_id)
                if desk is not None:
                    desk.customers.append(customer.account_id)

    def add_request(
        self,
        service_desk_id: str,
        summary: str,
        reporter_email: str,
        organization_id: str | None = None,
        status: str = "open",
    ) -> str:
        """Create a customer request and return its key; the reporter becomes a customer if new.

        Raises JsmError (404) for an unknown service desk or organization.
        """
        if status not in ("open", "closed"):
            raise ValueError("status must be 'open' or 'closed'")
        with self._lock:
            desk = self._state.desk(service_desk_id)
            if organization_id is not None:
                self._state.organization(organization_id)
            return self._state.add_request(
                desk, organization_id, summary, status, reporter_email
            ).issue_key

    # --- HTTP plumbing ------------------------------------------------------------------------

    def _respond(self, method: str, target: str, body: bytes, authorization: str | None) -> _Reply:
        split = urlsplit(target)
        if split.path == "/_emulator" or split.path.startswith("/_emulator/"):
            try:
                return self._control(method, split.path, body)
            except JsmError as exc:
                return _Reply.error(exc.status, exc.message, exc.i18n_key)
        return self._serve_jsm(method, split.path, split.query, body, authorization)

    def _serve_jsm(
        self, method: str, path: str, query: str, body: bytes, authorization: str | None
    ) -> _Reply:
        call: JsonObject = {
            "method": method,
            "path": path,
            "query": query,
            "status": None,
            "at": _iso(_now()),
        }
        with self._lock:
            self._calls.append(call)
            reply = self._throttle()
            rule = None if reply is not None else self._take_fault(method, path)
        if reply is None:
            if rule is not None and rule.delay_ms:
                time.sleep(rule.delay_ms / 1000)
            if rule is not None and rule.status is not None:
                reply = self._fault_reply(rule.status, rule.retry_after)
            else:
                with self._lock:
                    reply = self._dispatch(method, path, query, body, authorization)
        with self._lock:
            call["status"] = reply.status
        return reply

    def _throttle(self) -> _Reply | None:
        if self._rate_limit is None:
            return None
        now = time.monotonic()
        while self._admitted and now - self._admitted[0] >= 1.0:
            self._admitted.popleft()
        if len(self._admitted) >= self._rate_limit:
            reply = _Reply.error(429, "Rate limit exceeded.", "jira.rate.limit.exceeded")
            reply.headers = {"Retry-After": "1", **self._rate_limit_headers()}
            return reply
        self._admitted.append(now)
        return None

    def _rate_limit_headers(self) -> dict[str, str]:
        """Jira Cloud's 429 headers; the emulated window always frees up within a second."""
        headers = {
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": _iso(_now() + timedelta(seconds=1)),
        }
        if self._rate_limit is not None:
            headers["X-RateLimit-Limit"] = str(int(self._rate_limit))
        return headers

    def _take_fault(self, method: str, path: str) -> _FaultRule | None:
        rule = next((r for r in self._rules if r.matches(method, path)), None)
        if rule is not None and rule.times is not None:
            rule.times -= 1
        return rule

    def _fault_reply(self, status: int, retry_after: str | None) -> _Reply:
        reply = _Reply.error(status, f"Injected fault: HTTP {status}.", "emulator.fault.injected")
        if retry_after is not None:
            reply.headers["Retry-After"] = retry_after
        if status == 429:
            with self._lock:
                reply.headers.update(self._rate_limit_headers())
        return reply

    def _dispatch(
        self, method: str, path: str, query: str, body: bytes, authorization: str | None
    ) -> _Reply:
        if not self._authorized(authorization):
            reply = _Reply.error(
                401,
                "Client must be authenticated to access this resource.",
                "jira.auth.required",
            )
            reply.headers["WWW-Authenticate"] = 'Basic realm="protected-area"'
            return reply
        path_matched = False
        for route_method, pattern, handler in _ROUTES:
            match = pattern.fullmatch(path)
            if match is None:
                continue
            path_matched = True
            if route_method != method:
                continue
            values = parse_qs(query, keep_blank_values=True)
            call = _Call(match.groupdict(), {k: v[0] for k, v in values.items()}, body)
            try:
                return handler(self._state, call)
            except JsmError as exc:
                return _Reply.error(exc.status, exc.message, exc.i18n_key)
        if path_matched:
            return _Reply.error(405, f"Method {method} is not allowed here.", "http.405")
        return _Reply.error(404, f"No resource at {path}.", "http.404")

    def _authorized(self, authorization: str | None) -> bool:
        scheme, _, encoded = (authorization or "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(encoded, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return False
        email, _, token = decoded.partition(":")
        return (email, token) == self._credentials

    def _control(self, method: str, path: str, body: bytes) -> _Reply:
        routes: dict[str, tuple[str, Callable[[JsonObject], _Reply]]] = {
            "/_emulator/state": ("GET", lambda _: _Reply(200, self.state())),
            "/_emulator/calls": ("GET", lambda _: _Reply(200, {"items": self.calls()})),
            "/_emulator/faults": ("POST", self._control_faults),
            "/_emulator/requests": ("POST", self._control_requests),
            "/_emulator/service-desks": ("POST", self._control_service_desks),
            "/_emulator/reset": ("POST", self._control_reset),
        }
        if path not in routes:
            return _Reply.error(404, f"No emulator control endpoint at {path}.", "http.404")
        route_method, handler = routes[path]
        if method != route_method:
            return _Reply.error(405, f"Use {route_method} {path}.", "http.405")
        data = _Call({}, {}, body).json() if method == "POST" and body else {}
        return handler(data)

    def _control_faults(self, data: JsonObject) -> _Reply:
        rules = data.get("rules")
        if not isinstance(rules, list):
            raise JsmError(400, "rules must be a list.", "emulator.faults.invalid")
        try:
            self.set_faults(rules, data.get("rate_limit_per_second"))
        except (ValueError, TypeError) as exc:
            raise JsmError(400, str(exc), "emulator.faults.invalid") from exc
        return _Reply(204)

    def _control_requests(self, data: JsonObject) -> _Reply:
        desk_id = data.get("service_desk_id")
        organization_id = data.get("organization_id")
        summary = data.get("summary")
        reporter_email = data.get("reporter_email")
        status = data.get("status") or "open"
        if (
            not isinstance(desk_id, str | int)
            or not (organization_id is None or isinstance(organization_id, str | int))
            or not isinstance(summary, str)
            or not summary
            or not isinstance(reporter_email, str)
            or "@" not in reporter_email
            or status not in ("open", "closed")
        ):
            raise JsmError(
                400,
                "Need service_desk_id, summary, reporter_email and optional organization_id "
                "and status 'open'|'closed'.",
                "emulator.requests.invalid",
            )
        issue_key = self.add_request(
            str(desk_id),
            summary,
            reporter_email,
            None if organization_id is None else str(organization_id),
            status,
        )
        return _Reply(201, {"issueKey": issue_key})

    def _control_service_desks(self, data: JsonObject) -> _Reply:
        key, name = data.get("projectKey"), data.get("projectName")
        if not isinstance(key, str) or not key or not isinstance(name, str) or not name:
            raise JsmError(400, "Need projectKey and projectName.", "emulator.desks.invalid")
        return _Reply(201, {"id": self.add_service_desk(key, name)})

    def _control_reset(self, _: JsonObject) -> _Reply:
        self.reset()
        return _Reply(204)


class _RequestHandler(BaseHTTPRequestHandler):
    # HTTP/1.1 keeps connections alive, as `requests.Session` expects from JSM; without
    # TCP_NODELAY each kept-alive answer would wait ~40 ms for the client's delayed ACK.
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the local stack's output should show the service's logs, not every hit."""

    def _handle(self) -> None:
        # The body is always read, even when the answer ignores it, so keep-alive stays in sync.
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        reply = self.server.emulator._respond(
            self.command, self.path, body, self.headers.get("Authorization")
        )
        payload = b"" if reply.body is None else json.dumps(reply.body).encode()
        try:
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            if payload:
                self.send_header("Content-Type", "application/json;charset=UTF-8")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except ConnectionError:
            # The client gave up first (e.g. its timeout fired during an injected delay).
            self.close_connection = True


class _Server(LocalHttpServer):
    # stop() must not wait for handlers still sleeping in an injected delay.
    block_on_close = False

    def __init__(self, address: tuple[str, int], emulator: JsmEmulator) -> None:
        super().__init__(address, _RequestHandler)
        self.emulator = emulator

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client dropping a kept-alive connection is normal; anything else is an emulator bug.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run the JSM Cloud emulator.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--port", type=int, default=int(os.environ.get("HELPDESK_JIRA_PORT", "8081"))
    )
    parser.add_argument("--email", default=DEFAULT_EMAIL)
    parser.add_argument("--token", default=DEFAULT_TOKEN)
    args = parser.parse_args(argv)
    emulator = JsmEmulator(args.host, args.port, args.email, args.token)
    emulator.start()
    print(f"JSM emulator on {emulator.url} (basic auth {args.email})", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        emulator.stop()


if __name__ == "__main__":
    main()
