"""SCIM bearer tokens of a company: minted (shown once), stored as their SHA-256, listed,
revoked; and the token a SCIM request presents, checked.

A token is 256 random bits: its SHA-256 is enough to store (no salt or slow hash needed, unlike a
password nobody can guess from a dictionary), and a request's token is found by looking its hash
up as a key. Nothing compares the secret byte by byte, so there is no timing to measure: an
attacker who varies a token varies its hash unpredictably (docs/decisions.md "SCIM tokens").
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, replace

from ..errors import NotFound, StaleState, Unauthorized
from .authorization import ensure_may_manage_scim_tokens
from .ids import new_ulid
from .models import Principal, ScimToken, iso, utc_now
from .ports import ScimStore

# Recognizable in a leaked-secret scan or a log line someone pasted; never part of the entropy.
TOKEN_PREFIX = "hscim_"  # noqa: S105 - the public prefix, not a secret
TOKEN_BYTES = 32
MAX_TOKEN_LENGTH = 200


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class MintedToken:
    """A new token with its secret: the only moment the secret exists outside the caller."""

    token: ScimToken
    secret: str


class ScimTokenService:
    def __init__(self, store: ScimStore) -> None:
        self._store = store

    def mint(self, principal: Principal, company_id: str) -> MintedToken:
        ensure_may_manage_scim_tokens(principal, company_id)
        secret = TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)
        token = ScimToken(
            token_id=new_ulid(),
            company_id=company_id,
            token_hash=hash_token(secret),
            created_at=iso(utc_now()),
            created_by=principal.sub,
        )
        uow = self._store.unit_of_work()
        uow.create_scim_token(token)
        uow.commit()
        return MintedToken(token, secret)

    def list(self, principal: Principal, company_id: str) -> list[ScimToken]:
        ensure_may_manage_scim_tokens(principal, company_id)
        return self._store.scim_tokens_of_company(company_id)

    def revoke(self, principal: Principal, company_id: str, token_id: str) -> ScimToken:
        """Revoke the company's token (again: nothing changes); another company's is not found."""
        ensure_may_manage_scim_tokens(principal, company_id)
        token = self._store.get_scim_token(company_id, token_id)
        if token is None:
            raise NotFound(f"company {company_id} has no SCIM token {token_id}")
        if token.revoked_at is not None:
            return token
        revoked = replace(token, revoked_at=iso(utc_now()), revoked_by=principal.sub)
        uow = self._store.unit_of_work()
        uow.revoke_scim_token(revoked)
        try:
            uow.commit()
        except StaleState:  # revoked meanwhile by another admin: that revocation stands
            return self._store.get_scim_token(company_id, token_id) or revoked
        return revoked

    def authenticate(self, secret: str) -> ScimToken:
        """The live token `secret` is; `Unauthorized` for anything else."""
        if not secret.startswith(TOKEN_PREFIX) or len(secret) > MAX_TOKEN_LENGTH:
            raise Unauthorized("the SCIM token is not valid")
        token = self._store.scim_token_by_hash(hash_token(secret))
        if token is None or token.revoked_at is not None:
            raise Unauthorized("the SCIM token is not valid or was revoked")
        return token
