"""`/scim/v2`: Users as Okta and Microsoft Entra ID send them (request bodies recorded from their
public SCIM docs), scoped to the token's company, with the SCIM media type and error schema."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.domain.models import GrantStatus
from tests.api.expect import World
from tests.helpers import Api, Seeder, bearer, wait_for

ACME_ADMIN = bearer("adm-1", "ada.admin@acme.example", "acme", ["company_admin"])
OTHER_ADMIN = bearer("adm-2", "otto.admin@other.example", "other", ["company_admin"])
SCIM_JSON = "application/scim+json"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"

# Okta, "SCIM 2.0 protocol reference" (developer.okta.com/docs/api/openapi/okta-scim/guides/
# scim-20): "Create the user" and "Update a specific user (PATCH)" → deactivate.
OKTA_CREATE = {
    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
    "userName": "test.user@okta.local",
    "name": {"givenName": "Test", "familyName": "User"},
    "emails": [{"primary": True, "value": "test.user@okta.local", "type": "work"}],
    "displayName": "Test User",
    "locale": "en-US",
    "externalId": "00ujl29u0le5T6Aj10h7",
    "groups": [],
    "password": "1mz050nq",
    "active": True,
}
OKTA_DEACTIVATE = {
    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
    "Operations": [{"op": "replace", "value": {"active": False}}],
}
# Microsoft Entra ID, "Tutorial: Develop and plan provisioning for a SCIM endpoint" (User
# operations: Create User) and "Known issues and resolutions with SCIM 2.0 protocol compliance"
# (`"op": "Replace"`, boolean as the string "False").
ENTRA_CREATE = {
    "schemas": [
        "urn:ietf:params:scim:schemas:core:2.0:User",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
    ],
    "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
    "userName": "Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1",
    "active": True,
    "emails": [
        {
            "primary": True,
            "type": "work",
            "value": "Test_User_fd0ea19b-0777-472c-9f96-4f70d2226f2e@testuser.com",
        }
    ],
    "meta": {"resourceType": "User"},
    "name": {
        "formatted": "givenName familyName",
        "familyName": "familyName",
        "givenName": "givenName",
    },
    "roles": [],
}
ENTRA_DISABLE = {
    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
    "Operations": [{"op": "Replace", "path": "active", "value": "False"}],
}
ENTRA_ENABLE = {
    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
    "Operations": [{"op": "Replace", "path": "active", "value": "True"}],
}


def _token(api: Api, company: str = "acme") -> dict[str, str]:
    admin = ACME_ADMIN if company == "acme" else OTHER_ADMIN
    minted = api.post(f"/companies/{company}/scim-tokens", {}, admin)
    assert minted.status == 201, minted.body
    return {"Authorization": f"Bearer {minted.body['token']}", "Content-Type": SCIM_JSON}


def _scim_error(answer: Any, status: int, scim_type: str | None = None) -> None:
    assert answer.status == status, answer.body
    assert answer.headers.get("Content-Type") == SCIM_JSON
    assert answer.body["schemas"] == [ERROR]
    assert answer.body["status"] == str(status)
    assert answer.body["detail"]
    if scim_type:
        assert answer.body.get("scimType") == scim_type


def test_okta_creates_finds_and_deactivates_a_user(api: Api) -> None:
    scim = _token(api)
    # When Okta looks the user up, then creates it
    found = api.get("/scim/v2/Users?filter=userName%20eq%20%22test.user%40okta.local%22", scim)
    assert found.status == 200
    assert found.body["totalResults"] == 0
    created = api.post("/scim/v2/Users", OKTA_CREATE, scim)

    # Then a contact of acme, not a console user, with the SCIM mapping of SPEC §4
    assert created.status == 201, created.body
    assert created.headers.get("Content-Type") == SCIM_JSON
    user = created.body
    assert user["userName"] == "test.user@okta.local"
    assert user["name"]["formatted"] == "Test User"
    assert user["emails"] == [{"value": "test.user@okta.local", "primary": True, "type": "work"}]
    assert user["active"] is True
    assert user["externalId"] == "00ujl29u0le5T6Aj10h7"
    assert "password" not in user
    contact = api.get(
        "/contacts?email=test.user@okta.local",
        bearer("pm", "p@acme.example", "acme", ["project_manager"]),
    )
    assert contact.body["contact"]["company_id"] == "acme"
    assert contact.body["contact"]["console_user"] is False

    # When Okta lists by filter (userName is case-insensitive) and by externalId
    by_name = api.get("/scim/v2/Users?filter=userName%20eq%20%22Test.User%40okta.local%22", scim)
    by_external = api.get(
        "/scim/v2/Users?filter=externalId%20eq%20%2200ujl29u0le5T6Aj10h7%22", scim
    )
    for answer in (by_name, by_external):
        assert answer.body["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:ListResponse"]
        assert [u["id"] for u in answer.body["Resources"]] == [user["id"]]

    # When Okta deactivates it
    patched = api.call("PATCH", f"/scim/v2/Users/{user['id']}", OKTA_DEACTIVATE, scim)

    # Then it is inactive (offboarded)
    assert patched.status == 200, patched.body
    assert patched.body["active"] is False
    assert api.get(f"/scim/v2/Users/{user['id']}", scim).body["active"] is False


def test_entra_creates_disables_and_enables_with_replace_and_string_booleans(api: Api) -> None:
    scim = _token(api)
    created = api.post("/scim/v2/Users", ENTRA_CREATE, scim)
    assert created.status == 201, created.body
    user_id = created.body["id"]
    # (its userName is not an address: the primary email is the contact's, SPEC §4)
    primary = "test_user_fd0ea19b-0777-472c-9f96-4f70d2226f2e@testuser.com"
    assert created.body["userName"] == primary
    assert created.body["name"]["formatted"] == "givenName familyName"

    disabled = api.call("PATCH", f"/scim/v2/Users/{user_id}", ENTRA_DISABLE, scim)
    assert disabled.status == 200, disabled.body
    assert disabled.body["active"] is False

    enabled = api.call("PATCH", f"/scim/v2/Users/{user_id}", ENTRA_ENABLE, scim)
    assert enabled.status == 200, enabled.body
    assert enabled.body["active"] is True


def test_deactivation_offboards_like_an_hr_event_with_the_token_as_actor(
    api: Api, seed: Seeder, world: World
) -> None:
    # Given dev-1 of acme with an activated grant on demo
    project = seed.demo()
    dev = api.get(
        "/contacts?email=dana.dev@acme.example",
        bearer("pm", "p@acme.example", "acme", ["project_manager"]),
    ).body["contact"]
    world.put_grant(project, dev, GrantStatus.ACTIVATED)
    minted = api.post("/companies/acme/scim-tokens", {}, ACME_ADMIN).body
    scim = {"Authorization": f"Bearer {minted['token']}", "Content-Type": SCIM_JSON}

    # When acme's identity provider deactivates dev-1
    patched = api.call("PATCH", "/scim/v2/Users/dev-1", OKTA_DEACTIVATE, scim)
    assert patched.status == 200, patched.body

    # Then its grant goes, with a removal requested by the token, and the contact is offboarded
    pm = bearer("pm-1", "priya.pm@acme.example", "acme", ["project_manager"])
    wait_for(lambda: api.get("/projects/demo/grants/dev-1", pm).status == 404, what="removal")
    entries = api.get("/projects/demo/activity?contact_id=dev-1", pm).body["items"]
    removal = next(e for e in entries if e["action"] == "grant.removal_requested")
    assert removal["actor"]["type"] == "scim"
    assert removal["actor"]["id"] == minted["token_id"]
    adding = api.post("/projects/demo/grants", {"contact_id": "dev-1"}, pm)
    assert adding.status == 422

    # When it is activated again / Then the contact is active, and no grant came back
    enabled = api.call("PATCH", "/scim/v2/Users/dev-1", ENTRA_ENABLE, scim)
    assert enabled.body["active"] is True
    assert api.get("/projects/demo/grants/dev-1", pm).status == 404


def test_a_token_never_sees_another_companys_contacts(api: Api, seed: Seeder) -> None:
    # Given dev-1 of acme, and a token of company other
    seed.demo()
    scim = _token(api, "other")

    # When it reads, changes or deletes dev-1 / Then "not found", and dev-1 is untouched
    for method, body in (
        ("GET", None),
        ("PUT", OKTA_CREATE),
        ("PATCH", OKTA_DEACTIVATE),
        ("DELETE", None),
    ):
        _scim_error(api.call(method, "/scim/v2/Users/dev-1", body, scim), 404)
    listed = api.get("/scim/v2/Users", scim)
    assert listed.body["totalResults"] == 0
    by_name = api.get("/scim/v2/Users?filter=userName%20eq%20%22dana.dev%40acme.example%22", scim)
    assert by_name.body["totalResults"] == 0

    # When it creates a user with dev-1's email / Then a uniqueness conflict that names no one
    taken = api.post("/scim/v2/Users", {**OKTA_CREATE, "userName": "dana.dev@acme.example"}, scim)
    _scim_error(taken, 409, "uniqueness")
    assert "acme" not in taken.body["detail"]
    assert "dev-1" not in taken.body["detail"]
    acme = _token(api)
    assert api.get("/scim/v2/Users/dev-1", acme).body["active"] is True


def test_an_existing_username_is_a_uniqueness_conflict(api: Api) -> None:
    scim = _token(api)
    assert api.post("/scim/v2/Users", OKTA_CREATE, scim).status == 201
    _scim_error(api.post("/scim/v2/Users", OKTA_CREATE, scim), 409, "uniqueness")


def test_put_replaces_and_delete_offboards_and_hides(api: Api) -> None:
    scim = _token(api)
    user = api.post("/scim/v2/Users", OKTA_CREATE, scim).body
    replaced = api.put(
        f"/scim/v2/Users/{user['id']}",
        {**OKTA_CREATE, "id": user["id"], "name": {"givenName": "Tess", "familyName": "User"}},
        scim,
    )
    assert replaced.status == 200, replaced.body
    assert replaced.body["name"]["formatted"] == "Tess User"

    assert api.delete(f"/scim/v2/Users/{user['id']}", scim).status == 204
    _scim_error(api.get(f"/scim/v2/Users/{user['id']}", scim), 404)
    _scim_error(api.delete(f"/scim/v2/Users/{user['id']}", scim), 404)
    # ...and the provider may create it again: the same contact, active
    again = api.post("/scim/v2/Users", OKTA_CREATE, scim)
    assert again.status == 201, again.body
    assert again.body["id"] == user["id"]
    assert again.body["active"] is True


@pytest.mark.parametrize(
    ("body", "scim_type"),
    [
        ({**OKTA_CREATE, "name": {"formatted": "Evil\nBcc: x@evil.example"}}, "invalidValue"),
        ({**OKTA_CREATE, "name": {"formatted": "x" * 201}}, "invalidValue"),
        ({**OKTA_CREATE, "userName": "not-an-email", "emails": []}, "invalidValue"),
        ({**OKTA_CREATE, "externalId": "a\u202eb"}, "invalidValue"),
        ({**OKTA_CREATE, "active": "maybe"}, "invalidValue"),
    ],
    ids=["newline in name", "long name", "userName not an email", "bidi in externalId", "active"],
)
def test_invalid_users_are_a_400_and_create_nothing(api: Api, body: Any, scim_type: str) -> None:
    scim = _token(api)
    _scim_error(api.post("/scim/v2/Users", body, scim), 400, scim_type)
    assert api.get("/scim/v2/Users", scim).body["totalResults"] == 0


@pytest.mark.parametrize(
    ("query", "scim_type"),
    [
        ("filter=userName%20sw%20%22a%22", "invalidFilter"),
        ("filter=%22", "invalidFilter"),
        ("count=x", "invalidValue"),
    ],
)
def test_unsupported_queries_are_a_400(api: Api, query: str, scim_type: str) -> None:
    _scim_error(api.get(f"/scim/v2/Users?{query}", _token(api)), 400, scim_type)


def test_paging_with_start_index_and_count(api: Api) -> None:
    scim = _token(api)
    for n in range(3):
        body = {**OKTA_CREATE, "userName": f"u{n}@okta.local", "externalId": f"e{n}"}
        assert api.post("/scim/v2/Users", body, scim).status == 201
    page = api.get("/scim/v2/Users?startIndex=2&count=1", scim).body
    assert (page["totalResults"], page["startIndex"], page["itemsPerPage"]) == (3, 2, 1)
    assert len(page["Resources"]) == 1


def test_discovery_documents_say_users_only_patch_and_filter(api: Api) -> None:
    scim = _token(api)
    config = api.get("/scim/v2/ServiceProviderConfig", scim).body
    assert config["patch"]["supported"] is True
    assert config["filter"] == {"supported": True, "maxResults": 100}
    assert config["bulk"]["supported"] is False
    assert config["etag"]["supported"] is False
    assert config["authenticationSchemes"][0]["type"] == "oauthbearertoken"
    types = api.get("/scim/v2/ResourceTypes", scim).body
    assert [t["name"] for t in types["Resources"]] == ["User"]
    assert "Groups are not offered" in types["Resources"][0]["description"]
    schemas = api.get("/scim/v2/Schemas", scim).body
    assert [s["id"] for s in schemas["Resources"]] == ["urn:ietf:params:scim:schemas:core:2.0:User"]
    _scim_error(api.get("/scim/v2/ResourceTypes/Group", scim), 404)


def test_bad_bodies_are_scim_errors(api: Api) -> None:
    scim = _token(api)
    _scim_error(api.post("/scim/v2/Users", "{", scim), 400, "invalidSyntax")
    _scim_error(api.post("/scim/v2/Users", "[" * 20000 + "]" * 20000, scim), 400)
    _scim_error(api.post("/scim/v2/Users", {"name": "x" * 70000}, scim), 400)
    _scim_error(
        api.call("PATCH", "/scim/v2/Users/nobody", {"Operations": [{"op": "jump"}]}, scim), 404
    )
