"""`SesMailer`: sends the service's emails through SES from the configured sender."""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError

from ..aws import client
from ..config import get_settings
from ..domain.models import AccessRequest, Project
from ..errors import DependencyUnavailable
from ..idempotency import run_once
from ..observability import logger, mask_email
from . import templates
from .templates import Email


class SesMailer:
    def send_activation(
        self, to: str, name: str, project_name: str, portal_url: str, dedup_key: str
    ) -> None:
        """Sent once per `dedup_key` (the lifecycle id), however often the step is retried."""
        email = templates.activation(name, project_name, portal_url)
        run_once("activation-email", dedup_key, lambda: self._send(to, email, "activation"))

    def send_password_reset(self, to: str, name: str, project_name: str, reset_url: str) -> None:
        self._send(to, templates.password_reset(name, project_name, reset_url), "password_reset")

    def send_expiry_reminder(
        self, to: str, name: str, project_name: str, expires_at: str, dedup_key: str
    ) -> None:
        """Sent once per `dedup_key` (one grant's one expiry): jobs may run twice at once."""
        email = templates.expiry_reminder(name, project_name, expires_at)
        run_once("expiry-reminder", dedup_key, lambda: self._send(to, email, "expiry_reminder"))

    def send_support_access_changed(self, to: str, project: Project, dedup_key: str) -> None:
        """Sent once per `dedup_key` (one change): the request and the sweeper may both try."""
        access = project.support_access
        email = templates.support_access_changed(
            project.name, project.project_id, access.enabled, access.reason, access.changed_by or ""
        )
        run_once("support-access-email", dedup_key, lambda: self._send(to, email, "support_access"))

    def send_access_request_decision(
        self, to: str, name: str, project_name: str, request: AccessRequest
    ) -> None:
        """Sent once per request, however often the decision is retried."""
        email = templates.access_request_decision(
            name,
            project_name,
            request.status == "approved",
            request.reason,
            request.grant_expires_at,
        )
        run_once(
            "access-request-decision",
            f"{request.project_id}#{request.request_id}",
            lambda: self._send(to, email, "access_request_decision"),
        )

    def _send(self, to: str, email: Email, kind: str) -> None:
        try:
            client("ses").send_email(
                Source=get_settings().mail_sender,
                Destination={"ToAddresses": [to]},
                Message={
                    "Subject": {"Data": email.subject, "Charset": "UTF-8"},
                    "Body": {
                        "Text": {"Data": email.text, "Charset": "UTF-8"},
                        "Html": {"Data": email.html, "Charset": "UTF-8"},
                    },
                },
            )
        except (ClientError, BotoCoreError) as exc:
            raise DependencyUnavailable(f"the {kind} email could not be sent") from exc
        logger.info("email sent", extra={"kind": kind, "to": mask_email(to)})
