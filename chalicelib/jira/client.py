"""A typed client for the few JSM Cloud REST calls the service makes (SPEC §7).

Every call goes through `JsmClient._request`, the one edge where HTTP answers and `requests`
exceptions become the `Jira*` errors of `chalicelib.errors` that the state machines match by name.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import requests

from chalicelib.config import get_settings, jira_token
from chalicelib.errors import (
    JiraAuthError,
    JiraCustomerExists,
    JiraError,
    JiraNotFound,
    JiraRateLimited,
    JiraRejected,
    JiraUnavailable,
)
from chalicelib.observability import logger, mask_email, record_jira_call

from .pacing import await_slot

_SD = "/rest/servicedeskapi"
# JSM Cloud serves at most 50 users a page on these reads.
PAGE_SIZE = 50


@dataclass(frozen=True)
class JsmAccount:
    account_id: str
    email: str
    display_name: str


@dataclass(frozen=True)
class ServiceDesk:
    id: str
    project_key: str
    project_name: str


@dataclass(frozen=True)
class Organization:
    id: str
    name: str


@dataclass(frozen=True)
class JsmRequest:
    """One customer request as the helpdesk page lists it."""

    key: str
    summary: str
    status: str
    created: str  # ISO-8601 UTC with milliseconds
    reporter: str  # display name, else email


class JsmClient:
    """JSM Cloud over one kept-alive `requests.Session` with basic auth (bot email + API token)."""

    def __init__(
        self,
        base_url: str,
        email: str,
        token: str | Callable[[], str],
        timeout: float = 5.0,
        session: requests.Session | None = None,
    ) -> None:
        """`token` may be a getter: the secret is then read on the first call, so building a
        client (in a function that never calls JSM) needs no permission on it."""
        self._base_url = base_url.rstrip("/")
        self._timeout = timeout
        self._session = session or requests.Session()
        self._email = email
        self._token = token
        if isinstance(token, str):
            self._session.auth = (email, token)
        self._session.headers.update({"Accept": "application/json", "X-ExperimentalApi": "opt-in"})

    # --- customers ----------------------------------------------------------------------------

    def find_customer(self, email: str) -> JsmAccount | None:
        """The account whose email is exactly `email` (case-insensitive), if any."""
        # Jira's user search matches prefixes of emails and names, so filter for the exact one.
        users = self._request("GET", "/rest/api/3/user/search", params={"query": email})
        wanted = email.lower()
        for user in users:
            if str(user.get("emailAddress", "")).lower() == wanted:
                return _account(user)
        return None

    def create_customer(self, email: str, display_name: str) -> JsmAccount:
        """Create a portal customer; raises JiraCustomerExists when the email is taken."""
        try:
            created = self._request(
                "POST",
                f"{_SD}/customer",
                params={"strictConflictStatusCode": "true"},
                body={"email": email, "displayName": display_name},
            )
        except JiraRejected as exc:
            if exc.status == 409:
                raise JiraCustomerExists(exc.message, exc.status, exc.details) from exc
            raise
        return _account(created)

    def ensure_customer(
        self, email: str, display_name: str, before_create: Callable[[], None] | None = None
    ) -> tuple[JsmAccount, bool]:
        """The customer for `email`, created if missing; the flag says whether it was created.

        `before_create` runs just before the create call, so the caller can remember that it
        may have created the account even when the call's answer is lost (a timeout after JSM
        applied it: the retry then finds the account).
        """
        existing = self.find_customer(email)
        if existing is not None:
            return existing, False
        if before_create is not None:
            before_create()
        try:
            return self.create_customer(email, display_name), True
        except JiraCustomerExists as exc:
            # Somebody created it between our search and our create: theirs is ours.
            logger.info("jsm customer appeared concurrently", extra={"email": mask_email(email)})
            existing = self.find_customer(email)
            if existing is None:
                # JSM says it exists but search does not show it yet (index lag): retry later.
                raise JiraUnavailable(
                    "JSM reports the customer exists but user search does not find it yet",
                    exc.status,
                ) from exc
            return existing, False

    # --- service desks ------------------------------------------------------------------------

    def get_service_desk(self, service_desk_id: str) -> ServiceDesk:
        desk = self._request("GET", f"{_SD}/servicedesk/{service_desk_id}")
        return ServiceDesk(str(desk["id"]), desk["projectKey"], desk["projectName"])

    def add_to_service_desk(self, service_desk_id: str, account_id: str) -> None:
        """Idempotent: JSM answers 204 when the account already is a customer of the desk."""
        self._request(
            "POST",
            f"{_SD}/servicedesk/{service_desk_id}/customer",
            body={"accountIds": [account_id]},
        )

    def remove_from_service_desk(self, service_desk_id: str, account_id: str) -> None:
        """Idempotent: JSM answers 204 when the account is not a customer of the desk."""
        self._request(
            "DELETE",
            f"{_SD}/servicedesk/{service_desk_id}/customer",
            body={"accountIds": [account_id]},
        )

    # --- organizations ------------------------------------------------------------------------

    def create_organization(self, name: str) -> Organization:
        """Create an organization; JSM returns the existing one when the name is taken."""
        return _organization(self._request("POST", f"{_SD}/organization", body={"name": name}))

    def get_organization(self, organization_id: str) -> Organization:
        return _organization(self._request("GET", f"{_SD}/organization/{organization_id}"))

    def attach_organization(self, service_desk_id: str, organization_id: str) -> None:
        """Make the organization's users customers of the desk (idempotent)."""
        if not organization_id.isdigit():
            # JSM organization ids are numbers; anything else cannot name an organization.
            raise JiraNotFound(f"JSM organization id {organization_id!r} is not a number")
        self._request(
            "POST",
            f"{_SD}/servicedesk/{service_desk_id}/organization",
            body={"organizationId": int(organization_id)},
        )

    def add_to_organization(self, organization_id: str, account_id: str) -> None:
        """Idempotent: JSM answers 204 when the account already is a member."""
        self._request(
            "POST", f"{_SD}/organization/{organization_id}/user", body={"accountIds": [account_id]}
        )

    def remove_from_organization(self, organization_id: str, account_id: str) -> None:
        """Idempotent: JSM answers 204 when the account is not a member."""
        self._request(
            "DELETE",
            f"{_SD}/organization/{organization_id}/user",
            body={"accountIds": [account_id]},
        )

    def organization_members(self, organization_id: str) -> set[str]:
        """Account ids of every user of the organization (all pages)."""
        return {a.account_id for a in self.organization_accounts(organization_id)}

    def organization_accounts(self, organization_id: str) -> list[JsmAccount]:
        """Every user of the organization, read `PAGE_SIZE` a call (5,000 users: 100 calls)."""
        return self._all_pages(f"{_SD}/organization/{organization_id}/user")

    def service_desk_customers(self, service_desk_id: str) -> set[str]:
        """Account ids of every customer of the service desk, paged like the organization."""
        pages = self._all_pages(f"{_SD}/servicedesk/{service_desk_id}/customer")
        return {a.account_id for a in pages}

    def _all_pages(self, path: str) -> list[JsmAccount]:
        """JSM Cloud paging: `start`/`limit`, until `isLastPage` (or an empty page)."""
        accounts: list[JsmAccount] = []
        start = 0
        while True:
            page = self._request("GET", path, params={"start": start, "limit": PAGE_SIZE})
            accounts.extend(_account(user) for user in page["values"])
            if page.get("isLastPage", True) or not page["values"]:
                return accounts
            start += len(page["values"])

    # --- requests -----------------------------------------------------------------------------

    def open_requests(
        self, service_desk_id: str, organization_id: str, limit: int = 10
    ) -> list[JsmRequest]:
        """The organization's newest open requests on the desk, at most `limit`."""
        page = self._request(
            "GET",
            f"{_SD}/request",
            params={
                "serviceDeskId": service_desk_id,
                "requestOwnership": "ORGANIZATION",
                "organizationId": organization_id,
                "requestStatus": "OPEN_REQUESTS",
                "limit": limit,
                "start": 0,
            },
        )
        return [_jsm_request(value) for value in page["values"]]

    # --- the edge -----------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str | int] | None = None,
        body: dict[str, Any] | None = None,
    ) -> Any:
        """Send one call; return its JSON (None for 204) or raise the matching Jira error."""
        if self._session.auth is None:
            token = self._token() if callable(self._token) else self._token
            self._session.auth = (self._email, token)
        await_slot()  # a workflow step's paced call starts at its slot (pacing.py)
        started = time.perf_counter()
        status: int | None = None
        outcome = "unavailable"
        try:
            try:
                response = self._session.request(
                    method, self._base_url + path, params=params, json=body, timeout=self._timeout
                )
            except (requests.Timeout, requests.ConnectionError) as exc:
                raise JiraUnavailable(f"JSM {method} {path} failed: {type(exc).__name__}") from exc
            status = response.status_code
            try:
                response.raise_for_status()
            except requests.HTTPError as exc:
                outcome, error = _http_error(method, path, response)
                raise error from exc
            if status == 204 or not response.content:
                outcome = "ok"
                return None
            try:
                data = response.json()
            except requests.JSONDecodeError as exc:
                # A 2xx that is not JSON comes from a proxy or an outage page, not from JSM.
                raise JiraUnavailable(f"JSM {method} {path} answered non-JSON", status) from exc
            outcome = "ok"
            return data
        finally:
            record_jira_call(method, path, status, outcome, (time.perf_counter() - started) * 1000)


def _http_error(method: str, path: str, response: requests.Response) -> tuple[str, JiraError]:
    """The outcome name and the error to raise for a 4xx/5xx answer."""
    status = response.status_code
    message = f"JSM {method} {path} answered {status}: {_error_message(response)}"
    if status == 429:
        return "throttled", JiraRateLimited(
            message,
            status,
            retry_after=_retry_after(response.headers.get("Retry-After")),
            limit=_number(response.headers.get("X-RateLimit-Limit")),
        )
    if status >= 500:
        return "unavailable", JiraUnavailable(message, status)
    if status in (401, 403):
        return "auth_error", JiraAuthError(message, status)
    if status == 404:
        return "not_found", JiraNotFound(message, status)
    return "rejected", JiraRejected(message, status)


def _error_message(response: requests.Response) -> str:
    """JSM's `errorMessage` (or the platform API's `errorMessages`), else the reason phrase."""
    try:
        data = response.json()
    except requests.JSONDecodeError:
        return response.reason or "no details"
    if isinstance(data, dict):
        if isinstance(data.get("errorMessage"), str):
            return str(data["errorMessage"])
        messages = data.get("errorMessages")
        if isinstance(messages, list) and messages:
            return "; ".join(str(m) for m in messages)
    return response.reason or "no details"


def _retry_after(value: str | None) -> int | None:
    """Whole seconds from a Retry-After header; None when missing or not a number of seconds."""
    if value is None or not value.strip().isdigit():
        return None
    return int(value.strip())


def _number(value: str | None) -> float | None:
    """A positive number from a header, else None."""
    try:
        number = float(value) if value is not None else None
    except ValueError:
        return None
    return number if number is not None and number > 0 else None


def _account(user: dict[str, Any]) -> JsmAccount:
    return JsmAccount(
        account_id=str(user["accountId"]),
        email=str(user.get("emailAddress", "")),
        display_name=str(user.get("displayName", "")),
    )


def _organization(data: dict[str, Any]) -> Organization:
    return Organization(id=str(data["id"]), name=str(data["name"]))


def _jsm_request(value: dict[str, Any]) -> JsmRequest:
    summary = next(
        (
            str(f.get("value", ""))
            for f in value.get("requestFieldValues", [])
            if f.get("fieldId") == "summary"
        ),
        "",
    )
    reporter = value.get("reporter") or {}
    created = datetime.fromtimestamp(value["createdDate"]["epochMillis"] / 1000, UTC)
    return JsmRequest(
        key=str(value["issueKey"]),
        summary=summary,
        status=str(value.get("currentStatus", {}).get("status", "")),
        created=created.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        reporter=str(reporter.get("displayName") or reporter.get("emailAddress") or ""),
    )


@lru_cache(maxsize=1)
def jsm_client() -> JsmClient:
    """The process's client, built from settings (clear with `jsm_client.cache_clear()`)."""
    settings = get_settings()
    return JsmClient(
        settings.jira_base_url,
        settings.jira_email,
        jira_token,
        timeout=settings.jira_timeout_seconds,
    )
