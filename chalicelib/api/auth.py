"""Bearer JWT verification (HS256, issuer `console`, audience `helpdesk-access`) → `Principal`."""

from __future__ import annotations

import time

import jwt

from ..config import jwt_secret
from ..domain.models import Principal, Role
from ..errors import Unauthorized

ISSUER = "console"
AUDIENCE = "helpdesk-access"
REQUIRED_CLAIMS = ["sub", "email", "roles", "exp", "iss", "aud"]
# RFC 7519 NumericDate claims: JSON numbers. PyJWT would also take "1700000000" (a string).
TIME_CLAIMS = ("exp", "iat", "nbf")


def bearer_token(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer <token>` header (the scheme in any case, RFC 7235)."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("a Bearer token is required")
    return token


def principal_from_header(authorization: str | None) -> Principal:
    """The verified caller; `Unauthorized` for a missing, malformed, forged or expired token."""
    token = bearer_token(authorization)
    try:
        claims = jwt.decode(
            token,
            jwt_secret(),
            algorithms=["HS256"],
            audience=AUDIENCE,
            issuer=ISSUER,
            options={"require": REQUIRED_CLAIMS},
        )
    except jwt.ExpiredSignatureError as exc:
        raise Unauthorized("the token has expired") from exc
    except jwt.PyJWTError as exc:
        raise Unauthorized("the token is not valid") from exc
    roles = claims.get("roles")
    company = claims.get("company_id")
    if (
        not isinstance(roles, list)
        or not all(isinstance(r, str) for r in roles)
        or not isinstance(claims["sub"], str)
        or not claims["sub"].strip()
        or not isinstance(claims["email"], str)
        or not (company is None or isinstance(company, str))
        or not all(_is_numeric_date(claims[name]) for name in TIME_CLAIMS if name in claims)
    ):
        raise Unauthorized("the token's claims are not of the expected types")
    known = {r.value for r in Role}
    return Principal(
        sub=claims["sub"],
        email=claims["email"].lower(),
        company_id=company,
        roles=frozenset(Role(r) for r in roles if r in known),
    )


def _is_numeric_date(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def issue_token(
    secret: str,
    sub: str,
    email: str,
    company_id: str | None,
    roles: list[str],
    ttl_seconds: int = 8 * 3600,
) -> str:
    """A token as the console issues them (the local stack's dev tokens and the tests)."""
    now = int(time.time())
    claims = {
        "sub": sub,
        "email": email,
        "company_id": company_id,
        "roles": roles,
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + ttl_seconds,
    }
    return jwt.encode(claims, secret, algorithm="HS256")
