"""The JSM emulator answers like JSM Cloud (SPEC §7) and its control API works (SPEC §5)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any, Protocol

import pytest
import requests

from local.jsm_emulator import DEFAULT_EMAIL, DEFAULT_TOKEN, JsmEmulator

SD = "/rest/servicedeskapi"
INITIAL_STATE = {
    "customers": [],
    "service_desks": [
        {
            "id": "1",
            "projectKey": "SUP",
            "projectName": "Support",
            "customers": [],
            "organizations": [],
        }
    ],
    "organizations": [],
    "requests": [],
}


class Api(Protocol):
    def __call__(self, method: str, path: str, **kwargs: Any) -> requests.Response: ...


@pytest.fixture(autouse=True)
def _fresh_site(emulator: JsmEmulator) -> None:
    emulator.reset()


@pytest.fixture
def api(emulator: JsmEmulator) -> Iterator[Api]:
    """Calls the emulator with the bot's credentials (pass `auth=` to override)."""
    session = requests.Session()
    session.auth = (DEFAULT_EMAIL, DEFAULT_TOKEN)

    def call(method: str, path: str, **kwargs: Any) -> requests.Response:
        return session.request(method, emulator.url + path, timeout=5, **kwargs)

    yield call
    session.close()


def _customer(api: Api, email: str, name: str = "Jane Doe") -> str:
    response = api(
        "POST",
        f"{SD}/customer?strictConflictStatusCode=true",
        json={"email": email, "displayName": name},
    )
    assert response.status_code == 201
    return str(response.json()["accountId"])


def _organization(api: Api, name: str = "Acme project") -> str:
    response = api("POST", f"{SD}/organization", json={"name": name})
    assert response.status_code == 201
    return str(response.json()["id"])


def _assert_jsm_error(response: requests.Response, status: int) -> None:
    assert response.status_code == status
    body = response.json()
    assert isinstance(body["errorMessage"], str)
    assert body["errorMessage"]
    assert set(body["i18nErrorMessage"]) == {"i18nKey", "parameters"}


# --- auth ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "auth", [None, (DEFAULT_EMAIL, "wrong-token"), ("other@example.com", DEFAULT_TOKEN)]
)
def test_jsm_paths_need_the_bots_basic_auth(
    emulator: JsmEmulator, auth: tuple[str, str] | None
) -> None:
    # Given no or wrong credentials
    # When a JSM path is called
    response = requests.get(f"{emulator.url}{SD}/servicedesk/1", auth=auth, timeout=5)

    # Then JSM answers 401 with its error body, and the call is recorded
    _assert_jsm_error(response, 401)
    assert [c["status"] for c in emulator.calls()] == [401]


def test_control_paths_need_no_auth_and_start_with_service_desk_1(emulator: JsmEmulator) -> None:
    # Given a fresh emulator
    # When its state is read without credentials
    response = requests.get(f"{emulator.url}/_emulator/state", timeout=5)

    # Then only service desk 1 (SUP, Support) exists
    assert response.status_code == 200
    assert response.json() == INITIAL_STATE == emulator.state()


# --- customers ----------------------------------------------------------------------------------


def test_user_search_finds_a_customer_by_email_ignoring_case(api: Api) -> None:
    # Given a customer
    account_id = _customer(api, "jane.doe@acme.example")

    # When searching by the email in another case
    response = api("GET", "/rest/api/3/user/search", params={"query": "Jane.Doe@ACME.example"})

    # Then the customer is the one result
    assert response.status_code == 200
    assert response.json() == [
        {
            "accountId": account_id,
            "emailAddress": "jane.doe@acme.example",
            "displayName": "Jane Doe",
            "accountType": "customer",
            "active": True,
        }
    ]


def test_user_search_matches_prefixes_like_jira(api: Api) -> None:
    # Given two customers whose emails share a prefix
    _customer(api, "ann@acme.example")
    _customer(api, "ann@acme.example.org")

    # When searching for the shorter email
    response = api("GET", "/rest/api/3/user/search", params={"query": "ann@acme.example"})

    # Then both match, as in Jira: callers filter for the exact email
    assert sorted(u["emailAddress"] for u in response.json()) == [
        "ann@acme.example",
        "ann@acme.example.org",
    ]


def test_user_search_without_match_or_query(api: Api) -> None:
    # Given no customers
    # When searching for an unknown email, and without a query
    unknown = api("GET", "/rest/api/3/user/search", params={"query": "nobody@acme.example"})
    missing = api("GET", "/rest/api/3/user/search")

    # Then the first is an empty list and the second a 400
    assert unknown.status_code == 200
    assert unknown.json() == []
    _assert_jsm_error(missing, 400)


def test_create_customer_returns_an_opaque_string_account_id(
    api: Api, emulator: JsmEmulator
) -> None:
    # Given a new email
    # When the customer is created
    response = api(
        "POST",
        f"{SD}/customer",
        params={"strictConflictStatusCode": "true"},
        json={"email": "new@acme.example", "displayName": "New Person"},
    )

    # Then it is 201 with the account, and the account is in the state
    assert response.status_code == 201
    body = response.json()
    assert body["accountId"].startswith("qm:")
    assert body == {
        "accountId": body["accountId"],
        "emailAddress": "new@acme.example",
        "displayName": "New Person",
    }
    assert emulator.state()["customers"] == [body]


@pytest.mark.parametrize(("query", "status"), [("?strictConflictStatusCode=true", 409), ("", 400)])
def test_create_existing_customer_is_409_with_strict_flag_else_400(
    api: Api, query: str, status: int
) -> None:
    # Given an existing customer
    _customer(api, "jane@acme.example")

    # When the same email (other case) is created again
    response = api(
        "POST", f"{SD}/customer{query}", json={"email": "JANE@acme.example", "displayName": "J"}
    )

    # Then JSM refuses with 409 only when asked for strict conflict codes
    _assert_jsm_error(response, status)


@pytest.mark.parametrize("body", [{"displayName": "No Email"}, {"email": "not-an-email"}])
def test_create_customer_without_a_valid_email_is_400(api: Api, body: dict[str, str]) -> None:
    # Given a body without a usable email
    # When creating the customer
    response = api("POST", f"{SD}/customer?strictConflictStatusCode=true", json=body)

    # Then it is a 400
    _assert_jsm_error(response, 400)


# --- service desks ------------------------------------------------------------------------------


def test_get_service_desk(api: Api) -> None:
    # Given the initial desk
    # When it and an unknown desk are read
    known = api("GET", f"{SD}/servicedesk/1")
    unknown = api("GET", f"{SD}/servicedesk/99")

    # Then the first is found with string ids, the second is a 404
    assert known.status_code == 200
    assert known.json() == {
        "id": "1",
        "projectId": "10001",
        "projectKey": "SUP",
        "projectName": "Support",
    }
    _assert_jsm_error(unknown, 404)


@pytest.mark.parametrize("method", ["POST", "DELETE"])
def test_desk_customers_add_and_remove_are_idempotent(
    api: Api, emulator: JsmEmulator, method: str
) -> None:
    # Given a customer, already added when testing the add and absent when testing the removal
    account_id = _customer(api, "jane@acme.example")
    if method == "POST":
        api("POST", f"{SD}/servicedesk/1/customer", json={"accountIds": [account_id]})

    # When the same change is asked twice
    first = api(method, f"{SD}/servicedesk/1/customer", json={"accountIds": [account_id]})
    second = api(method, f"{SD}/servicedesk/1/customer", json={"accountIds": [account_id]})

    # Then both are 204 and the desk holds the account at most once
    assert (first.status_code, second.status_code) == (204, 204)
    assert first.content == b""
    expected = [account_id] if method == "POST" else []
    assert emulator.state()["service_desks"][0]["customers"] == expected


def test_removing_a_desk_customer_takes_it_out(api: Api, emulator: JsmEmulator) -> None:
    # Given a customer of desk 1
    account_id = _customer(api, "jane@acme.example")
    api("POST", f"{SD}/servicedesk/1/customer", json={"accountIds": [account_id]})

    # When it is removed
    response = api("DELETE", f"{SD}/servicedesk/1/customer", json={"accountIds": [account_id]})

    # Then the desk has no customers left
    assert response.status_code == 204
    assert emulator.state()["service_desks"][0]["customers"] == []


@pytest.mark.parametrize("method", ["POST", "DELETE"])
def test_desk_customers_errors(api: Api, method: str) -> None:
    # Given a known account
    account_id = _customer(api, "jane@acme.example")

    # When the account, the body or the desk is wrong
    unknown_account = api(method, f"{SD}/servicedesk/1/customer", json={"accountIds": ["qm:nope"]})
    empty = api(method, f"{SD}/servicedesk/1/customer", json={"accountIds": []})
    unknown_desk = api(method, f"{SD}/servicedesk/99/customer", json={"accountIds": [account_id]})

    # Then unknown accounts and bad bodies are 400, an unknown desk is 404
    _assert_jsm_error(unknown_account, 400)
    _assert_jsm_error(empty, 400)
    _assert_jsm_error(unknown_desk, 404)


# --- organizations ------------------------------------------------------------------------------


def test_create_organization_and_an_existing_name_returns_it(api: Api) -> None:
    # Given an organization
    first = api("POST", f"{SD}/organization", json={"name": "Acme project"})

    # When one with the same name is created, then another one
    again = api("POST", f"{SD}/organization", json={"name": "Acme project"})
    other = api("POST", f"{SD}/organization", json={"name": "Other project"})

    # Then the same name gives the same organization (201), another name a new one
    assert first.status_code == again.status_code == other.status_code == 201
    assert first.json() == again.json() == {"id": "1", "name": "Acme project"}
    assert other.json() == {"id": "2", "name": "Other project"}


def test_create_organization_needs_a_name(api: Api) -> None:
    # Given / When an organization without a name is created
    response = api("POST", f"{SD}/organization", json={"name": " "})

    # Then it is a 400
    _assert_jsm_error(response, 400)


def test_get_organization(api: Api) -> None:
    # Given an organization
    organization_id = _organization(api)

    # When it and an unknown one are read
    known = api("GET", f"{SD}/organization/{organization_id}")
    unknown = api("GET", f"{SD}/organization/99")

    # Then the first is found, the second is a 404
    assert known.status_code == 200
    assert known.json() == {"id": organization_id, "name": "Acme project"}
    _assert_jsm_error(unknown, 404)


def test_attach_organization_to_desk_is_idempotent(api: Api, emulator: JsmEmulator) -> None:
    # Given an organization
    organization_id = _organization(api)

    # When it is attached to desk 1 twice, with a JSON number as JSM expects
    responses = [
        api(
            "POST",
            f"{SD}/servicedesk/1/organization",
            json={"organizationId": int(organization_id)},
        )
        for _ in range(2)
    ]

    # Then both are 204 and the desk lists it once
    assert [r.status_code for r in responses] == [204, 204]
    assert emulator.state()["service_desks"][0]["organizations"] == [organization_id]


def test_attach_organization_errors(api: Api) -> None:
    # Given an organization
    organization_id = _organization(api)

    # When the organization or desk is unknown, or the id is sent as a string
    unknown_org = api("POST", f"{SD}/servicedesk/1/organization", json={"organizationId": 99})
    unknown_desk = api(
        "POST", f"{SD}/servicedesk/99/organization", json={"organizationId": int(organization_id)}
    )
    string_id = api(
        "POST", f"{SD}/servicedesk/1/organization", json={"organizationId": organization_id}
    )

    # Then unknown ids are 404 and a string id is a 400
    _assert_jsm_error(unknown_org, 404)
    _assert_jsm_error(unknown_desk, 404)
    _assert_jsm_error(string_id, 400)


def test_organization_users_add_and_remove_are_idempotent(api: Api, emulator: JsmEmulator) -> None:
    # Given an organization and a customer
    organization_id = _organization(api)
    account_id = _customer(api, "jane@acme.example")
    path = f"{SD}/organization/{organization_id}/user"

    # When the customer is added twice, and then removed twice
    added = [api("POST", path, json={"accountIds": [account_id]}).status_code for _ in range(2)]
    users_after_add = emulator.state()["organizations"][0]["users"]
    removed = [api("DELETE", path, json={"accountIds": [account_id]}).status_code for _ in range(2)]

    # Then every call is 204 and membership follows
    assert added == removed == [204, 204]
    assert users_after_add == [account_id]
    assert emulator.state()["organizations"][0]["users"] == []


@pytest.mark.parametrize("method", ["POST", "DELETE"])
def test_organization_users_errors(api: Api, method: str) -> None:
    # Given an organization and a customer
    organization_id = _organization(api)
    account_id = _customer(api, "jane@acme.example")

    # When the account or the organization is unknown
    unknown_account = api(
        method, f"{SD}/organization/{organization_id}/user", json={"accountIds": ["qm:nope"]}
    )
    unknown_org = api(method, f"{SD}/organization/99/user", json={"accountIds": [account_id]})

    # Then unknown accounts are 400 and unknown organizations 404
    _assert_jsm_error(unknown_account, 400)
    _assert_jsm_error(unknown_org, 404)


def test_organization_users_are_paged(api: Api) -> None:
    # Given an organization with three users
    organization_id = _organization(api)
    ids = [_customer(api, f"user{i}@acme.example", f"User {i}") for i in range(3)]
    api("POST", f"{SD}/organization/{organization_id}/user", json={"accountIds": ids})

    # When reading pages of two
    first = api("GET", f"{SD}/organization/{organization_id}/user", params={"limit": 2}).json()
    second = api(
        "GET", f"{SD}/organization/{organization_id}/user", params={"start": 2, "limit": 2}
    ).json()

    # Then the pages split the users in order
    assert {k: first[k] for k in ("size", "start", "limit", "isLastPage")} == {
        "size": 2,
        "start": 0,
        "limit": 2,
        "isLastPage": False,
    }
    assert [u["accountId"] for u in first["values"]] == ids[:2]
    assert first["values"][0] == {
        "accountId": ids[0],
        "emailAddress": "user0@acme.example",
        "displayName": "User 0",
    }
    assert (second["size"], second["start"], second["isLastPage"]) == (1, 2, True)
    assert [u["accountId"] for u in second["values"]] == ids[2:]


def test_organization_users_of_unknown_organization_or_bad_paging(api: Api) -> None:
    # Given an organization
    organization_id = _organization(api)

    # When listing users of an unknown organization, or with a non-numeric limit
    unknown = api("GET", f"{SD}/organization/99/user")
    bad_limit = api("GET", f"{SD}/organization/{organization_id}/user", params={"limit": "ten"})

    # Then 404 and 400
    _assert_jsm_error(unknown, 404)
    _assert_jsm_error(bad_limit, 400)


# --- requests -----------------------------------------------------------------------------------


def _seed_request(api: Api, **fields: Any) -> str:
    body = {
        "service_desk_id": "1",
        "summary": "Printer on fire",
        "reporter_email": "rep@acme.example",
        **fields,
    }
    response = api("POST", "/_emulator/requests", json=body)
    assert response.status_code == 201
    return str(response.json()["issueKey"])


def test_requests_of_an_organization_newest_first(api: Api) -> None:
    # Given an organization with two open and one closed request, and a request of another org
    organization_id = _organization(api)
    other_id = _organization(api, "Other project")
    older = _seed_request(api, organization_id=organization_id, summary="Older")
    _seed_request(api, organization_id=organization_id, status="closed")
    _seed_request(api, organization_id=other_id)
    newer = _seed_request(api, organization_id=organization_id, summary="Newer")

    # When the organization's open requests are listed
    response = api(
        "GET",
        f"{SD}/request",
        params={
            "serviceDeskId": "1",
            "requestOwnership": "ORGANIZATION",
            "organizationId": organization_id,
            "requestStatus": "OPEN_REQUESTS",
            "limit": 10,
        },
    )

    # Then only its open ones come back, newest first, in JSM's shape
    assert response.status_code == 200
    page = response.json()
    assert (page["size"], page["start"], page["limit"], page["isLastPage"]) == (2, 0, 10, True)
    assert [r["issueKey"] for r in page["values"]] == [newer, older] == ["SUP-4", "SUP-1"]
    first = page["values"][0]
    assert first["serviceDeskId"] == "1"
    assert first["requestFieldValues"] == [
        {"fieldId": "summary", "label": "Summary", "value": "Newer"}
    ]
    assert first["currentStatus"] == {"status": "Open", "statusCategory": "NEW"}
    assert first["reporter"]["emailAddress"] == "rep@acme.example"
    assert set(first["createdDate"]) == {"iso8601", "friendly", "epochMillis"}
    assert first["createdDate"]["epochMillis"] > page["values"][1]["createdDate"]["epochMillis"]


@pytest.mark.parametrize(
    ("request_status", "expected"),
    [
        ("CLOSED_REQUESTS", ["SUP-2"]),
        ("ALL_REQUESTS", ["SUP-2", "SUP-1"]),
        (None, ["SUP-2", "SUP-1"]),
    ],
)
def test_requests_filter_by_status(
    api: Api, request_status: str | None, expected: list[str]
) -> None:
    # Given one open and one closed request
    _seed_request(api)
    _seed_request(api, status="closed")

    # When listing with a status filter (default: all)
    params = {"serviceDeskId": "1"} | ({"requestStatus": request_status} if request_status else {})
    response = api("GET", f"{SD}/request", params=params)

    # Then the filter applies
    assert [r["issueKey"] for r in response.json()["values"]] == expected
    if request_status == "CLOSED_REQUESTS":
        assert response.json()["values"][0]["currentStatus"] == {
            "status": "Closed",
            "statusCategory": "DONE",
        }


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"requestOwnership": "ORGANIZATION"}, 400),
        ({"requestOwnership": "ORGANIZATION", "organizationId": "99"}, 404),
        ({"serviceDeskId": "99"}, 404),
        ({"requestStatus": "SOMETIMES"}, 400),
        ({"requestOwnership": "APPROVER"}, 400),
    ],
)
def test_requests_errors(api: Api, params: dict[str, str], status: int) -> None:
    # Given / When the request list is asked with bad filters
    response = api("GET", f"{SD}/request", params=params)

    # Then JSM answers with an error
    _assert_jsm_error(response, status)


# --- malformed input and unknown paths ----------------------------------------------------------


def test_malformed_json_body_is_400(api: Api) -> None:
    # Given / When a body that is not JSON, or not an object, is sent
    broken = api(
        "POST",
        f"{SD}/organization",
        data=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    not_object = api("POST", f"{SD}/organization", json=["Acme"])

    # Then both are 400
    _assert_jsm_error(broken, 400)
    _assert_jsm_error(not_object, 400)


def test_unknown_path_is_404_and_wrong_method_405(api: Api) -> None:
    # Given / When an unknown path and a known path with the wrong method are called
    unknown = api("GET", f"{SD}/nothing/here")
    wrong_method = api("DELETE", f"{SD}/organization")

    # Then JSM-style 404 and 405
    _assert_jsm_error(unknown, 404)
    _assert_jsm_error(wrong_method, 405)


# --- control API --------------------------------------------------------------------------------


def test_seeded_requests_use_the_desks_project_key_and_create_the_reporter(
    api: Api, emulator: JsmEmulator
) -> None:
    # Given a second service desk
    created = api(
        "POST", "/_emulator/service-desks", json={"projectKey": "OPS", "projectName": "Operations"}
    )
    desk_id = created.json()["id"]

    # When requests are seeded on both desks
    keys = [
        _seed_request(api),
        _seed_request(api, service_desk_id=desk_id),
        _seed_request(api),
    ]

    # Then keys count per project, and the reporter became one customer
    assert (created.status_code, desk_id) == (201, "2")
    assert keys == ["SUP-1", "OPS-1", "SUP-2"]
    state = emulator.state()
    assert [c["emailAddress"] for c in state["customers"]] == ["rep@acme.example"]
    assert state["requests"][1] == {
        "issueKey": "OPS-1",
        "serviceDeskId": "2",
        "organizationId": None,
        "summary": "Printer on fire",
        "status": "open",
        "reporter": "rep@acme.example",
    }


def test_control_api_validates_its_input(api: Api) -> None:
    # Given / When seeding with bad bodies, unknown ids or a taken project key
    missing = api("POST", "/_emulator/requests", json={"service_desk_id": "1"})
    unknown_desk = api(
        "POST",
        "/_emulator/requests",
        json={"service_desk_id": "9", "summary": "s", "reporter_email": "r@acme.example"},
    )
    unknown_org = api(
        "POST",
        "/_emulator/requests",
        json={
            "service_desk_id": "1",
            "organization_id": "9",
            "summary": "s",
            "reporter_email": "r@acme.example",
        },
    )
    taken_key = api(
        "POST", "/_emulator/service-desks", json={"projectKey": "SUP", "projectName": "Again"}
    )
    bad_desk = api("POST", "/_emulator/service-desks", json={"projectKey": "OPS"})
    unknown_control = api("GET", "/_emulator/nothing")

    # Then each is refused
    assert [
        r.status_code
        for r in (missing, unknown_desk, unknown_org, taken_key, bad_desk, unknown_control)
    ] == [
        400,
        404,
        404,
        409,
        400,
        404,
    ]


def test_reset_restores_the_initial_site(api: Api, emulator: JsmEmulator) -> None:
    # Given customers, organizations, requests, faults and calls
    _customer(api, "jane@acme.example")
    _organization(api)
    _seed_request(api)
    api("POST", "/_emulator/faults", json={"rules": [{"path_regex": ".", "status": 500}]})

    # When the emulator is reset over HTTP
    response = api("POST", "/_emulator/reset")

    # Then the site is back to desk 1 only, with no calls and no faults
    assert response.status_code == 204
    assert emulator.state() == INITIAL_STATE
    assert emulator.calls() == []
    assert api("GET", f"{SD}/servicedesk/1").status_code == 200


def test_calls_lists_only_jsm_calls_oldest_first(api: Api, emulator: JsmEmulator) -> None:
    # Given a few JSM calls mixed with control calls
    api("GET", f"{SD}/servicedesk/1")
    api("GET", "/_emulator/state")
    api("GET", "/rest/api/3/user/search", params={"query": "x@acme.example"})
    api("GET", f"{SD}/servicedesk/99")

    # When the calls are read over HTTP
    items = api("GET", "/_emulator/calls").json()["items"]

    # Then they are the JSM calls in order, with the query kept apart from the path
    assert [(c["method"], c["path"], c["query"], c["status"]) for c in items] == [
        ("GET", f"{SD}/servicedesk/1", "", 200),
        ("GET", "/rest/api/3/user/search", "query=x%40acme.example", 200),
        ("GET", f"{SD}/servicedesk/99", "", 404),
    ]
    assert all(c["at"].endswith("Z") for c in items)
    assert [c["at"] for c in items] == sorted(c["at"] for c in items)
    assert items == emulator.calls()


# --- faults and rate limit ----------------------------------------------------------------------


def test_fault_with_status_and_times_then_normal_answers(api: Api, emulator: JsmEmulator) -> None:
    # Given a rule failing the next two desk reads with 503
    set_faults = api(
        "POST",
        "/_emulator/faults",
        json={
            "rules": [
                {"method": "GET", "path_regex": r"/servicedesk/\d+$", "status": 503, "times": 2}
            ]
        },
    )

    # When the desk is read three times, and an unmatched path once
    statuses = [api("GET", f"{SD}/servicedesk/1").status_code for _ in range(3)]
    unmatched = api("POST", f"{SD}/organization", json={"name": "Acme"})

    # Then the first two fail with a JSM error body, and every call is recorded with its status
    assert set_faults.status_code == 204
    assert statuses == [503, 503, 200]
    assert unmatched.status_code == 201
    assert [c["status"] for c in emulator.calls()] == [503, 503, 200, 201]


def test_fault_body_and_retry_after_header(api: Api) -> None:
    # Given a rule answering 429 with Retry-After forever, for any method
    api(
        "POST",
        "/_emulator/faults",
        json={
            "rules": [
                {
                    "method": "*",
                    "path_regex": "organization",
                    "status": 429,
                    "times": None,
                    "retry_after": 7,
                }
            ]
        },
    )

    # When two calls hit it
    responses = [
        api("GET", f"{SD}/organization/1"),
        api("POST", f"{SD}/organization", json={"name": "A"}),
    ]

    # Then both are 429 with Retry-After and X-RateLimit-* headers
    for response in responses:
        _assert_jsm_error(response, 429)
        assert response.headers["Retry-After"] == "7"
        assert response.headers["X-RateLimit-Remaining"] == "0"
        assert "X-RateLimit-Reset" in response.headers


def test_fault_method_must_match(api: Api) -> None:
    # Given a rule for DELETE only
    api(
        "POST",
        "/_emulator/faults",
        json={"rules": [{"method": "DELETE", "path_regex": "servicedesk", "status": 500}]},
    )

    # When the desk is read with GET
    response = api("GET", f"{SD}/servicedesk/1")

    # Then the rule does not apply
    assert response.status_code == 200


def test_fault_without_status_answers_normally_after_the_delay(
    api: Api, emulator: JsmEmulator
) -> None:
    # Given a 150 ms delay on desk reads, once
    emulator.set_faults(
        [
            {
                "method": "GET",
                "path_regex": "servicedesk/1$",
                "status": None,
                "times": 1,
                "delay_ms": 150,
            }
        ]
    )

    # When the desk is read twice
    started = time.perf_counter()
    delayed = api("GET", f"{SD}/servicedesk/1")
    delayed_s = time.perf_counter() - started
    started = time.perf_counter()
    api("GET", f"{SD}/servicedesk/1")
    normal_s = time.perf_counter() - started

    # Then the first answer is normal but late, the second immediate
    assert delayed.status_code == 200
    assert delayed.json()["projectKey"] == "SUP"
    assert delayed_s >= 0.15
    assert normal_s < 0.15


def test_rate_limit_answers_429_beyond_n_per_second(api: Api) -> None:
    # Given a limit of 2 requests per second
    api("POST", "/_emulator/faults", json={"rules": [], "rate_limit_per_second": 2})

    # When three requests arrive at once
    statuses = [api("GET", f"{SD}/servicedesk/1") for _ in range(3)]

    # Then the third is throttled with Retry-After: 1
    assert [r.status_code for r in statuses] == [200, 200, 429]
    throttled = statuses[2]
    _assert_jsm_error(throttled, 429)
    assert throttled.headers["Retry-After"] == "1"
    assert throttled.headers["X-RateLimit-Limit"] == "2"


def test_clearing_faults_removes_rules_and_rate_limit(api: Api) -> None:
    # Given a failing rule and a rate limit
    api(
        "POST",
        "/_emulator/faults",
        json={"rules": [{"path_regex": ".", "status": 500}], "rate_limit_per_second": 1},
    )

    # When the fault set is replaced by an empty one
    api("POST", "/_emulator/faults", json={"rules": []})

    # Then calls answer normally, as often as asked
    assert [api("GET", f"{SD}/servicedesk/1").status_code for _ in range(3)] == [200, 200, 200]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"rules": [{"path_regex": "("}]},
        {"rules": [{"status": 200}]},
        {"rules": [{"times": -1}]},
        {"rules": ["nope"]},
        {"rules": [], "rate_limit_per_second": 0},
    ],
)
def test_malformed_fault_sets_are_400(api: Api, body: dict[str, Any]) -> None:
    # Given / When a malformed fault set is posted
    response = api("POST", "/_emulator/faults", json=body)

    # Then it is refused
    assert response.status_code == 400


def test_quiet_standalone_server_on_a_free_port() -> None:
    # Given a second emulator with its own credentials on a free port
    other = JsmEmulator(port=0, email="bot@corp.example", token="t0k3n")
    other.start()
    try:
        # When called with those credentials
        url = other.url
        response = requests.get(
            f"{url}{SD}/servicedesk/1", auth=("bot@corp.example", "t0k3n"), timeout=5
        )
    finally:
        other.stop()

    # Then it answers, on a port the OS chose
    assert response.status_code == 200
    assert not url.endswith(":0")
