"""SCIM documents ↔ the service's values, with `scim2-models` (RFC 7643 resources, PatchOp,
ListResponse, Error) and `scim2-filter-parser` (`filter=`).

Imported on a SCIM request's first call only (`api/scim.py`): these libraries build their
pydantic models at import, ~0.5 s that no other API call should pay for (docs/decisions.md).
"""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, TypeAdapter, ValidationError
from scim2_filter_parser import ast as filter_ast
from scim2_filter_parser.lexer import SCIMLexer
from scim2_filter_parser.parser import SCIMParser
from scim2_models import (
    AuthenticationScheme,
    Bulk,
    ChangePassword,
    Context,
    EnterpriseUser,
    Error,
    ETag,
    Filter,
    Meta,
    Name,
    Patch,
    PatchOp,
    ResourceType,
    SCIMException,
    ServiceProviderConfig,
    Sort,
    User,
)

from ..domain.models import Contact, ContactStatus
from ..domain.scim_users import UserProfile, UserQuery
from ..errors import FieldError, ValidationFailed
from .models import Email as EmailText

SCIM_JSON = "application/scim+json"
MAX_RESULTS = 100
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
FILTERABLE = {"username": "userName", "externalid": "externalId", "id": "id"}
EMAIL: TypeAdapter[str] = TypeAdapter(EmailText, config=ConfigDict(defer_build=True))
# Entra sends the enterprise extension (department, manager…): accepted, not stored.
ScimUser = User[EnterpriseUser]


class InvalidScim(Exception):
    """A request the SCIM protocol refuses, with its `scimType` (RFC 7644 §3.12)."""

    def __init__(self, detail: str, scim_type: str, status: int = 400) -> None:
        super().__init__(detail)
        self.detail = detail
        self.scim_type = scim_type
        self.status = status


def error_body(status: int, detail: str, scim_type: str | None = None) -> dict[str, Any]:
    error = Error(status=status, detail=detail, scim_type=scim_type)
    return error.model_dump(mode="json", exclude_none=True)


def dump(resource: Any, context: Context = Context.RESOURCE_QUERY_RESPONSE) -> dict[str, Any]:
    data: dict[str, Any] = resource.model_dump(mode="json", scim_ctx=context)
    return data


# --- users ------------------------------------------------------------------------------------


def user_of(contact: Contact, base_url: str) -> ScimUser:
    return ScimUser(
        id=contact.contact_id,
        external_id=contact.external_id,
        user_name=contact.email,
        name=Name(formatted=contact.name),
        display_name=contact.name,
        active=contact.status is ContactStatus.ACTIVE,
        meta=Meta(resource_type="User", location=f"{base_url}/Users/{contact.contact_id}"),
    )


def dump_user(
    contact: Contact, base_url: str, context: Context = Context.RESOURCE_QUERY_RESPONSE
) -> dict[str, Any]:
    """The User document of a contact; `emails` is its one address (see `_without_emails`)."""
    data = dump(user_of(contact, base_url), context)
    data["emails"] = [{"value": contact.email, "primary": True, "type": "work"}]
    return data


def _without_emails(body: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """The body without `emails`, and its primary address. The email is the userName (SPEC §4),
    checked by the service's own email rule: scim2-models' `EmailStr` refuses addresses our
    contacts may have (`okta.local`, the address in Okta's own examples)."""
    rest = {k: v for k, v in body.items() if k.lower() != "emails"}
    emails = next((v for k, v in body.items() if k.lower() == "emails"), None)
    if not isinstance(emails, list):
        return rest, None
    entries = [e for e in emails if isinstance(e, dict) and isinstance(e.get("value"), str)]
    primary = next((e for e in entries if e.get("primary") in (True, "true", "True")), None)
    chosen = primary or (entries[0] if entries else None)
    return rest, chosen["value"] if chosen else None


def parse_user(body: dict[str, Any], context: Context) -> tuple[ScimUser, str | None]:
    """The User a POST or PUT sends, and its primary email address (if any)."""
    rest, primary = _without_emails(body)
    try:
        return ScimUser.model_validate(rest, scim_ctx=context), primary
    except ValidationError as exc:
        raise _invalid(exc) from exc


def apply_patch(body: dict[str, Any], user: ScimUser) -> ScimUser:
    """`user` with the PatchOp's operations applied (`op` and boolean strings in any case).
    Operations on `emails` are left out: the email is the userName."""
    operations = body.get("Operations")
    if isinstance(operations, list):
        kept = []
        for op in operations:
            if not isinstance(op, dict):
                kept.append(op)
                continue
            path = op.get("path")
            if isinstance(path, str) and path.lower().startswith("emails"):
                continue
            value = op.get("value")
            if path is None and isinstance(value, dict):
                kept.append({**op, "value": _without_emails(value)[0]})
            else:
                kept.append(op)
        body = {**body, "Operations": kept}
    try:
        patch = PatchOp[ScimUser].model_validate(body, scim_ctx=Context.RESOURCE_PATCH_REQUEST)
        patched = user.model_copy(deep=True)
        patch.patch(patched)
    except ValidationError as exc:
        raise _invalid(exc) from exc
    except SCIMException as exc:
        raise InvalidScim(str(exc.detail), str(exc.scim_type or "invalidValue")) from exc
    return patched


def _invalid(exc: ValidationError) -> InvalidScim:
    errors = exc.errors(include_url=False)
    if not errors:
        return InvalidScim("the request body is not valid", "invalidValue")
    first = errors[0]
    where = ".".join(str(p) for p in first["loc"]) or "body"
    message = str(first["msg"]).removeprefix("Value error, ")
    scim_type = (first.get("ctx") or {}).get("scim_type") or "invalidValue"
    return InvalidScim(f"{where}: {message}"[:300], str(scim_type))


def profile_of(user: ScimUser, previous: Contact | None, primary: str | None = None) -> UserProfile:
    """The contact fields a SCIM User carries (SPEC §4): userName = email (lower-cased; the
    primary email when the userName is not an address), a name (`name.formatted`, else
    `givenName familyName`, else `displayName`), externalId, active."""
    email = None
    for candidate in (user.user_name, primary):
        try:
            email = EMAIL.validate_python(candidate or "")
            break
        except ValidationError:
            continue
    if email is None:
        message = "userName must be an email address"
        raise ValidationFailed(message, [FieldError("userName", message)])
    active = user.active if user.active is not None else True
    return UserProfile(
        email=email,
        name=_name_of(user, previous.name if previous else None) or email,
        external_id=user.external_id,
        active=bool(active),
    )


def _name_of(user: ScimUser, previous: str | None) -> str | None:
    """The name the provider means: the first of formatted, given + family and displayName that
    it set or changed (a PATCH of `name.givenName` changes the name), else the previous one."""
    name = user.name
    formatted = name.formatted if name else None
    parts = [name.given_name, name.middle_name, name.family_name] if name else []
    joined = " ".join(p.strip() for p in parts if p and p.strip()) or None
    for candidate in (formatted, joined, user.display_name):
        if candidate and candidate.strip() != previous:
            return candidate.strip()
    return previous


def list_response(users: list[dict[str, Any]], total: int, start_index: int) -> dict[str, Any]:
    return {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
        "totalResults": total,
        "startIndex": start_index,
        "itemsPerPage": len(users),
        "Resources": users,
    }


def parse_query(raw: str | None) -> UserQuery | None:
    """`filter=` as the providers send it: `userName eq "…"`, `externalId eq "…"` (or `id`)."""
    if raw is None or not raw.strip():
        return None
    try:
        parsed = SCIMParser().parse(SCIMLexer().tokenize(raw))
    except Exception as exc:
        raise InvalidScim("the filter is not a SCIM filter", "invalidFilter") from exc
    expr = getattr(parsed, "expr", None)
    if (
        not isinstance(parsed, filter_ast.Filter)
        or parsed.negated
        or not isinstance(expr, filter_ast.AttrExpr)
        or str(expr.value).lower() != "eq"
        or expr.attr_path.sub_attr is not None
        or expr.attr_path.uri not in (None, USER_SCHEMA)
        or str(expr.attr_path.attr_name).lower() not in FILTERABLE
    ):
        detail = 'only `userName eq "…"`, `externalId eq "…"` and `id eq "…"` are supported'
        raise InvalidScim(detail, "invalidFilter")
    return UserQuery(FILTERABLE[str(expr.attr_path.attr_name).lower()], str(expr.comp_value.value))


# --- discovery --------------------------------------------------------------------------------


def service_provider_config(base_url: str) -> dict[str, Any]:
    config = ServiceProviderConfig(
        documentation_uri=None,
        patch=Patch(supported=True),
        bulk=Bulk(supported=False, max_operations=0, max_payload_size=0),
        filter=Filter(supported=True, max_results=MAX_RESULTS),
        change_password=ChangePassword(supported=False),
        sort=Sort(supported=False),
        etag=ETag(supported=False),
        authentication_schemes=[
            AuthenticationScheme(
                type=AuthenticationScheme.Type.oauthbearertoken,
                name="OAuth Bearer Token",
                description="A company's SCIM token (POST /companies/{company_id}/scim-tokens)",
                primary=True,
            )
        ],
        meta=Meta(
            resource_type="ServiceProviderConfig", location=f"{base_url}/ServiceProviderConfig"
        ),
    )
    return dump(config)


def user_resource_type(base_url: str) -> dict[str, Any]:
    """The one resource type offered: Users (no Groups)."""
    resource_type = ResourceType.from_resource(User)
    resource_type.description = "Contacts of the token's company. Groups are not offered."
    resource_type.meta = Meta(
        resource_type="ResourceType", location=f"{base_url}/ResourceTypes/User"
    )
    return dump(resource_type)


def user_schema(base_url: str) -> dict[str, Any]:
    schema = User.to_schema()
    schema.meta = Meta(resource_type="Schema", location=f"{base_url}/Schemas/{USER_SCHEMA}")
    return dump(schema)
