"""`POST /hr/events`: the HR webhook (SPEC §2, §4). Signed, not behind the console's JWT.

The signature is checked over the raw bytes before anything parses them (an unsigned body is
never interpreted), with a constant-time compare; the refusal says nothing about why beyond
"missing or invalid", and never echoes the secret or the expected value. A verified event is
queued as received: the consumer (`chalicelib/hr/consumer.py`) does the work.
"""

from __future__ import annotations

import hashlib
import hmac
import json

from chalice.app import Blueprint
from pydantic import ValidationError

from .. import services
from ..config import hr_webhook_secret
from ..domain.hr_events import HR_EVENT, HrEvent
from ..errors import FieldError, TooLarge, Unauthorized, ValidationFailed
from ..observability import logger
from .models import HrEventAccepted
from .routing import MAX_BODY_BYTES, Call, Result, field_errors, operation

bp = Blueprint(__name__)

SIGNATURE_HEADER = "x-signature"
SIGNATURE_PREFIX = "sha256="


def sign(body: bytes, secret: str) -> str:
    """The `X-Signature` value of `body`: `sha256=<hex HMAC-SHA256>`."""
    return SIGNATURE_PREFIX + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(body: bytes, header: str | None, secret: str) -> None:
    """Unauthorized unless `header` is the signature of `body` (constant-time comparison)."""
    given = (header or "").strip().encode("utf-8", "surrogateescape")
    expected = sign(body, secret).encode()
    if not hmac.compare_digest(given.lower(), expected):
        raise Unauthorized("missing or invalid X-Signature")


def parse(body: bytes) -> HrEvent:
    """The HR event in a verified body, or a 422 saying what is wrong with it."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:
        message = "the body is not JSON"
        raise ValidationFailed("not an HR event", [FieldError("body", message)]) from exc
    try:
        return HR_EVENT.validate_python(data)
    except ValidationError as exc:
        raise ValidationFailed("not an HR event", field_errors(exc)) from exc


@operation(
    bp,
    "POST",
    "/hr/events",
    summary="Receive one HR event (queued for processing)",
    who="HR systems, signed with X-Signature: sha256=<hex HMAC-SHA256 of the raw body>",
    status=202,
    request=HrEvent,
    raw_request=True,
    response=HrEventAccepted,
    public=True,
    errors=(401, 413, 422, 503),
    headers=("X-Signature",),
)
def receive(call: Call) -> Result:
    if len(call.raw_body) > MAX_BODY_BYTES:
        raise TooLarge(f"the body is larger than {MAX_BODY_BYTES // 1024} KiB")
    verify(call.raw_body, call.headers.get(SIGNATURE_HEADER), hr_webhook_secret())
    event = parse(call.raw_body)
    message_id = services.hr_queue().enqueue(call.raw_body.decode())
    logger.info(
        "hr event queued",
        extra={"hr_event_id": event.id, "hr_event_type": event.type, "message_id": message_id},
    )
    return Result(HrEventAccepted(id=event.id, status="queued"), status=202)
