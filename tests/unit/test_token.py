"""`python -m local.token`: dev JWTs the service accepts, built without loading AWS libraries."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import jwt
import pytest

from local.token import parse_roles, token_from_args

ROOT = Path(__file__).resolve().parents[2]
BASE = ["--sub", "u1", "--email", "a@acme.example"]


def claims(token: str, key: str = "local-dev-secret") -> dict[str, object]:
    return dict(
        jwt.decode(token, key, algorithms=["HS256"], audience="helpdesk-access", issuer="console")
    )


def test_roles_may_be_comma_separated_and_repeated() -> None:
    # When / Then
    assert parse_roles(["project_manager,supervisor", "supervisor", " console_user "]) == [
        "project_manager",
        "supervisor",
        "console_user",
    ]


def test_token_carries_the_console_claims() -> None:
    # Given
    before = int(time.time())

    # When
    token = token_from_args([*BASE, "--company", "acme", "--roles", "project_manager,supervisor"])

    # Then
    decoded = claims(token)
    assert decoded["sub"] == "u1"
    assert decoded["email"] == "a@acme.example"
    assert decoded["company_id"] == "acme"
    assert decoded["roles"] == ["project_manager", "supervisor"]
    assert before + 8 * 3600 <= int(str(decoded["exp"])) <= int(time.time()) + 8 * 3600


def test_company_is_optional_and_ttl_configurable() -> None:
    # When
    decoded = claims(token_from_args([*BASE, "--roles", "service", "--ttl", "60"]))

    # Then
    assert decoded["company_id"] is None
    assert int(str(decoded["exp"])) - int(str(decoded["iat"])) == 60


def test_token_is_accepted_by_the_service(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the service verifies with the default local secret
    monkeypatch.delenv("HELPDESK_JWT_SECRET", raising=False)
    from chalicelib.api.auth import principal_from_header  # noqa: PLC0415

    # When
    token = token_from_args([*BASE, "--company", "acme", "--roles", "supervisor"])

    # Then
    principal = principal_from_header(f"Bearer {token}")
    assert principal.sub == "u1"
    assert principal.company_id == "acme"
    assert {r.value for r in principal.roles} == {"supervisor"}


def test_secret_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given
    monkeypatch.setenv("HELPDESK_JWT_SECRET", "another-secret-of-32-bytes-or-more!")

    # When
    token = token_from_args([*BASE, "--roles", "service"])

    # Then
    assert claims(token, "another-secret-of-32-bytes-or-more!")["roles"] == ["service"]
    with pytest.raises(jwt.InvalidSignatureError):
        claims(token)


@pytest.mark.parametrize(
    "argv",
    [
        [*BASE, "--roles", "pope"],
        [*BASE, "--roles", "service", "--ttl", "0"],
        ["--sub", "u1", "--roles", "service"],
    ],
    ids=["unknown-role", "zero-ttl", "no-email"],
)
def test_bad_arguments_exit_with_usage(argv: list[str]) -> None:
    # When / Then
    with pytest.raises(SystemExit) as exited:
        token_from_args(argv)
    assert exited.value.code == 2


def test_command_prints_a_token_without_loading_aws_libraries() -> None:
    # Given a fresh interpreter
    script = (
        "import sys, runpy\n"
        f"sys.argv = ['local.token', *{BASE!r}, '--roles', 'service']\n"
        "runpy.run_module('local.token', run_name='__main__')\n"
        "heavy = {'boto3', 'botocore', 'moto', 'pynamodb', 'aws_lambda_powertools'}\n"
        "print('HEAVY', sorted({m.split('.')[0] for m in sys.modules} & heavy))\n"
    )

    # When
    done = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )

    # Then
    token, heavy = done.stdout.strip().splitlines()
    assert claims(token)["roles"] == ["service"]
    assert heavy == "HEAVY []"
    assert done.stderr == ""
