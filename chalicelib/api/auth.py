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


def principal_from_header(authorization: str | None) -> Principal:
    """The verified caller; `Unauthorized` for a missing, malformed, forged or expired token."""
    if not authorization or not authorization.startswith("Bearer "):
        raise Unauthorized("a Bearer token is required")
    token = authorization.removeprefix("Bearer ").strip()
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
        or not isinstance(claims["email"], str)
        or not (company is None or isinstance(company, str))
    ):
        raise Unauthorized("the token's claims are not of the expected types")
    known = {r.value for r in Role}
    return Principal(
        sub=claims["sub"],
        email=claims["email"].lower(),
        company_id=company,
        roles=frozenset(Role(r) for r in roles if r in known),
    )


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
