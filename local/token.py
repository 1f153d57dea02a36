"""Print a dev JWT as the console would issue it (`make token ARGS="--sub u1 --roles ..."`).

    python -m local.token --sub u1 --email a@acme.example --company acme \\
        --roles project_manager,supervisor [--ttl 28800]

Signed HS256 with `HELPDESK_JWT_SECRET` (default `local-dev-secret`, what the local stack
verifies with). Imports neither boto3 nor moto, so it answers at once.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import types
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from chalicelib.config import LOCAL_JWT_SECRET
from chalicelib.domain.models import Role


def _issue_token() -> Callable[..., str]:
    """`chalicelib.api.auth.issue_token` without running `chalicelib/api/__init__.py`.

    That package registers every blueprint and so imports boto3, PynamoDB and Powertools
    (~0.8 s); `auth.py` itself needs only PyJWT and the domain models.
    """
    if "chalicelib.api" in sys.modules:
        return importlib.import_module("chalicelib.api.auth").issue_token  # type: ignore[no-any-return]
    import chalicelib  # noqa: PLC0415

    shell = types.ModuleType("chalicelib.api")
    shell.__path__ = [str(Path(chalicelib.__file__).parent / "api")]
    sys.modules["chalicelib.api"] = shell
    try:
        auth: Any = importlib.import_module("chalicelib.api.auth")
    finally:  # a later `import chalicelib.api` must load the real package
        del sys.modules["chalicelib.api"]
        sys.modules.pop("chalicelib.api.auth", None)
    return auth.issue_token  # type: ignore[no-any-return]


KNOWN_ROLES = [role.value for role in Role]


def parse_roles(values: list[str]) -> list[str]:
    """`["a,b", "c"]` → `["a", "b", "c"]` (order kept, duplicates dropped)."""
    roles: list[str] = []
    for value in values:
        for part in value.split(","):
            role = part.strip()
            if role and role not in roles:
                roles.append(role)
    return roles


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m local.token", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--sub", required=True, help="contact id of the caller")
    parser.add_argument("--email", required=True)
    parser.add_argument("--company", default=None, help="company id (omit for none)")
    parser.add_argument(
        "--roles",
        action="append",
        default=[],
        help=f"comma-separated and/or repeated; any of {', '.join(KNOWN_ROLES)}",
    )
    parser.add_argument("--ttl", type=int, default=8 * 3600, help="seconds (default 28800)")
    return parser


def token_from_args(argv: list[str] | None = None) -> str:
    """The token for these command-line arguments (exits 2 on bad arguments, like argparse)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    roles = parse_roles(args.roles)
    unknown = [role for role in roles if role not in KNOWN_ROLES]
    if unknown:
        parser.error(f"unknown role(s): {', '.join(unknown)}; known: {', '.join(KNOWN_ROLES)}")
    if args.ttl <= 0:
        parser.error("--ttl must be a positive number of seconds")
    secret = os.environ.get("HELPDESK_JWT_SECRET", LOCAL_JWT_SECRET)
    issue_token = _issue_token()
    with warnings.catch_warnings():
        # The documented local secret is short on purpose; PyJWT's key-length advice is noise.
        warnings.filterwarnings("ignore", message=".*HMAC key.*")
        return issue_token(secret, args.sub, args.email, args.company, roles, ttl_seconds=args.ttl)


def main(argv: list[str] | None = None) -> None:
    sys.stdout.write(token_from_args(argv) + "\n")


if __name__ == "__main__":
    main()
