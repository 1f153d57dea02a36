"""`/companies/{company_id}/scim-tokens`: a company's bearer tokens for its identity provider."""

from __future__ import annotations

from chalice.app import Blueprint

from .. import services
from ..domain.models import ScimToken
from ..observability import logger
from .models import ScimTokenCreated, ScimTokenList, ScimTokenResponse
from .routing import Call, Result, operation

bp = Blueprint(__name__)

TOKENS = "/companies/{company_id}/scim-tokens"
WHO = "company_admin of that company, platform_admin"


def _token(token: ScimToken) -> ScimTokenResponse:
    return ScimTokenResponse(
        token_id=token.token_id,
        created_at=token.created_at,
        created_by=token.created_by,
        revoked=token.revoked_at is not None,
        revoked_at=token.revoked_at,
        revoked_by=token.revoked_by,
    )


@operation(
    bp,
    "POST",
    TOKENS,
    summary="Mint a SCIM token for the company's identity provider (shown once)",
    who=WHO,
    response=ScimTokenCreated,
    status=201,
    errors=(400, 401, 403),
)
def mint_scim_token(call: Call, company_id: str) -> Result:
    minted = services.scim_tokens().mint(call.user, company_id)
    token = minted.token
    logger.info(  # who and which, never the secret
        "scim token minted",
        extra={"company_id": company_id, "token_id": token.token_id, "by": call.user.sub},
    )
    created = ScimTokenCreated(
        token_id=token.token_id, token=minted.secret, created_at=token.created_at
    )
    return Result(created, status=201, headers={"Cache-Control": "no-store"})


@operation(
    bp,
    "GET",
    TOKENS,
    summary="The company's SCIM tokens (never the token itself)",
    who=WHO,
    response=ScimTokenList,
    errors=(400, 401, 403),
)
def list_scim_tokens(call: Call, company_id: str) -> Result:
    tokens = services.scim_tokens().list(call.user, company_id)
    return Result(ScimTokenList(items=[_token(t) for t in tokens], next_cursor=None))


@operation(
    bp,
    "DELETE",
    TOKENS + "/{token_id}",
    summary="Revoke a SCIM token: requests with it are refused from now on",
    who=WHO,
    status=204,
    errors=(400, 401, 403, 404),
)
def revoke_scim_token(call: Call, company_id: str, token_id: str) -> Result:
    token = services.scim_tokens().revoke(call.user, company_id, token_id)
    logger.info(
        "scim token revoked",
        extra={"company_id": company_id, "token_id": token.token_id, "by": call.user.sub},
    )
    return Result(None, status=204)
