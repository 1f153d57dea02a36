"""`/contacts`: directory sync from the console and the "exists in the portal" lookup."""

from __future__ import annotations

from chalice.app import Blueprint
from pydantic import ConfigDict, TypeAdapter, ValidationError

from .. import services
from ..domain.contacts import ContactSpec
from ..errors import FieldError, ValidationFailed
from . import presenters
from .models import ContactLookupResponse, ContactResponse, Email, PutContactRequest
from .routing import Call, Result, operation

bp = Blueprint(__name__)
EMAIL: TypeAdapter[str] = TypeAdapter(Email, config=ConfigDict(defer_build=True))


@operation(
    bp,
    "PUT",
    "/contacts/{contact_id}",
    summary="Create or update a contact (directory sync)",
    who="service",
    request=PutContactRequest,
    response=ContactResponse,
    errors=(400, 401, 403, 409, 422),
)
def put_contact(call: Call, contact_id: str) -> Result:
    body: PutContactRequest = call.body
    spec = ContactSpec(**body.model_dump())
    contact, created = services.contacts().put(call.user, contact_id, spec)
    return Result(presenters.contact(contact), status=201 if created else 200)


@operation(
    bp,
    "GET",
    "/contacts",
    summary="Does a contact with this email exist in the portal?",
    who="project_manager, supervisor",
    response=ContactLookupResponse,
    query=("email",),
    errors=(401, 403, 422),
)
def lookup_contact(call: Call) -> Result:
    try:
        email = EMAIL.validate_python(call.query.get("email", ""))
    except ValidationError as exc:
        message = "email must be an email address"
        raise ValidationFailed(message, [FieldError("email", message)]) from exc
    contact = services.contacts().lookup(call.user, email)
    return Result(
        ContactLookupResponse(
            exists=contact is not None,
            contact=presenters.contact_as_seen(contact) if contact else None,
        )
    )
