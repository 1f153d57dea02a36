"""`SqsHrQueue`: puts HR events (from the webhook) and revocation follow-ups on the HR queue."""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError

from ..aws import client
from ..config import get_settings
from ..domain.hr_events import FollowUpRound
from ..domain.offboarding import Revocation
from ..errors import DependencyUnavailable
from ..observability import logger

MAX_DELAY_SECONDS = 900  # SQS's limit for DelaySeconds


class SqsHrQueue:
    def enqueue(self, body: str) -> str:
        """Queue one HR event as received (its raw, verified body); returns the message id."""
        return self._send(body, 0)

    def schedule(self, revocation: Revocation, delay_seconds: int) -> None:
        """The next round of `revocation`, delivered after `delay_seconds` (`FollowUps`)."""
        message = FollowUpRound.of(revocation)
        self._send(message.model_dump_json(), delay_seconds)
        logger.info(
            "revocation follow-up scheduled",
            extra={
                "contact_id": revocation.contact_id,
                "origin": revocation.origin,
                "round": revocation.round,
                "delay_seconds": delay_seconds,
            },
        )

    @staticmethod
    def _send(body: str, delay_seconds: int) -> str:
        try:
            response = client("sqs").send_message(
                QueueUrl=get_settings().hr_queue_url,
                MessageBody=body,
                DelaySeconds=max(0, min(MAX_DELAY_SECONDS, delay_seconds)),
            )
        except (ClientError, BotoCoreError) as exc:
            raise DependencyUnavailable(f"the HR queue refused the message: {exc}") from exc
        return str(response["MessageId"])
