"""Typed settings, read once from the environment; secrets come from Secrets Manager in AWS.

Every setting has a default that makes the local stack (`make run`) work with no AWS account.
In AWS the template sets the `*_SECRET_ARN` variables and the secrets are fetched (and cached)
through Powertools Parameters instead of being read from plain environment variables.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

LOCAL_JWT_SECRET = "local-dev-secret"  # noqa: S105 - local stack default (SPEC §2)
LOCAL_HR_SECRET = "local-hr-secret"  # noqa: S105 - local stack default (SPEC §2)
LOCAL_JIRA_TOKEN = "local-token"  # noqa: S105 - the JSM emulator's token (SPEC §5)


@dataclass(frozen=True)
class Settings:
    stage: str
    region: str
    projects_table: str
    contacts_table: str
    grants_table: str
    activity_table: str
    idempotency_table: str
    activation_state_machine_arn: str
    removal_state_machine_arn: str
    event_bus_name: str
    hr_queue_url: str
    mail_sender: str
    support_team_email: str
    jira_base_url: str
    jira_email: str
    jira_timeout_seconds: float
    portal_base_url: str
    helpdesk_cache_seconds: int
    helpdesk_timeout_seconds: float
    jira_token_secret_arn: str
    jwt_secret_arn: str
    hr_secret_arn: str

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


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this process (cached: clear with `get_settings.cache_clear()` in tests)."""
    region = _env("AWS_REGION", _env("AWS_DEFAULT_REGION", "eu-west-1"))
    account = _env("HELPDESK_ACCOUNT_ID", "123456789012")
    prefix = _env("HELPDESK_RESOURCE_PREFIX", "helpdesk-local")
    sfn_arn = f"arn:aws:states:{region}:{account}:stateMachine:{prefix}"
    jira_port = _env("HELPDESK_JIRA_PORT", "8081")
    return Settings(
        stage=_env("HELPDESK_STAGE", "local"),
        region=region,
        projects_table=_env("HELPDESK_PROJECTS_TABLE", f"{prefix}-projects"),
        contacts_table=_env("HELPDESK_CONTACTS_TABLE", f"{prefix}-contacts"),
        grants_table=_env("HELPDESK_GRANTS_TABLE", f"{prefix}-grants"),
        activity_table=_env("HELPDESK_ACTIVITY_TABLE", f"{prefix}-activity"),
        idempotency_table=_env("HELPDESK_IDEMPOTENCY_TABLE", f"{prefix}-idempotency"),
        activation_state_machine_arn=_env(
            "HELPDESK_ACTIVATION_STATE_MACHINE_ARN", f"{sfn_arn}-grant-activation"
        ),
        removal_state_machine_arn=_env(
            "HELPDESK_REMOVAL_STATE_MACHINE_ARN", f"{sfn_arn}-grant-removal"
        ),
        event_bus_name=_env("HELPDESK_EVENT_BUS", f"{prefix}-events"),
        hr_queue_url=_env("HELPDESK_HR_QUEUE_URL", ""),
        mail_sender=_env("HELPDESK_MAIL_SENDER", "helpdesk@example.com"),
        support_team_email=_env("HELPDESK_SUPPORT_TEAM_EMAIL", "support-team@example.com"),
        jira_base_url=_env("HELPDESK_JIRA_URL", f"http://127.0.0.1:{jira_port}").rstrip("/"),
        jira_email=_env("HELPDESK_JIRA_EMAIL", "helpdesk-bot@example.com"),
        jira_timeout_seconds=float(_env("HELPDESK_JIRA_TIMEOUT_SECONDS", "5")),
        portal_base_url=_env(
            "HELPDESK_PORTAL_URL", _env("HELPDESK_JIRA_URL", f"http://127.0.0.1:{jira_port}")
        ).rstrip("/"),
        helpdesk_cache_seconds=int(_env("HELPDESK_HELPDESK_CACHE_SECONDS", "30")),
        helpdesk_timeout_seconds=float(_env("HELPDESK_HELPDESK_TIMEOUT_SECONDS", "2.5")),
        jira_token_secret_arn=_env("HELPDESK_JIRA_TOKEN_SECRET_ARN", ""),
        jwt_secret_arn=_env("HELPDESK_JWT_SECRET_ARN", ""),
        hr_secret_arn=_env("HELPDESK_HR_SECRET_ARN", ""),
    )


def _secret(arn: str, env_name: str, local_default: str) -> str:
    if arn:
        # Imported only where secrets are fetched: keeps the local stack's imports light.
        from aws_lambda_powertools.utilities import parameters  # noqa: PLC0415

        return str(parameters.get_secret(arn, max_age=300))
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
