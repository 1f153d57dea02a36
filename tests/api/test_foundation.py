"""The API's foundation: health, the OpenAPI document, projects and their helpdesk link, the
contact directory, the "Add contact" lookups, and how every kind of bad input is refused."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
import requests

from local.aws import LambdaContext
from local.stack import LocalStack
from tests.api.expect import World, assert_problem, header
from tests.helpers import (
    ACME_PM,
    ACME_USER,
    INTEGRATOR_PM,
    OTHER_PM,
    PLATFORM_ADMIN,
    PROJECT,
    SERVICE,
    Answer,
    Api,
    Seeder,
    bearer,
    settled_grant,
)

JSM_AUTH = ("helpdesk-bot@example.com", "local-token")


def organizations(stack: LocalStack) -> list[dict[str, Any]]:
    assert stack.jira is not None
    return list(stack.jira.state()["organizations"])


def desk(stack: LocalStack, desk_id: str = "1") -> dict[str, Any]:
    assert stack.jira is not None
    return next(d for d in stack.jira.state()["service_desks"] if d["id"] == desk_id)


def actions(api: Api, project_id: str) -> list[str]:
    items = api.get(f"/projects/{project_id}/activity?limit=100", SERVICE).body["items"]
    return [entry["action"] for entry in items]


# --- public routes --------------------------------------------------------------------------


def test_health(api: Api) -> None:
    # When
    answer = api.get("/health")

    # Then
    assert answer.status == 200
    assert header(answer, "Content-Type") == "application/json"
    assert answer.body == {"status": "ok"}


@pytest.mark.parametrize(
    "authorization", [None, "Bearer whatever"], ids=["no token", "with a token"]
)
@pytest.mark.parametrize("path", ["/nowhere", "/projects/demo/nothing-here"])
def test_the_local_server_answers_an_unknown_route_with_a_404_problem(
    stack: LocalStack, path: str, authorization: str | None
) -> None:
    # When the local server (`make run`) is asked for a route the API does not have
    headers = {"Authorization": authorization} if authorization else {}
    response = requests.get(f"{stack.api_url}{path}", headers=headers, timeout=10)

    # Then it answers as the deployed API's gateway responses do: a problem+json 404
    answer = Answer(response.status_code, dict(response.headers), response.json())
    assert_problem(answer, 404, detail="no such resource")


def test_openapi_document_describes_every_operation(api: Api) -> None:
    # When
    answer = api.get("/openapi.json")

    # Then it is OpenAPI 3.1 with the SPEC's paths, bearer security and the problem schema
    assert answer.status == 200
    document = answer.body
    assert document["openapi"].startswith("3.1")
    assert {
        "/health",
        "/projects/{project_id}",
        "/contacts/{contact_id}",
        "/contacts",
        "/projects/{project_id}/grants",
        "/projects/{project_id}/grants/{contact_id}",
        "/projects/{project_id}/support-access",
    } <= set(document["paths"])
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert "Problem" in document["components"]["schemas"]
    post_grant = document["paths"]["/projects/{project_id}/grants"]["post"]
    assert "202" in post_grant["responses"]
    assert "application/problem+json" in post_grant["responses"]["422"]["content"]


# --- PUT /projects/{project_id} -------------------------------------------------------------


def test_put_project_creates_then_converges(api: Api, stack: LocalStack) -> None:
    # When the console puts a project without an organization
    created = api.put("/projects/demo", PROJECT, SERVICE)

    # Then 201 with the project, linked to a new organization named after it and its id
    # (SPEC §1), attached to desk 1
    assert created.status == 201, created.body
    project = created.body
    assert project == {
        "project_id": "demo",
        "name": "Demo project",
        "customer_company_id": "acme",
        "integrator_company_id": "integrator",
        "created_by": "pm-1",
        "service_desk_id": "1",
        "organization_id": project["organization_id"],
        "allowed_email_domains": [],
        "support_access": {
            "enabled": False,
            "reason": None,
            "changed_by": None,
            "changed_at": None,
        },
    }
    assert organizations(stack) == [
        {"id": project["organization_id"], "name": "Demo project (demo)", "users": []}
    ]
    assert desk(stack)["organizations"] == [project["organization_id"]]

    # When the very same PUT is repeated
    repeated = api.put("/projects/demo", PROJECT, SERVICE)

    # Then 200 with the same project, still one organization and one helpdesk.linked entry
    assert repeated.status == 200, repeated.body
    assert repeated.body == project
    assert len(organizations(stack)) == 1
    assert desk(stack)["organizations"] == [project["organization_id"]]
    assert actions(api, "demo") == ["helpdesk.linked"]
    assert api.get("/projects/demo", SERVICE).body == project


def test_put_project_records_who_linked_which_helpdesk(api: Api) -> None:
    # When a platform admin puts a project
    created = api.put("/projects/demo", PROJECT, PLATFORM_ADMIN)

    # Then the activity names the actor and the link
    assert created.status == 201, created.body
    [entry] = api.get("/projects/demo/activity", SERVICE).body["items"]
    assert entry["action"] == "helpdesk.linked"
    assert entry["actor"] == {"type": "user", "id": "root-1", "email": "root@platform.example"}
    assert entry["detail"]["service_desk_id"] == "1"
    assert entry["detail"]["organization_id"] == created.body["organization_id"]


def test_put_project_with_an_existing_organization_links_it(api: Api, stack: LocalStack) -> None:
    # Given an organization that already exists in JSM
    organization = requests.post(
        f"{stack.jira_url}/rest/servicedeskapi/organization",
        json={"name": "Acme helpdesk"},
        auth=JSM_AUTH,
        timeout=5,
    ).json()

    # When the console links a project to it
    answer = api.put("/projects/demo", {**PROJECT, "organization_id": organization["id"]}, SERVICE)

    # Then the project uses it, no other organization is created, and it is on the desk
    assert answer.status == 201, answer.body
    assert answer.body["organization_id"] == organization["id"]
    assert [o["id"] for o in organizations(stack)] == [organization["id"]]
    assert organization["id"] in desk(stack)["organizations"]


def test_projects_of_two_companies_with_one_name_get_an_organization_each(
    api: Api, stack: LocalStack
) -> None:
    # When two companies' projects with the same name are put without an organization
    first = api.put("/projects/pb", {**PROJECT, "name": "Beta project"}, SERVICE)
    second = api.put(
        "/projects/pz",
        {**PROJECT, "name": "Beta project", "customer_company_id": "zzz"},
        SERVICE,
    )

    # Then each gets its own organization, named after the project and its id
    assert (first.status, second.status) == (201, 201), (first.body, second.body)
    assert first.body["organization_id"] != second.body["organization_id"]
    assert sorted(o["name"] for o in organizations(stack)) == [
        "Beta project (pb)",
        "Beta project (pz)",
    ]


def test_an_organization_linked_to_another_project_is_a_conflict(
    api: Api, seed: Seeder, world: World
) -> None:
    # Given a project linked to its organization
    linked = seed.project("pb")

    # When another project is put with that organization
    with world.unchanged():
        answer = api.put(
            "/projects/pz",
            {**PROJECT, "customer_company_id": "zzz", "organization_id": linked["organization_id"]},
            SERVICE,
        )

    # Then 409, and nothing was stored, created or attached
    assert_problem(answer, 409, detail="pb")


def test_a_project_put_again_naming_its_own_organization_is_fine(api: Api, seed: Seeder) -> None:
    # Given a project linked to the organization the service created for it
    linked = seed.project("pb")

    # When the console puts it again naming that organization
    again = api.put(
        "/projects/pb", {**PROJECT, "organization_id": linked["organization_id"]}, SERVICE
    )

    # Then 200 with the same project
    assert again.status == 200, again.body
    assert again.body == linked


def test_put_project_with_an_unknown_organization_is_refused(api: Api, world: World) -> None:
    # When the console names an organization JSM does not have
    with world.unchanged():
        answer = api.put("/projects/demo", {**PROJECT, "organization_id": "4242"}, SERVICE)

    # Then 422 on organization_id, and no project, organization or activity appeared
    assert_problem(answer, 422, field="organization_id", detail="4242")


def test_put_project_with_an_unknown_service_desk_is_refused(api: Api, world: World) -> None:
    # When the console names a service desk JSM does not have
    with world.unchanged():
        answer = api.put("/projects/demo", {**PROJECT, "service_desk_id": "99"}, SERVICE)

    # Then 422 on service_desk_id, and nothing was created
    assert_problem(answer, 422, field="service_desk_id", detail="99")


def test_put_project_on_a_new_service_desk_moves_the_link(api: Api, stack: LocalStack) -> None:
    # Given a project on desk 1 and a second desk
    assert stack.jira is not None
    first = api.put("/projects/demo", PROJECT, SERVICE).body
    second_desk = stack.jira.add_service_desk("OPS", "Operations")

    # When the project is put on the second desk
    moved = api.put("/projects/demo", {**PROJECT, "service_desk_id": second_desk}, SERVICE)

    # Then it keeps its organization, now attached to the new desk, and the link is recorded
    assert moved.status == 200, moved.body
    assert moved.body["organization_id"] == first["organization_id"]
    assert first["organization_id"] in desk(stack, second_desk)["organizations"]
    assert actions(api, "demo") == ["helpdesk.linked", "helpdesk.linked"]


@pytest.mark.parametrize(
    "headers",
    [
        ACME_PM,
        INTEGRATOR_PM,
        ACME_USER,
        bearer("ca-1", "ca@acme.example", "acme", ["company_admin"]),
    ],
    ids=["project_manager", "supervisor", "console_user", "company_admin"],
)
def test_only_the_service_and_platform_admins_put_projects(
    api: Api, world: World, headers: dict[str, str]
) -> None:
    # When anyone else puts a project
    with world.unchanged():
        answer = api.put("/projects/demo", PROJECT, headers)

    # Then 403 and no project, organization or activity
    assert_problem(answer, 403)


# --- GET /projects/{project_id} -------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [ACME_PM, ACME_USER, INTEGRATOR_PM, PLATFORM_ADMIN, SERVICE],
    ids=["customer pm", "customer user", "integrator", "platform_admin", "service"],
)
def test_members_of_both_companies_read_the_project(
    api: Api, seed: Seeder, headers: dict[str, str]
) -> None:
    # Given a project of acme and integrator
    project = seed.project()

    # When a member reads it / Then they get it
    answer = api.get("/projects/demo", headers)
    assert answer.status == 200, answer.body
    assert answer.body == project


def test_another_company_may_not_read_the_project(api: Api, seed: Seeder) -> None:
    # Given a project of acme and integrator
    seed.project()

    # When a project manager of another company reads it / Then 403
    assert_problem(api.get("/projects/demo", OTHER_PM), 403)


def test_an_unknown_project_is_not_found(api: Api) -> None:
    # When / Then
    assert_problem(api.get("/projects/nowhere", SERVICE), 404, detail="nowhere")


# --- PUT /contacts/{contact_id} -------------------------------------------------------------


def test_put_contact_creates_then_updates(api: Api) -> None:
    # When the console syncs a new contact (mixed-case email)
    body = {
        "email": "Dana.Dev@ACME.example",
        "name": "Dana Dev",
        "company_id": "acme",
        "console_user": True,
        "groups": ["developers"],
    }
    created = api.put("/contacts/dev-1", body, SERVICE)

    # Then 201 with the contact, its email stored lower-case
    assert created.status == 201, created.body
    assert created.body == {
        "contact_id": "dev-1",
        "email": "dana.dev@acme.example",
        "name": "Dana Dev",
        "company_id": "acme",
        "console_user": True,
        "groups": ["developers"],
        "external_for": [],
        "status": "active",
    }

    # When it is synced again with a new name and email
    updated = api.put(
        "/contacts/dev-1", {**body, "name": "Dana D.", "email": "dana@acme.example"}, SERVICE
    )

    # Then 200, and the old email is free again while the new one finds the contact
    assert updated.status == 200, updated.body
    assert updated.body["name"] == "Dana D."
    assert api.get("/contacts?email=dana.dev@acme.example", ACME_PM).body["exists"] is False
    found = api.get("/contacts?email=dana@acme.example", ACME_PM).body
    assert found["contact"]["contact_id"] == "dev-1"


def test_put_contact_with_an_email_of_another_contact_is_a_conflict(
    api: Api, seed: Seeder, world: World
) -> None:
    # Given a contact with an email
    seed.contact("dev-1", "dana.dev@acme.example")

    # When another contact is synced with that email (whatever its case)
    with world.unchanged():
        answer = api.put(
            "/contacts/dev-2", {"email": "DANA.dev@acme.example", "name": "Imposter"}, SERVICE
        )

    # Then 409 and neither contact changed
    assert_problem(answer, 409, detail="dana.dev@acme.example")


@pytest.mark.parametrize(
    "headers", [ACME_PM, PLATFORM_ADMIN, ACME_USER], ids=["pm", "platform_admin", "user"]
)
def test_only_the_service_puts_contacts(api: Api, world: World, headers: dict[str, str]) -> None:
    # When anyone but the console's backend syncs a contact
    with world.unchanged():
        answer = api.put("/contacts/dev-1", {"email": "d@acme.example", "name": "D"}, headers)

    # Then 403 and no contact
    assert_problem(answer, 403)


# --- GET /contacts?email= -------------------------------------------------------------------


def test_lookup_says_whether_a_contact_exists(api: Api, seed: Seeder) -> None:
    # Given a contact of another company
    seed.contact("ext-1", "eve@globex.example", company="globex", name="Eve", groups=["ops"])

    # When a project manager looks up its email (any case), and an unknown one
    found = api.get("/contacts?email=EVE@globex.example", ACME_PM)
    missing = api.get("/contacts?email=nobody@globex.example", INTEGRATOR_PM)

    # Then "This contact exists in the portal" (rule 12: another company's contact is shown
    # with its id, name and email only) / "doesn't exist"
    assert found.status == 200
    assert found.body == {
        "exists": True,
        "contact": {"contact_id": "ext-1", "name": "Eve", "email": "eve@globex.example"},
    }
    assert missing.status == 200
    assert missing.body == {"exists": False, "contact": None}


def test_lookup_shows_the_whole_contact_of_the_own_company(api: Api, seed: Seeder) -> None:
    # Given a contact of acme
    contact = seed.contact("dev-7", "dev7@acme.example", company="acme", groups=["devs"])
    globex_pm = bearer("gpm-1", "gpm@globex.example", "globex", ["project_manager"])

    # When acme's manager, a platform admin and globex's manager look it up
    own = api.get("/contacts?email=dev7@acme.example", ACME_PM)
    admin = api.get("/contacts?email=dev7@acme.example", PLATFORM_ADMIN)
    other = api.get("/contacts?email=dev7@acme.example", globex_pm)

    # Then acme's manager and the platform admin see the whole contact, globex's only the summary
    assert own.body == admin.body == {"exists": True, "contact": contact}
    assert other.body == {
        "exists": True,
        "contact": {"contact_id": "dev-7", "name": contact["name"], "email": "dev7@acme.example"},
    }


@pytest.mark.parametrize(
    "query", ["", "?email=", "?email=not-an-email", "?email=a@b", "?email=a%20b@c.example"]
)
def test_lookup_needs_an_email(api: Api, query: str) -> None:
    # When / Then
    assert_problem(api.get(f"/contacts{query}", ACME_PM), 422, field="email")


@pytest.mark.parametrize(
    "headers",
    [ACME_USER, SERVICE, bearer("ca-1", "ca@acme.example", "acme", ["company_admin"])],
    ids=["console_user", "service", "company_admin"],
)
def test_lookup_is_for_managers(api: Api, headers: dict[str, str]) -> None:
    # When / Then
    assert_problem(api.get("/contacts?email=eve@globex.example", headers), 403)


# --- GET /projects/{project_id}/eligible-contacts -------------------------------------------


def test_eligible_contacts_are_the_actors_console_users_without_a_grant(
    api: Api, seed: Seeder
) -> None:
    # Given acme and integrator contacts, with and without Console User, one already granted
    seed.demo()  # pm-1 and dev-1 of acme, both Console Users
    seed.contact("dev-2", "dave@acme.example", name="Dave")
    seed.contact("sales-1", "sam@acme.example", console_user=False)
    seed.contact("int-1", "ivy@integrator.example", company="integrator", name="Ivy")
    seed.contact("glob-1", "gus@globex.example", company="globex")
    assert api.post("/projects/demo/grants", {"contact_id": "dev-1"}, ACME_PM).status == 202
    settled_grant(api, "demo", "dev-1")

    # When each company's manager opens the "existing contact" list
    acme = api.get("/projects/demo/eligible-contacts", ACME_PM)
    integrator = api.get("/projects/demo/eligible-contacts", INTEGRATOR_PM)

    # Then each sees their own Console Users without a grant, all in one page
    assert acme.status == 200, acme.body
    assert sorted(c["contact_id"] for c in acme.body["items"]) == ["dev-2", "pm-1"]
    assert acme.body["next_cursor"] is None
    assert [c["contact_id"] for c in integrator.body["items"]] == ["int-1"]
    assert integrator.body["items"][0]["name"] == "Ivy"


def test_eligible_contacts_of_an_unknown_project_are_not_found(api: Api) -> None:
    assert_problem(api.get("/projects/nowhere/eligible-contacts", ACME_PM), 404)


# --- bad input ------------------------------------------------------------------------------

CONTACT = {"email": "dana.dev@acme.example", "name": "Dana Dev", "company_id": "acme"}
GRANT_BY_ID = {"contact_id": "dev-1"}


def too_big() -> str:
    return json.dumps({**CONTACT, "name": "x" * (64 * 1024)})


def cursor_of(key: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode()


BAD_INPUT = [
    # method, path, body, extra headers, status, field
    pytest.param("PUT", "/contacts/dev-9", '{"email": ', None, 400, None, id="malformed JSON"),
    pytest.param("PUT", "/contacts/dev-9", "", None, 400, None, id="empty body"),
    pytest.param("PUT", "/contacts/dev-9", "null", None, 400, None, id="null body"),
    pytest.param("PUT", "/contacts/dev-9", "[1, 2]", None, 400, None, id="array body"),
    pytest.param("PUT", "/contacts/dev-9", '"text"', None, 400, None, id="string body"),
    pytest.param("PUT", "/contacts/dev-9", b"\xff\xfe{}", None, 400, None, id="body not UTF-8"),
    pytest.param(
        "PUT",
        "/contacts/dev-9",
        '{"email": "a@acme.example", "name": "Dana", "name": "Eve"}',
        None,
        400,
        None,
        id="duplicate key",
    ),
    pytest.param(
        "POST",
        "/projects/demo/grants",
        '{"new_contact": {"email": "n@acme.example", "name": "N", "kind": "company",'
        ' "kind": "external"}}',
        None,
        400,
        None,
        id="duplicate nested key",
    ),
    pytest.param(
        "PUT",
        "/contacts/dev-9",
        '{"email": "a@b.example", "name": NaN}',
        None,
        422,
        "name",
        id="NaN name",
    ),
    pytest.param(
        "PUT",
        "/contacts/dev-9",
        {**CONTACT, "console_user": "yes"},
        None,
        422,
        "console_user",
        id="console_user a string",
    ),
    pytest.param(
        "PUT", "/contacts/dev-9", {**CONTACT, "name": 42}, None, 422, "name", id="name an int"
    ),
    pytest.param(
        "PUT",
        "/contacts/dev-9",
        {**CONTACT, "groups": "devs"},
        None,
        422,
        "groups",
        id="groups a string",
    ),
    pytest.param(
        "PUT", "/contacts/dev-9", {**CONTACT, "name": "   "}, None, 422, "name", id="blank name"
    ),
    pytest.param(
        "PUT",
        "/contacts/dev-9",
        {**CONTACT, "email": "nope"},
        None,
        422,
        "email",
        id="not an email",
    ),
    pytest.param(
        "PUT", "/contacts/dev-9", {"name": "No Email"}, None, 422, "email", id="missing email"
    ),
    pytest.param(
        "PUT",
        "/contacts/dev-9",
        {**CONTACT, "is_admin": True},
        None,
        422,
        "is_admin",
        id="unknown field",
    ),
    pytest.param(
        "PUT",
        "/projects/demo",
        {**PROJECT, "service_desk_id": 1},
        None,
        422,
        "service_desk_id",
        id="service_desk_id an int",
    ),
    pytest.param(
        "PUT",
        "/projects/demo",
        {**PROJECT, "allowed_email_domains": ["not a domain"]},
        None,
        422,
        "allowed_email_domains.0",
        id="bad allowed domain",
    ),
    pytest.param(
        "PUT",
        "/projects/demo",
        {**PROJECT, "customer_company_id": "bad id"},
        None,
        422,
        "customer_company_id",
        id="bad company id",
    ),
    pytest.param(
        "POST",
        "/projects/demo/grants",
        {"contact_id": 7},
        None,
        422,
        "contact_id",
        id="contact_id an int",
    ),
    pytest.param(
        "POST",
        "/projects/demo/grants",
        {**GRANT_BY_ID, "role": "admin"},
        None,
        422,
        "role",
        id="unknown grant field",
    ),
    pytest.param(
        "POST",
        "/projects/demo/grants",
        {"new_contact": {"email": "n@acme.example"}},
        None,
        422,
        "new_contact.name",
        id="new_contact without a name",
    ),
    pytest.param(
        "POST",
        "/projects/demo/grants",
        {"new_contact": {"email": "n@x.example", "name": "N", "kind": "partner"}},
        None,
        422,
        "new_contact.kind",
        id="new_contact of an unknown kind",
    ),
    pytest.param(
        "POST",
        "/projects/demo/grants",
        {
            "new_contact": {
                "email": "n@x.example",
                "name": "N",
                "kind": "external",
                "groups": ["devs"],
            }
        },
        None,
        422,
        "new_contact",
        id="external with groups",
    ),
    pytest.param("PUT", "/contacts/dev-9", too_big(), None, 400, None, id="body over 64 KiB"),
    pytest.param("PUT", "/contacts/dev-9", "[" * 100_000, None, 400, None, id="100000 ["),
    pytest.param(
        "PUT",
        "/contacts/dev-9",
        "[" * 50_000 + "]" * 50_000,
        None,
        400,
        None,
        id="nesting deeper than Python parses, under 64 KiB",
    ),
    pytest.param(
        "PUT",
        "/contacts/dev-9",
        '{"a":' * 10_000 + "1" + "}" * 10_000,
        None,
        400,
        None,
        id="deeply nested objects",
    ),
    pytest.param("GET", "/projects/bad%20id", None, None, 400, "project_id", id="space in id"),
    pytest.param("GET", "/projects/" + "a" * 65, None, None, 400, "project_id", id="65-char id"),
    pytest.param("GET", "/projects/d%C3%A9mo", None, None, 400, "project_id", id="non-ASCII id"),
    pytest.param(
        "PUT", "/contacts/dev%241", CONTACT, None, 400, "contact_id", id="$ in contact id"
    ),
    pytest.param(
        "DELETE",
        "/projects/demo/grants/a%20b",
        None,
        None,
        400,
        "contact_id",
        id="bad contact id in a grant path",
    ),
    pytest.param(
        "PUT",
        "/contacts/dev-9",
        "email=a@b.example",
        {"Content-Type": "text/plain"},
        415,
        None,
        id="text/plain body",
    ),
    pytest.param(
        "PUT",
        "/contacts/dev-9",
        "<contact/>",
        {"Content-Type": "application/xml"},
        415,
        None,
        id="XML body",
    ),
    pytest.param("GET", "/projects/demo/grants?limit=0", None, None, 422, "limit", id="limit=0"),
    pytest.param(
        "GET", "/projects/demo/grants?limit=101", None, None, 422, "limit", id="limit=101"
    ),
    pytest.param(
        "GET", "/projects/demo/grants?limit=abc", None, None, 422, "limit", id="limit=abc"
    ),
    pytest.param(
        "GET", "/projects/demo/activity?limit=-1", None, None, 422, "limit", id="limit=-1"
    ),
    pytest.param(
        "GET", "/projects/demo/activity?limit=2.5", None, None, 422, "limit", id="limit=2.5"
    ),
    pytest.param(
        "GET",
        "/projects/demo/grants?limit=%C2%B2",
        None,
        None,
        422,
        "limit",
        id="limit=² (a digit to str.isdigit)",
    ),
    pytest.param(
        "GET",
        "/projects/demo/grants?limit=%D9%A1%D9%A0",
        None,
        None,
        422,
        "limit",
        id="limit in Arabic-Indic digits",
    ),
    pytest.param(
        "GET",
        "/projects/demo/activity?contact_id=a%20b",
        None,
        None,
        422,
        "contact_id",
        id="contact_id filter with a space",
    ),
    pytest.param(
        "GET",
        "/projects/demo/activity?contact_id=" + "c" * 65,
        None,
        None,
        422,
        "contact_id",
        id="contact_id filter of 65 chars",
    ),
    pytest.param(
        "GET", "/projects/demo/grants?cursor=zzz", None, None, 400, None, id="garbage cursor"
    ),
    pytest.param(
        "GET",
        f"/projects/demo/grants?cursor={cursor_of([1, 2])}",
        None,
        None,
        400,
        None,
        id="cursor of a list",
    ),
    pytest.param(
        "GET",
        f"/projects/demo/grants?cursor={cursor_of({'a': 1})}",
        None,
        None,
        400,
        None,
        id="cursor of another key",
    ),
    pytest.param(
        "GET",
        "/projects/demo/grants?cursor="
        + cursor_of({"project_id": {"S": "other"}, "contact_id": {"S": "x"}}),
        None,
        None,
        400,
        None,
        id="cursor of another project",
    ),
    pytest.param(
        "GET",
        "/projects/demo/activity?cursor="
        + cursor_of({"project_id": {"S": "demo"}, "id": {"N": "1"}}),
        None,
        None,
        400,
        None,
        id="cursor with a wrong key type",
    ),
    pytest.param(
        "GET",
        "/projects/demo/activity?contact_id=dev-1&cursor="
        + cursor_of({"project_id": {"S": "demo"}, "id": {"S": "01J"}}),
        None,
        None,
        400,
        None,
        id="cursor of the unfiltered log on the filtered one",
    ),
]


@pytest.mark.parametrize(("method", "path", "body", "headers", "status", "field"), BAD_INPUT)
def test_bad_input_is_refused_and_changes_nothing(
    api: Api,
    seed: Seeder,
    world: World,
    method: str,
    path: str,
    body: Any,
    headers: dict[str, str] | None,
    status: int,
    field: str | None,
) -> None:
    # Given a project with a contact (so that only the input is wrong)
    seed.demo()
    caller = SERVICE if method == "PUT" else ACME_PM

    # When the bad request arrives
    with world.unchanged():
        answer = api.call(method, path, body, {**caller, **(headers or {})})

    # Then it is refused as malformed (400/415) or invalid (422), as a problem, changing nothing
    assert_problem(answer, status, field=field)


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PATCH", "/projects/demo", {"GET", "PUT"}),
        ("DELETE", "/projects/demo", {"GET", "PUT"}),
        ("POST", "/health", {"GET"}),
        ("PUT", "/projects/demo/grants/dev-1", {"GET", "DELETE", "PATCH"}),
        ("GET", "/projects/demo/grants/dev-1/retry", {"POST"}),
    ],
)
def test_a_wrong_method_is_a_405_problem(
    api: Api, seed: Seeder, world: World, method: str, path: str, allowed: set[str]
) -> None:
    # Given a project
    seed.demo()

    # When a route is called with a method it does not serve
    with world.unchanged():
        answer = api.call(method, path, {}, SERVICE)

    # Then 405, a problem, with the methods it does serve
    assert_problem(answer, 405)
    allow = header(answer, "Allow")
    assert allow is not None
    assert {m.strip() for m in allow.split(",")} == allowed


def test_a_page_cursor_works_only_where_it_was_issued(api: Api, seed: Seeder) -> None:
    # Given two projects, the first with two grants
    seed.demo()
    seed.project("p2")
    seed.contact("dev-2", "dave@acme.example")
    for contact_id in ("dev-1", "dev-2"):
        assert api.post("/projects/demo/grants", {"contact_id": contact_id}, ACME_PM).status == 202
    cursor = api.get("/projects/demo/grants?limit=1", ACME_PM).body["next_cursor"]
    assert cursor

    # When the cursor is used on the project it came from, and on the other one
    same = api.get(f"/projects/demo/grants?limit=1&cursor={cursor}", ACME_PM)
    other = api.get(f"/projects/p2/grants?limit=1&cursor={cursor}", ACME_PM)

    # Then it pages the first, and the second refuses it as a cursor it did not issue
    assert same.status == 200
    assert [g["contact_id"] for g in same.body["items"]] == ["dev-2"]
    assert_problem(other, 400, detail="cursor")


def test_a_path_id_decoded_with_a_trailing_newline_is_refused(
    stack: LocalStack, world: World
) -> None:
    # Given the event API Gateway sends for PUT /contacts/dev-9%0A: it decodes path parameters
    # (chalice's local gateway does not, so the event is built by hand)
    body = json.dumps({"email": "nina@acme.example", "name": "Nina", "company_id": "acme"})
    event = {
        "requestContext": {
            "httpMethod": "PUT",
            "resourcePath": "/contacts/{contact_id}",
            "path": "/contacts/dev-9%0A",
            "identity": {"sourceIp": "127.0.0.1"},
            "requestId": "test-request",
        },
        "headers": {"content-type": "application/json", **lower(SERVICE)},
        "pathParameters": {"contact_id": "dev-9\n"},
        "multiValueQueryStringParameters": None,
        "stageVariables": {},
        "body": body,
        "isBase64Encoded": False,
    }

    # When the API handler receives it
    with world.unchanged():
        response = stack.app(event, LambdaContext("api_handler", "arn:aws:lambda:::api_handler"))

    # Then it is a 400 problem on contact_id: no contact with a newline in its id exists
    answer = Answer(response["statusCode"], response["headers"], json.loads(response["body"]))
    assert_problem(answer, 400, field="contact_id")


def lower(headers: dict[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


@pytest.mark.parametrize(
    "email",
    ["\x1e@acme.example", "a b@acme.example", "dana@acme", "@acme.example", "é@acme.example"],
)
def test_contact_emails_must_be_plain_addresses(api: Api, email: str) -> None:
    # Given / When the directory sync sends an address no mail system would deliver
    answer = api.put("/contacts/c-odd", {"email": email, "name": "Odd"}, SERVICE)
    # Then it is refused, naming the field
    assert answer.status == 422
    assert [e["field"] for e in answer.body["errors"]] == ["email"]


# --- rule 12: typed text that ends up in emails ----------------------------------------------

PHISHING = "Dana\n\nYour account is locked: re-enter your password at http://evil.example"
ACME_ADMIN = bearer("ca-1", "carla.admin@acme.example", "acme", ["company_admin"])
NEW_CONTACT = {"email": "new@acme.example", "name": "New", "kind": "company"}
TYPED_TEXT = [
    # method, path, body, caller, field
    pytest.param(
        "PUT", "/contacts/dev-9", {**CONTACT, "name": PHISHING}, SERVICE, "name", id="contact LF"
    ),
    pytest.param(
        "PUT", "/contacts/dev-9", {**CONTACT, "name": "x" * 201}, SERVICE, "name", id="long name"
    ),
    pytest.param(
        "PUT",
        "/projects/demo",
        {**PROJECT, "name": "Apollo\r\nBcc: victim@example.com"},
        SERVICE,
        "name",
        id="project CRLF",
    ),
    pytest.param(
        "PUT",
        "/projects/demo",
        {**PROJECT, "name": "Apollo \u202egnp.exe"},
        SERVICE,
        "name",
        id="project bidi override",
    ),
    pytest.param(
        "POST",
        "/projects/demo/grants",
        {"new_contact": {**NEW_CONTACT, "name": PHISHING}},
        ACME_PM,
        "new_contact.name",
        id="new contact LF",
    ),
    pytest.param(
        "POST",
        "/projects/demo/grants",
        {"new_contact": {**NEW_CONTACT, "name": "Dana\x1b[8m hidden"}},
        ACME_PM,
        "new_contact.name",
        id="new contact escape",
    ),
    pytest.param(
        "PUT",
        "/projects/demo/support-access",
        {"enabled": True, "reason": "Incident\nAlso: wire money", "confirmation": "Support"},
        ACME_ADMIN,
        "reason",
        id="reason LF",
    ),
    pytest.param(
        "PUT",
        "/projects/demo/support-access",
        {"enabled": True, "reason": "r" * 501, "confirmation": "Support"},
        ACME_ADMIN,
        "reason",
        id="reason over 500",
    ),
]


@pytest.mark.parametrize(("method", "path", "body", "caller", "field"), TYPED_TEXT)
def test_typed_text_that_reaches_emails_is_one_bounded_line(
    api: Api,
    seed: Seeder,
    world: World,
    method: str,
    path: str,
    body: dict[str, Any],
    caller: dict[str, str],
    field: str,
) -> None:
    # Given a project with a contact
    seed.demo()

    # When a name or reason with a line break, a control character or too many characters comes
    with world.unchanged():
        answer = api.call(method, path, body, caller)

    # Then 422 on that field (rule 12), and nothing was stored or sent
    assert_problem(answer, 422, field=field)


def test_a_reason_may_have_500_characters(api: Api, seed: Seeder) -> None:
    # Given a project
    seed.demo()

    # When support access is enabled with a 500-character reason / Then it is accepted
    body = {"enabled": True, "reason": "r" * 500, "confirmation": "Support"}
    answer = api.put("/projects/demo/support-access", body, ACME_ADMIN)
    assert answer.status == 200, answer.body
