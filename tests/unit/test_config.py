"""Settings (issue 11 item 6): every setting has a local default in the `local` stage only; a
deployed function missing a secret, table or state machine setting refuses to start, loudly,
instead of running on the public local JWT key or another stage's tables."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from chalicelib.config import (
    LOCAL_JWT_SECRET,
    REQUIRED_OUTSIDE_LOCAL,
    SettingsError,
    load_settings,
)

ROOT = Path(__file__).resolve().parents[2]
DEPLOYED = {
    "HELPDESK_STAGE": "prod",
    "AWS_REGION": "eu-central-1",
    "HELPDESK_PROJECTS_TABLE": "helpdesk-access-prod-projects",
    "HELPDESK_CONTACTS_TABLE": "helpdesk-access-prod-contacts",
    "HELPDESK_GRANTS_TABLE": "helpdesk-access-prod-grants",
    "HELPDESK_GOVERNANCE_TABLE": "helpdesk-access-prod-governance",
    "HELPDESK_ACTIVITY_TABLE": "helpdesk-access-prod-activity",
    "HELPDESK_IDEMPOTENCY_TABLE": "helpdesk-access-prod-idempotency",
    "HELPDESK_ACTIVATION_STATE_MACHINE_ARN": "arn:aws:states:eu-central-1:1:stateMachine:a",
    "HELPDESK_REMOVAL_STATE_MACHINE_ARN": "arn:aws:states:eu-central-1:1:stateMachine:r",
    "HELPDESK_EVENT_BUS": "helpdesk-access-prod-events",
    "HELPDESK_JIRA_URL": "https://acme.atlassian.net",
    "HELPDESK_JIRA_TOKEN_SECRET_ARN": "arn:aws:secretsmanager:eu-central-1:1:secret:jira",
    "HELPDESK_JWT_SECRET_ARN": "arn:aws:secretsmanager:eu-central-1:1:secret:jwt",
    "HELPDESK_HR_SECRET_ARN": "arn:aws:secretsmanager:eu-central-1:1:secret:hr",
}


def test_the_local_stage_runs_on_defaults() -> None:
    # When settings are read with nothing set / Then the local stack's defaults apply
    settings = load_settings({})
    assert settings.stage == "local"
    assert settings.projects_table == "helpdesk-local-projects"
    assert settings.jwt_secret_arn == ""  # the local JWT key comes from HELPDESK_JWT_SECRET
    assert settings.activation_state_machine_arn.endswith(
        ":stateMachine:helpdesk-local-grant-activation"
    )


def test_a_deployed_stage_reads_everything_from_its_environment() -> None:
    # When every setting the template gives is there
    settings = load_settings(DEPLOYED)

    # Then they are used as given, and the rest keep their stage-free defaults
    assert settings.stage == "prod"
    assert settings.grants_table == "helpdesk-access-prod-grants"
    assert settings.jwt_secret_arn == DEPLOYED["HELPDESK_JWT_SECRET_ARN"]
    assert settings.portal_base_url == "https://acme.atlassian.net"
    assert settings.jira_timeout_seconds == 5


@pytest.mark.parametrize("variable", sorted(REQUIRED_OUTSIDE_LOCAL))
@pytest.mark.parametrize("absent", ["missing", "empty"])
def test_a_deployed_stage_missing_a_setting_refuses_to_start(variable: str, absent: str) -> None:
    # Given a deployed stage's environment without one secret, table or state machine setting
    environ = {k: v for k, v in DEPLOYED.items() if k != variable}
    if absent == "empty":
        environ[variable] = ""

    # When the settings are read / Then it refuses, naming what is missing
    with pytest.raises(SettingsError) as refused:
        load_settings(environ)
    assert variable in str(refused.value)
    assert "prod" in str(refused.value)


def test_every_missing_setting_is_named_at_once() -> None:
    with pytest.raises(SettingsError) as refused:
        load_settings({"HELPDESK_STAGE": "dev"})
    for variable in REQUIRED_OUTSIDE_LOCAL:
        assert variable in str(refused.value)


def test_a_malformed_number_is_refused_clearly() -> None:
    with pytest.raises(SettingsError) as refused:
        load_settings({**DEPLOYED, "HELPDESK_JIRA_TIMEOUT_SECONDS": "soon"})
    assert "HELPDESK_JIRA_TIMEOUT_SECONDS" in str(refused.value)


def test_the_cold_start_of_a_deployed_function_fails_without_its_jwt_secret_arn() -> None:
    # Given a deployed function's environment without HELPDESK_JWT_SECRET_ARN, and a local JWT
    # key lying around
    environ = {k: v for k, v in os.environ.items() if not k.startswith("HELPDESK_")}
    environ.update({k: v for k, v in DEPLOYED.items() if k != "HELPDESK_JWT_SECRET_ARN"})
    environ["HELPDESK_JWT_SECRET"] = LOCAL_JWT_SECRET

    # When the Lambda runtime imports the app (a fresh interpreter: a cold start)
    started = subprocess.run(
        [sys.executable, "-c", "import app"],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    # Then the import fails, saying which setting is missing
    assert started.returncode != 0
    assert "SettingsError" in started.stderr
    assert "HELPDESK_JWT_SECRET_ARN" in started.stderr
