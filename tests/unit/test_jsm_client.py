"""JsmClient against the JSM emulator: results, idempotency and the mapping of every failure."""

from __future__ import annotations

import json
import socket
import time
from typing import Any

import pytest
import requests

from chalicelib import config
from chalicelib.errors import (
    JiraAuthError,
    JiraCustomerExists,
    JiraError,
    JiraNotFound,
    JiraRateLimited,
    JiraRejected,
    JiraUnavailable,
)
from chalicelib.jira import JsmAccount, JsmClient, JsmRequest, Organization, ServiceDesk, jsm_client
from chalicelib.jira import client as client_module
from local.jsm_emulator import DEFAULT_EMAIL, DEFAULT_TOKEN, JsmEmulator


@pytest.fixture(autouse=True)
def _fresh_site(emulator: JsmEmulator) -> None:
    emulator.reset()


@pytest.fixture
def jsm(emulator: JsmEmulator) -> JsmClient:
    return JsmClient(emulator.url, DEFAULT_EMAIL, DEFAULT_TOKEN, timeout=2.0)


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, int | None, str]]:
    """The (method, path, status, outcome) of every `record_jira_call`."""
    calls: list[tuple[str, str, int | None, str]] = []

    def record(method: str, path: str, status: int | None, outcome: str, ms: float) -> None:
        assert ms >= 0
        calls.append((method, path, status, outcome))

    monkeypatch.setattr(client_module, "record_jira_call", record)
    return calls


def _fault(emulator: JsmEmulator, **rule: Any) -> None:
    emulator.set_faults([{"method": None, "path_regex": ".", "times": 1, **rule}])


# --- customers ----------------------------------------------------------------------------------


def test_session_carries_basic_auth_and_jsm_headers() -> None:
    # Given a caller's session
    session = requests.Session()

    # When a client is built on it
    JsmClient("http://jsm.example/", "bot@example.com", "secret", session=session)

    # Then it authenticates as the bot and opts in to JSM's experimental API
    assert session.auth == ("bot@example.com", "secret")
    assert session.headers["Accept"] == "application/json"
    assert session.headers["X-ExperimentalApi"] == "opt-in"


def test_find_customer_returns_the_exact_email_only(jsm: JsmClient) -> None:
    # Given two customers whose emails share a prefix
    jane = jsm.create_customer("jane@acme.example", "Jane Doe")
    jsm.create_customer("jane@acme.example.org", "Other Jane")

    # When searching by exact email (other case), by a mere prefix and by an unknown email
    found = jsm.find_customer("JANE@acme.example")
    prefix = jsm.find_customer("jane@acme")
    unknown = jsm.find_customer("nobody@acme.example")

    # Then only the exact match counts
    assert found == jane == JsmAccount(jane.account_id, "jane@acme.example", "Jane Doe")
    assert prefix is None
    assert unknown is None


def test_create_customer_conflict_is_customer_exists(jsm: JsmClient) -> None:
    # Given an existing customer
    jsm.create_customer("jane@acme.example", "Jane Doe")

    # When it is created again
    with pytest.raises(JiraCustomerExists) as caught:
        jsm.create_customer("jane@acme.example", "Jane Doe")

    # Then the conflict is a rejection with JSM's message
    assert isinstance(caught.value, JiraRejected)
    assert caught.value.status == 409
    assert "already exists" in caught.value.message


def test_create_customer_other_rejections_stay_rejections(
    jsm: JsmClient, emulator: JsmEmulator
) -> None:
    # Given JSM refusing customer creation with a 400
    _fault(emulator, status=400)

    # When creating a customer
    with pytest.raises(JiraRejected) as caught:
        jsm.create_customer("jane@acme.example", "Jane Doe")

    # Then it is not mistaken for a conflict
    assert not isinstance(caught.value, JiraCustomerExists)
    assert caught.value.status == 400


def test_ensure_customer_creates_a_new_customer_in_two_calls(
    jsm: JsmClient, emulator: JsmEmulator
) -> None:
    # Given an unknown email
    # When the customer is ensured
    account, created = jsm.ensure_customer("new@acme.example", "New Person")

    # Then it was created, after one search and one create
    assert created is True
    assert account.email == "new@acme.example"
    assert emulator.state()["customers"][0]["accountId"] == account.account_id
    assert [(c["method"], c["path"]) for c in emulator.calls()] == [
        ("GET", "/rest/api/3/user/search"),
        ("POST", "/rest/servicedeskapi/customer"),
    ]
    assert emulator.calls()[1]["query"] == "strictConflictStatusCode=true"


def test_ensure_customer_finds_an_existing_customer_in_one_call(
    jsm: JsmClient, emulator: JsmEmulator
) -> None:
    # Given an existing customer
    existing = jsm.create_customer("jane@acme.example", "Jane Doe")
    calls_before = len(emulator.calls())

    # When the customer is ensured
    account, created = jsm.ensure_customer("jane@acme.example", "Someone Else")

    # Then the existing account comes back after a single search
    assert (account, created) == (existing, False)
    assert len(emulator.calls()) - calls_before == 1


def test_ensure_customer_resolves_a_creation_race(
    jsm: JsmClient, emulator: JsmEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a customer another worker creates right after our first search found nothing
    other = JsmClient(emulator.url, DEFAULT_EMAIL, DEFAULT_TOKEN)
    real_find = jsm.find_customer
    searches: list[str] = []

    def find_after_race(email: str) -> JsmAccount | None:
        searches.append(email)
        if len(searches) == 1:
            other.create_customer(email, "Created Elsewhere")
            return None
        return real_find(email)

    monkeypatch.setattr(jsm, "find_customer", find_after_race)

    # When the customer is ensured
    account, created = jsm.ensure_customer("jane@acme.example", "Jane Doe")

    # Then our create hit 409 and the second search returned the other worker's account
    assert created is False
    assert account.display_name == "Created Elsewhere"
    assert len(searches) == 2
    assert [c["status"] for c in emulator.calls() if c["path"].endswith("/customer")] == [201, 409]


def test_ensure_customer_conflict_not_yet_searchable_is_retryable(
    jsm: JsmClient, emulator: JsmEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an existing customer that user search does not show (search index lag)
    jsm.create_customer("jane@acme.example", "Jane Doe")
    monkeypatch.setattr(jsm, "find_customer", lambda email: None)

    # When the customer is ensured
    with pytest.raises(JiraUnavailable) as caught:
        jsm.ensure_customer("jane@acme.example", "Jane Doe")

    # Then the failure is one worth retrying, caused by the conflict
    assert isinstance(caught.value.__cause__, JiraCustomerExists)


# --- service desks ------------------------------------------------------------------------------


def test_get_service_desk(jsm: JsmClient) -> None:
    # Given the emulator's initial desk
    # When it and an unknown desk are read
    desk = jsm.get_service_desk("1")
    with pytest.raises(JiraNotFound) as caught:
        jsm.get_service_desk("99")

    # Then the first is typed, the second is not found
    assert desk == ServiceDesk(id="1", project_key="SUP", project_name="Support")
    assert caught.value.status == 404
    assert "does not exist" in caught.value.message


def test_desk_membership_is_idempotent(jsm: JsmClient, emulator: JsmEmulator) -> None:
    # Given a customer
    account = jsm.create_customer("jane@acme.example", "Jane Doe")

    # When added twice, read, then removed twice
    jsm.add_to_service_desk("1", account.account_id)
    jsm.add_to_service_desk("1", account.account_id)
    after_add = emulator.state()["service_desks"][0]["customers"]
    jsm.remove_from_service_desk("1", account.account_id)
    jsm.remove_from_service_desk("1", account.account_id)

    # Then no call failed and membership followed
    assert after_add == [account.account_id]
    assert emulator.state()["service_desks"][0]["customers"] == []


def test_desk_membership_of_unknown_account_is_rejected_not_missing(jsm: JsmClient) -> None:
    # Given / When an unknown account is added to a desk
    with pytest.raises(JiraRejected) as caught:
        jsm.add_to_service_desk("1", "qm:unknown")

    # Then JSM's 400 is a plain rejection
    assert type(caught.value) is JiraRejected
    assert caught.value.status == 400


# --- organizations ------------------------------------------------------------------------------


def test_organizations_create_get_and_same_name(jsm: JsmClient) -> None:
    # Given an organization
    created = jsm.create_organization("Acme project")

    # When it is read, and created again by name
    read = jsm.get_organization(created.id)
    again = jsm.create_organization("Acme project")

    # Then all three are the same organization, with a string id
    assert created == read == again == Organization(id="1", name="Acme project")
    with pytest.raises(JiraNotFound):
        jsm.get_organization("99")


def test_attach_organization_sends_a_numeric_id(jsm: JsmClient, emulator: JsmEmulator) -> None:
    # Given an organization (the emulator refuses ids sent as strings, like a strict JSM)
    organization = jsm.create_organization("Acme project")

    # When it is attached twice
    jsm.attach_organization("1", organization.id)
    jsm.attach_organization("1", organization.id)

    # Then the desk lists it once
    assert emulator.state()["service_desks"][0]["organizations"] == [organization.id]


def test_attach_organization_with_a_non_numeric_id_is_not_found_without_a_call(
    jsm: JsmClient, emulator: JsmEmulator
) -> None:
    # Given / When attaching an id that cannot be a JSM organization id
    with pytest.raises(JiraNotFound):
        jsm.attach_organization("1", "acme")

    # Then JSM was not bothered
    assert emulator.calls() == []


def test_organization_membership_is_idempotent(jsm: JsmClient, emulator: JsmEmulator) -> None:
    # Given an organization and a customer
    organization = jsm.create_organization("Acme project")
    account = jsm.create_customer("jane@acme.example", "Jane Doe")

    # When the customer is added twice, read, then removed twice
    jsm.add_to_organization(organization.id, account.account_id)
    jsm.add_to_organization(organization.id, account.account_id)
    after_add = emulator.state()["organizations"][0]["users"]
    jsm.remove_from_organization(organization.id, account.account_id)
    jsm.remove_from_organization(organization.id, account.account_id)

    # Then no call failed and membership followed
    assert after_add == [account.account_id]
    assert emulator.state()["organizations"][0]["users"] == []


def test_organization_membership_errors(jsm: JsmClient) -> None:
    # Given an organization and a customer
    organization = jsm.create_organization("Acme project")
    account = jsm.create_customer("jane@acme.example", "Jane Doe")

    # When the organization or the account is unknown
    with pytest.raises(JiraNotFound):
        jsm.add_to_organization("99", account.account_id)
    with pytest.raises(JiraRejected) as caught:
        jsm.remove_from_organization(organization.id, "qm:unknown")

    # Then an unknown organization is not found, an unknown account a rejection
    assert caught.value.status == 400


# --- requests -----------------------------------------------------------------------------------


def test_open_requests_of_the_organization_newest_first(
    jsm: JsmClient, emulator: JsmEmulator
) -> None:
    # Given an organization with open and closed requests, and a request of another organization
    organization = jsm.create_organization("Acme project")
    other = jsm.create_organization("Other project")
    jsm.create_customer("rep@acme.example", "Rita Reporter")
    emulator.add_request("1", "Older", "rep@acme.example", organization.id)
    emulator.add_request("1", "Done", "rep@acme.example", organization.id, status="closed")
    emulator.add_request("1", "Elsewhere", "rep@acme.example", other.id)
    emulator.add_request("1", "Newer", "anon@acme.example", organization.id)

    # When the open requests are read
    found = jsm.open_requests("1", organization.id)

    # Then only the organization's open ones come back, newest first, typed
    assert [(r.key, r.summary, r.status, r.reporter) for r in found] == [
        ("SUP-4", "Newer", "Open", "anon@acme.example"),
        ("SUP-1", "Older", "Open", "Rita Reporter"),
    ]
    assert isinstance(found[0], JsmRequest)
    assert found[0].created.endswith("Z")
    assert found[0].created > found[1].created
    query = emulator.calls()[-1]["query"]
    assert "requestOwnership=ORGANIZATION" in query
    assert "requestStatus=OPEN_REQUESTS" in query
    assert "limit=10" in query


def test_open_requests_respects_the_limit(jsm: JsmClient, emulator: JsmEmulator) -> None:
    # Given three open requests of an organization
    organization = jsm.create_organization("Acme project")
    for n in range(3):
        emulator.add_request("1", f"Request {n}", "rep@acme.example", organization.id)

    # When two are asked for
    found = jsm.open_requests("1", organization.id, limit=2)

    # Then the two newest come back
    assert [r.summary for r in found] == ["Request 2", "Request 1"]


# --- error mapping ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error_type", "outcome"),
    [
        (400, JiraRejected, "rejected"),
        (409, JiraRejected, "rejected"),
        (401, JiraAuthError, "auth_error"),
        (403, JiraAuthError, "auth_error"),
        (404, JiraNotFound, "not_found"),
        (500, JiraUnavailable, "unavailable"),
        (503, JiraUnavailable, "unavailable"),
        (429, JiraRateLimited, "throttled"),
    ],
)
def test_http_errors_map_to_jira_errors(
    emulator: JsmEmulator,
    recorded: list[tuple[str, str, int | None, str]],
    status: int,
    error_type: type[JiraError],
    outcome: str,
) -> None:
    # Given JSM failing the next call with `status`
    jsm = JsmClient(emulator.url, DEFAULT_EMAIL, DEFAULT_TOKEN)
    _fault(emulator, status=status)

    # When a desk is read
    with pytest.raises(error_type) as caught:
        jsm.get_service_desk("1")

    # Then the typed error carries the status and JSM's message, and the call is recorded
    assert type(caught.value) is error_type
    assert caught.value.status == status
    assert "Injected fault" in caught.value.message
    assert isinstance(caught.value.__cause__, requests.HTTPError)
    assert recorded == [("GET", "/rest/servicedeskapi/servicedesk/1", status, outcome)]


def test_wrong_credentials_are_an_auth_error(emulator: JsmEmulator) -> None:
    # Given a client with a wrong token
    jsm = JsmClient(emulator.url, DEFAULT_EMAIL, "wrong-token")

    # When it calls JSM
    with pytest.raises(JiraAuthError) as caught:
        jsm.get_service_desk("1")

    # Then it is an auth error that does not leak the token
    assert caught.value.status == 401
    assert "wrong-token" not in str(caught.value)


@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [(7, 7), (None, None), ("Wed, 21 Oct 2015 07:28:00 GMT", None), ("soon", None)],
)
def test_throttling_carries_retry_after_seconds(
    jsm: JsmClient, emulator: JsmEmulator, retry_after: int | str | None, expected: int | None
) -> None:
    # Given JSM answering 429 with some Retry-After
    _fault(emulator, status=429, retry_after=retry_after)

    # When a call is made
    with pytest.raises(JiraRateLimited) as caught:
        jsm.find_customer("jane@acme.example")

    # Then whole seconds are passed on, anything else is None (the caller backs off itself)
    assert caught.value.retry_after == expected


def test_rate_limit_is_throttling(jsm: JsmClient, emulator: JsmEmulator) -> None:
    # Given a limit of one call per second
    emulator.set_faults([], rate_limit_per_second=1)

    # When two calls are made at once
    jsm.get_service_desk("1")
    with pytest.raises(JiraRateLimited) as caught:
        jsm.get_service_desk("1")

    # Then the second one is told to wait a second
    assert caught.value.retry_after == 1


def test_answer_slower_than_the_timeout_is_unavailable(
    emulator: JsmEmulator, recorded: list[tuple[str, str, int | None, str]]
) -> None:
    # Given a client with a short timeout and JSM answering later than it
    jsm = JsmClient(emulator.url, DEFAULT_EMAIL, DEFAULT_TOKEN, timeout=0.2)
    _fault(emulator, status=None, delay_ms=600)

    # When a call is made
    started = time.perf_counter()
    with pytest.raises(JiraUnavailable) as caught:
        jsm.get_organization("1")

    # Then it fails at the timeout, without a status, as a retryable error
    assert time.perf_counter() - started < 0.5
    assert caught.value.status is None
    assert isinstance(caught.value.__cause__, requests.Timeout)
    assert recorded == [("GET", "/rest/servicedeskapi/organization/1", None, "unavailable")]


def test_answer_slower_than_usual_but_within_the_timeout_succeeds(emulator: JsmEmulator) -> None:
    # Given a client with a short timeout and JSM answering a little late
    jsm = JsmClient(emulator.url, DEFAULT_EMAIL, DEFAULT_TOKEN, timeout=0.5)
    _fault(emulator, status=None, delay_ms=100)

    # When a call is made
    desk = jsm.get_service_desk("1")

    # Then the answer is used
    assert desk.project_key == "SUP"


def test_connection_refused_is_unavailable() -> None:
    # Given a port nobody listens on
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    jsm = JsmClient(f"http://127.0.0.1:{port}", DEFAULT_EMAIL, DEFAULT_TOKEN, timeout=0.5)

    # When a call is made
    with pytest.raises(JiraUnavailable) as caught:
        jsm.get_service_desk("1")

    # Then it is retryable and has no status
    assert caught.value.status is None
    assert isinstance(caught.value.__cause__, requests.ConnectionError)


def test_successful_calls_are_recorded_without_query(
    jsm: JsmClient, recorded: list[tuple[str, str, int | None, str]]
) -> None:
    # Given / When a search (with a query string) and a create are made
    jsm.find_customer("jane@acme.example")
    jsm.create_customer("jane@acme.example", "Jane Doe")

    # Then both are recorded as ok, by path only (the query holds an email)
    assert recorded == [
        ("GET", "/rest/api/3/user/search", 200, "ok"),
        ("POST", "/rest/servicedeskapi/customer", 201, "ok"),
    ]


class _CannedSession(requests.Session):
    """Answers every request with one fixed response, for shapes the emulator never sends."""

    def __init__(self, status: int, body: bytes, reason: str = "") -> None:
        super().__init__()
        self._status, self._body, self._reason = status, body, reason

    def request(
        self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any
    ) -> requests.Response:
        response = requests.Response()
        response.status_code = self._status
        response._content = self._body
        response.reason = self._reason
        response.url = str(url)
        return response


def test_platform_api_error_messages_are_included() -> None:
    # Given Jira's platform error shape
    body = json.dumps({"errorMessages": ["The query is too short"], "errors": {}}).encode()
    jsm = JsmClient("http://jsm.example", "bot@example.com", "t", session=_CannedSession(400, body))

    # When a search fails with it
    with pytest.raises(JiraRejected) as caught:
        jsm.find_customer("a@acme.example")

    # Then the message says why
    assert "The query is too short" in caught.value.message


def test_error_without_json_body_uses_the_reason() -> None:
    # Given a gateway error page
    session = _CannedSession(502, b"<html>Bad gateway</html>", reason="Bad Gateway")
    jsm = JsmClient("http://jsm.example", "bot@example.com", "t", session=session)

    # When a call fails with it
    with pytest.raises(JiraUnavailable) as caught:
        jsm.get_service_desk("1")

    # Then the reason phrase stands in for JSM's message
    assert caught.value.status == 502
    assert "Bad Gateway" in caught.value.message


def test_success_that_is_not_json_is_unavailable() -> None:
    # Given a 200 that is an HTML page (a proxy or outage page, not JSM)
    session = _CannedSession(200, b"<html>Maintenance</html>")
    jsm = JsmClient("http://jsm.example", "bot@example.com", "t", session=session)

    # When a call gets it
    with pytest.raises(JiraUnavailable) as caught:
        jsm.get_service_desk("1")

    # Then it is a retryable failure, not a crash
    assert caught.value.status == 200


# --- factory ------------------------------------------------------------------------------------


def test_jsm_client_factory_uses_settings_and_is_cached(
    emulator: JsmEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given settings pointing at the emulator
    monkeypatch.setenv("HELPDESK_JIRA_URL", emulator.url + "/")
    monkeypatch.setenv("HELPDESK_JIRA_EMAIL", DEFAULT_EMAIL)
    monkeypatch.setenv("HELPDESK_JIRA_TOKEN", DEFAULT_TOKEN)
    monkeypatch.delenv("HELPDESK_JIRA_TOKEN_SECRET_ARN", raising=False)
    config.get_settings.cache_clear()
    jsm_client.cache_clear()
    try:
        # When the client is built twice and used
        first, second = jsm_client(), jsm_client()
        desk = first.get_service_desk("1")
    finally:
        config.get_settings.cache_clear()
        jsm_client.cache_clear()

    # Then it is one cached client that reaches JSM
    assert first is second
    assert desk.project_key == "SUP"


def test_member_reads_are_paged_a_5000_member_organization_costs_100_calls(
    jsm: JsmClient, emulator: JsmEmulator
) -> None:
    # Given an organization of 5,000 customers, all customers of desk 1 too
    organization = jsm.create_organization("Big customer")
    emulator.add_members(organization.id, 5000, desk_id="1")
    before = len(emulator.calls())

    # When every member and every desk customer is read
    members = jsm.organization_accounts(organization.id)
    customers = jsm.service_desk_customers("1")

    # Then 100 calls each (limit=50, start advancing until isLastPage), nothing missed
    calls = emulator.calls()[before:]
    assert len({m.account_id for m in members}) == 5000
    assert len(customers) == 5000
    assert len(calls) == 200
    org_calls = [c for c in calls if "/organization/" in c["path"]]
    assert len(org_calls) == 100
    assert all("limit=50" in c["query"] for c in calls)
    assert [c["query"] for c in org_calls[:2]] == ["start=0&limit=50", "start=50&limit=50"]
