"""`/companies/{company_id}/scim-tokens`: who may mint, list and revoke; shown once; hashed at
rest; a revoked token is refused; another company's token is not found."""

from __future__ import annotations

import hashlib
import json

import pytest
from moto.dynamodb.models import dynamodb_backends

from chalicelib.config import get_settings
from local.aws import ACCOUNT_ID
from tests.api.expect import assert_problem
from tests.helpers import ACME_PM, PLATFORM_ADMIN, SERVICE, Api, bearer

ACME_ADMIN = bearer("adm-1", "ada.admin@acme.example", "acme", ["company_admin"])
OTHER_ADMIN = bearer("adm-2", "otto.admin@other.example", "other", ["company_admin"])
TOKENS = "/companies/acme/scim-tokens"


def _stored_text() -> str:
    """Everything the governance table holds, as text."""
    settings = get_settings()
    table = dynamodb_backends[ACCOUNT_ID][settings.region].tables[settings.governance_table]
    return json.dumps([item.to_json() for item in table.all_items()])


def test_a_company_admin_mints_a_token_shown_once_and_stored_hashed(api: Api) -> None:
    # When acme's company admin mints a token
    minted = api.post(TOKENS, {}, ACME_ADMIN)

    # Then 201 with the token, which starts with the recognizable prefix and has 256 bits
    assert minted.status == 201, minted.body
    assert set(minted.body) == {"token_id", "token", "created_at"}
    secret = minted.body["token"]
    assert secret.startswith("hscim_")
    assert len(secret) >= 6 + 43
    # ...stored only as its SHA-256
    stored = _stored_text()
    assert secret not in stored
    assert hashlib.sha256(secret.encode()).hexdigest() in stored
    # ...and never listed again
    listed = api.get(TOKENS, ACME_ADMIN)
    assert listed.status == 200
    [item] = listed.body["items"]
    assert item["token_id"] == minted.body["token_id"]
    assert item["created_by"] == "adm-1"
    assert item["revoked"] is False
    assert secret not in json.dumps(listed.body)
    assert hashlib.sha256(secret.encode()).hexdigest() not in json.dumps(listed.body)


@pytest.mark.parametrize(
    ("headers", "allowed"),
    [
        (ACME_ADMIN, True),
        (PLATFORM_ADMIN, True),
        (OTHER_ADMIN, False),
        (ACME_PM, False),
        (SERVICE, False),
        (bearer("dev-1", "dana.dev@acme.example", "acme", ["console_user"]), False),
    ],
    ids=["acme admin", "platform admin", "other admin", "acme pm", "service", "acme user"],
)
def test_only_the_companys_admins_and_platform_admins_manage_its_tokens(
    api: Api, headers: dict[str, str], allowed: bool
) -> None:
    # Given a token of acme
    existing = api.post(TOKENS, {}, ACME_ADMIN).body["token_id"]

    # When the caller mints, lists and revokes
    minted = api.post(TOKENS, {}, headers)
    listed = api.get(TOKENS, headers)
    revoked = api.delete(f"{TOKENS}/{existing}", headers)

    # Then all succeed for admins of acme and platform admins, else 403
    if allowed:
        assert (minted.status, listed.status, revoked.status) == (201, 200, 204)
    else:
        for answer in (minted, listed, revoked):
            assert_problem(answer, 403)
        assert len(api.get(TOKENS, ACME_ADMIN).body["items"]) == 1


def test_a_revoked_token_is_refused_and_another_companys_token_is_not_found(api: Api) -> None:
    # Given a token of acme, in use
    minted = api.post(TOKENS, {}, ACME_ADMIN).body
    scim = {"Authorization": f"Bearer {minted['token']}"}
    assert api.get("/scim/v2/Users", scim).status == 200

    # When other's admin tries to revoke it through their own company
    foreign = api.delete(f"/companies/other/scim-tokens/{minted['token_id']}", OTHER_ADMIN)
    # Then it is not found there, and still works
    assert_problem(foreign, 404)
    assert api.get("/scim/v2/Users", scim).status == 200

    # When acme's admin revokes it (twice: the same answer)
    assert api.delete(f"{TOKENS}/{minted['token_id']}", ACME_ADMIN).status == 204
    assert api.delete(f"{TOKENS}/{minted['token_id']}", ACME_ADMIN).status == 204

    # Then SCIM requests with it are refused with a SCIM 401, and the list says revoked
    refused = api.get("/scim/v2/Users", scim)
    assert refused.status == 401
    assert refused.body["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    assert refused.body["status"] == "401"
    [item] = api.get(TOKENS, ACME_ADMIN).body["items"]
    assert item["revoked"] is True
    assert item["revoked_by"] == "adm-1"


@pytest.mark.parametrize("bad", ["a%20b", "x" * 65, "%0A"])
def test_a_malformed_company_or_token_id_is_a_400(api: Api, bad: str) -> None:
    assert_problem(api.post(f"/companies/{bad}/scim-tokens", {}, PLATFORM_ADMIN), 400)
    assert_problem(api.delete(f"{TOKENS}/{bad}", PLATFORM_ADMIN), 400)


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer ", "Bearer hscim_not-a-token", "Bearer x", "Basic abc", "Bearer " + "h" * 5000],
)
def test_scim_without_a_live_token_is_a_scim_401(api: Api, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    answer = api.get("/scim/v2/Users", headers)
    assert answer.status == 401
    assert answer.headers.get("Content-Type") == "application/scim+json"
    assert answer.body["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    assert answer.body["status"] == "401"
