"""The HR queue's consumer (SPEC §4): one SQS batch → one domain call per message.

Powertools batch processing reports each failed message on its own (`batchItemFailures`): a
malformed message, or one whose processing failed (Step Functions, DynamoDB), comes back after
the visibility timeout and reaches the DLQ after 3 receives, while the rest of its batch is
done. Each message runs once by its `id` (Powertools idempotency on the idempotency table): a
duplicate delivery returns the first outcome without touching anything.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from pydantic import ValidationError

from .. import services
from ..domain.hr_events import HR_MESSAGE, FollowUpRound, HrEvent
from ..domain.models import Actor, ActorType, Contact
from ..domain.offboarding import OffboardingResult
from ..idempotency import run_once
from ..observability import count, logger, mask_email

HR_ACTOR = Actor(type=ActorType.HR)
IDEMPOTENCY_NAME = "hr-event"
# Long enough to cover SQS's retention of a message (14 days on the queue and its DLQ), so a
# message replayed from the DLQ after a fix is still recognised if it had been applied.
IDEMPOTENCY_TTL_SECONDS = 15 * 24 * 3600

# A batch of only poison messages is reported like any other (not raised as a whole).
_processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


class MalformedHrMessage(ValueError):
    """Neither an HR event nor a follow-up round: logged, then left to the DLQ (3 receives)."""


def handle_batch(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The SQS event source's batch → `{"batchItemFailures": [...]}` (ReportBatchItemFailures)."""
    return dict(
        process_partial_response(
            event=event, record_handler=_handle_record, processor=_processor, context=context
        )
    )


def _handle_record(record: SQSRecord) -> dict[str, Any]:
    message = _parse(record)
    return dict(
        run_once(
            IDEMPOTENCY_NAME,
            message.id,
            lambda: _apply(message),
            ttl_seconds=IDEMPOTENCY_TTL_SECONDS,
        )
    )


def _parse(record: SQSRecord) -> HrEvent | FollowUpRound:
    try:
        return HR_MESSAGE.validate_json(record.body)
    except ValidationError as exc:
        problems = [
            {"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]}
            for e in exc.errors(include_url=False, include_input=False)
        ]
        logger.error(
            "malformed hr message",
            extra={
                "message_id": record.message_id,
                "receive_count": record.attributes.approximate_receive_count,
                "problems": problems[:10],
            },
        )
        count("HrEventMalformed")
        raise MalformedHrMessage(f"message {record.message_id} is not an HR event") from None


def _apply(message: HrEvent | FollowUpRound) -> dict[str, Any]:
    offboarding = services.offboarding()
    if isinstance(message, FollowUpRound):
        revocation = message.revocation()
        result = offboarding.continue_revocation(revocation)
        return _outcome(message.id, "follow_up", revocation.actor, result)
    contact = _find(message)
    if contact is None:
        logger.warning(
            "hr event for an unknown contact acknowledged",
            extra={
                "hr_event_id": message.id,
                "hr_event_type": message.type,
                "contact_id": message.contact_id,
                "email": mask_email(message.email),
            },
        )
        count("HrEventUnknownContact")
        return {"id": message.id, "outcome": "unknown_contact"}
    if message.type == "contact.offboarded":
        # Applied even when older than the contact's last change: revocation is never skipped.
        result = offboarding.offboard_contact(contact, HR_ACTOR, origin=message.id)
    else:
        result = offboarding.change_company(
            contact, message.company_id, HR_ACTOR, origin=message.id
        )
    return _outcome(message.id, message.type, HR_ACTOR, result)


def _find(event: HrEvent) -> Contact | None:
    store = services.store()
    if event.contact_id is not None:
        return store.get_contact(event.contact_id)
    assert event.email is not None  # the model requires one of the two
    return store.find_contact_by_email(event.email.lower())


def _outcome(message_id: str, kind: str, actor: Actor, result: OffboardingResult) -> dict[str, Any]:
    """Logged once per message: the saved query of docs/operations.md reads these fields."""
    contact = result.contact
    outcome = {
        "id": message_id,
        "outcome": kind,
        "source": actor.type.value,
        "contact_id": contact.contact_id if contact else None,
        "changed": result.changed,
        "removals_started": result.removals_started,
        "left_to_sweeper": result.left_to_sweeper,
        "already_removing": result.already_removing,
        "waiting": result.waiting,
        "failed": result.failed,
        "kept": result.kept,
        "follow_up_in": result.follow_up_in,
    }
    logger.info("hr event applied", extra={"hr": outcome})
    if result.waiting and result.follow_up_in is None:
        logger.error(
            "revocation gave up waiting for activations to settle",
            extra={"hr_event_id": message_id, "waiting": result.waiting},
        )
    return outcome
