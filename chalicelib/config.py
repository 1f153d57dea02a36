"""Typed settings, read once from the environment; secrets come from Secrets Manager in AWS.

In the `local` stage every setting has a default that makes the local stack (`make run`) work
with no AWS account. In any other stage the secret ARNs, tables, state machines, event bus and
JSM site must be in the environment (the CloudFormation template sets them, `infra/template.py`):
without them a function would run on the public local JWT key and another stage's tables, so
reading the settings fails instead — at import, which is the Lambda's cold start — with a
`SettingsError` naming every missing variable. Secrets are then fetched (and cached) through
Powertools Parameters, never read from plain environment variables.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

LOCAL_STAGE = "local"
LOCAL_JWT_SECRET = "local-dev-secret"  # noqa: S105 - local stack default (SPEC §2)
LOCAL_HR_SECRET = "local-hr-secret"  # noqa: S105 - local stack default (SPEC §2)
LOCAL_JIRA_TOKEN = "local-token"  # noqa: S105 - the JSM emulator's token (SPEC §5)


class SettingsError(RuntimeError):
    """The environment does not say how to run this stage: the function refuses to start."""


class Settings(BaseModel):
    """Every setting of the service, by the environment variable that carries it (its alias)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    stage: str = Field(LOCAL_STAGE, alias="HELPDESK_STAGE")
    region: str = Field(alias="AWS_REGION")
    # No default: only the local stage fills these in (`_local_defaults`).
    projects_table: str = Field(alias="HELPDESK_PROJECTS_TABLE")
    contacts_table: str = Field(alias="HELPDESK_CONTACTS_TABLE")
    grants_table: str = Field(alias="HELPDESK_GRANTS_TABLE")
    activity_table: str = Field(alias="HELPDESK_ACTIVITY_TABLE")
    idempotency_table: str = Field(alias="HELPDESK_IDEMPOTENCY_TABLE")
    governance_table: str = Field(alias="HELPDESK_GOVERNANCE_TABLE")
    activation_state_machine_arn: str = Field(alias="HELPDESK_ACTIVATION_STATE_MACHINE_ARN")
    removal_state_machine_arn: str = Field(alias="HELPDESK_REMOVAL_STATE_MACHINE_ARN")
    event_bus_name: str = Field(alias="HELPDESK_EVENT_BUS")
    jira_base_url: str = Field(alias="HELPDESK_JIRA_URL")
    jira_token_secret_arn: str = Field(alias="HELPDESK_JIRA_TOKEN_SECRET_ARN")
    jwt_secret_arn: str = Field(alias="HELPDESK_JWT_SECRET_ARN")
    hr_secret_arn: str = Field(alias="HELPDESK_HR_SECRET_ARN")
    # The same default in every stage.
    hr_queue_url: str = Field("", alias="HELPDESK_HR_QUEUE_URL")
    mail_sender: str = Field("helpdesk@example.com", alias="HELPDESK_MAIL_SENDER")
    support_team_email: str = Field("support-team@example.com", alias="HELPDESK_SUPPORT_TEAM_EMAIL")
    jira_email: str = Field("helpdesk-bot@example.com", alias="HELPDESK_JIRA_EMAIL")
    jira_timeout_seconds: float = Field(5.0, alias="HELPDESK_JIRA_TIMEOUT_SECONDS")
    # Jira calls per second for the whole service (SPEC §3 pacing); 0 = not paced.
    jira_rate_per_second: float = Field(0.0, ge=0, alias="HELPDESK_JIRA_RATE_PER_SECOND")
    portal_base_url: str = Field("", alias="HELPDESK_PORTAL_URL")  # load_settings: the JSM site
    helpdesk_cache_seconds: int = Field(30, alias="HELPDESK_HELPDESK_CACHE_SECONDS")
    helpdesk_timeout_seconds: float = Field(2.5, alias="HELPDESK_HELPDESK_TIMEOUT_SECONDS")
    # A pending access request expires after this (SPEC §2; may be fractional).
    access_request_ttl_hours: float = Field(168.0, gt=0, alias="HELPDESK_ACCESS_REQUEST_TTL_HOURS")

    @property
    def is_local(self) -> bool:
        return self.stage == LOCAL_STAGE

    @property
    def hr_queue_name(self) -> str:
        """The HR queue's name (its URL's last part; locally the name `local/aws.py` gives it)."""
        if self.hr_queue_url:
            return self.hr_queue_url.rstrip("/").rsplit("/", 1)[-1]
        return f"{os.environ.get('HELPDESK_RESOURCE_PREFIX', 'helpdesk-local')}-hr-events"

    @property
    def events_source(self) -> str:
        return "helpdesk-access"

    @property
    def portal_url(self) -> str:
        """The JSM customer portal, linked from the activation email."""
        return f"{self.portal_base_url}/servicedesk/customer/portals"

    @property
    def password_reset_url(self) -> str:
        """JSM has no reset API: the email links to the portal's "forgot password" page."""
        return f"{self.portal_base_url}/servicedesk/customer/user/forgotpassword"


def _local_defaults(environ: Mapping[str, str], region: str) -> dict[str, str]:
    """What the local stack provisions (`local/aws.py`), named like the template names AWS's."""
    account = environ.get("HELPDESK_ACCOUNT_ID", "123456789012")
    prefix = environ.get("HELPDESK_RESOURCE_PREFIX", "helpdesk-local")
    sfn_arn = f"arn:aws:states:{region}:{account}:stateMachine:{prefix}"
    return {
        "HELPDESK_PROJECTS_TABLE": f"{prefix}-projects",
        "HELPDESK_CONTACTS_TABLE": f"{prefix}-contacts",
        "HELPDESK_GRANTS_TABLE": f"{prefix}-grants",
        "HELPDESK_ACTIVITY_TABLE": f"{prefix}-activity",
        "HELPDESK_IDEMPOTENCY_TABLE": f"{prefix}-idempotency",
        "HELPDESK_GOVERNANCE_TABLE": f"{prefix}-governance",
        "HELPDESK_ACTIVATION_STATE_MACHINE_ARN": f"{sfn_arn}-grant-activation",
        "HELPDESK_REMOVAL_STATE_MACHINE_ARN": f"{sfn_arn}-grant-removal",
        "HELPDESK_EVENT_BUS": f"{prefix}-events",
        "HELPDESK_JIRA_URL": f"http://127.0.0.1:{environ.get('HELPDESK_JIRA_PORT', '8081')}",
        # No ARNs locally: the secrets come from HELPDESK_JIRA_TOKEN & co. or their defaults.
        "HELPDESK_JIRA_TOKEN_SECRET_ARN": "",
        "HELPDESK_JWT_SECRET_ARN": "",
        "HELPDESK_HR_SECRET_ARN": "",
    }


# The variables only the local stage may default: a deployed function must be given them.
REQUIRED_OUTSIDE_LOCAL: tuple[str, ...] = tuple(_local_defaults({}, "any-region"))


def load_settings(environ: Mapping[str, str]) -> Settings:
    """The settings `environ` describes; `SettingsError` naming what a deployed stage lacks.

    An empty variable counts as missing (a template `Ref` never resolves to "").
    """
    given = {name: value for name, value in environ.items() if value}
    stage = given.get("HELPDESK_STAGE", LOCAL_STAGE)
    region = given.get("AWS_REGION") or given.get("AWS_DEFAULT_REGION") or "eu-west-1"
    values: dict[str, Any] = {"AWS_REGION": region}
    if stage == LOCAL_STAGE:
        values.update(_local_defaults(environ, region))
    values.update(given)
    jira_url = values.pop("HELPDESK_JIRA_URL", "").rstrip("/")
    if jira_url:  # (else reported missing)
        values["HELPDESK_JIRA_URL"] = jira_url
        values["HELPDESK_PORTAL_URL"] = values.get("HELPDESK_PORTAL_URL", jira_url).rstrip("/")
    try:
        return Settings.model_validate(values)
    except ValidationError as exc:
        raise SettingsError(_explain(stage, exc)) from exc


def _explain(stage: str, error: ValidationError) -> str:
    missing, invalid = [], []
    for problem in error.errors(include_url=False):
        variable = ".".join(str(part) for part in problem["loc"])
        if problem["type"] == "missing":
            missing.append(variable)
        else:
            invalid.append(f"{variable} ({problem['msg']})")
    message = f"stage {stage!r} cannot start:"
    if missing:
        message += (
            f" {', '.join(missing)} not set (outside the local stage these have no default;"
            " the CloudFormation template sets them: infra/template.py, docs/operations.md)."
        )
    if invalid:
        message += f" Invalid: {', '.join(invalid)}."
    return message


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this process (cached: clear with `get_settings.cache_clear()` in tests).

    Outside the local stage, a missing setting raises `SettingsError` here: the modules that
    read settings at import (the table models) make that the function's cold start.
    """
    return load_settings(os.environ)


def _secret(arn: str, env_name: str, local_default: str) -> str:
    if arn:
        # Imported only where secrets are fetched: keeps the local stack's imports light.
        from aws_lambda_powertools.utilities import parameters  # noqa: PLC0415

        return str(parameters.get_secret(arn, max_age=300))
    if not get_settings().is_local:  # unreachable: load_settings requires the ARNs there
        raise SettingsError(f"no secret ARN for {env_name} outside the local stage")
    return os.environ.get(env_name, local_default)


def jira_token() -> str:
    """The JSM API token: Secrets Manager in AWS, `HELPDESK_JIRA_TOKEN` locally."""
    return _secret(get_settings().jira_token_secret_arn, "HELPDESK_JIRA_TOKEN", LOCAL_JIRA_TOKEN)


def jwt_secret() -> str:
    """The HS256 key the console signs its JWTs with."""
    return _secret(get_settings().jwt_secret_arn, "HELPDESK_JWT_SECRET", LOCAL_JWT_SECRET)


def hr_webhook_secret() -> str:
    """The HMAC key HR systems sign webhook bodies with."""
    return _secret(get_settings().hr_secret_arn, "HELPDESK_HR_WEBHOOK_SECRET", LOCAL_HR_SECRET)
