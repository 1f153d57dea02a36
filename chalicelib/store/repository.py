"""`DynamoStore`: the domain's `Store` and `UnitOfWork` on DynamoDB (PynamoDB + transactions).

Every write that belongs together (a grant's status and its activity entry, a new contact and its
email claim) goes through one `TransactWrite`, with the lifecycle rules as its conditions, so a
change is either whole or absent.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from dataclasses import asdict
from typing import Any, TypeVar

from pynamodb.connection import Connection
from pynamodb.exceptions import PutError, TransactWriteError
from pynamodb.expressions.condition import Condition
from pynamodb.models import Model
from pynamodb.pagination import ResultIterator
from pynamodb.transactions import TransactWrite

from ..config import get_settings
from ..domain.grant_lifecycle import ALLOWED_FROM, PENDING
from ..domain.models import (
    ActivityEntry,
    Actor,
    Contact,
    ContactStatus,
    Grant,
    GrantError,
    GrantStatus,
    Project,
    SupportAccess,
    iso,
    utc_now,
)
from ..domain.ports import Page
from ..errors import MalformedRequest, StaleState
from ..observability import logger, mask_email
from .tables import ActivityItem, ContactItem, GrantItem, ProjectItem

M = TypeVar("M", bound=Model)
X = TypeVar("X")


def _claim_key(email: str) -> str:
    return f"email#{email.lower()}"


# --- item <-> domain ------------------------------------------------------------------------


def _project(item: ProjectItem) -> Project:
    support = item.support_access.as_dict() if item.support_access else {}
    return Project(
        project_id=item.project_id,
        name=item.name,
        customer_company_id=item.customer_company_id,
        integrator_company_id=item.integrator_company_id,
        created_by=item.created_by,
        service_desk_id=item.service_desk_id,
        organization_id=item.organization_id,
        allowed_email_domains=list(item.allowed_email_domains or []),
        support_access=SupportAccess(**support),
        service_desk_name=item.service_desk_name,
        organization_name=item.organization_name,
    )


def _project_item(project: Project) -> ProjectItem:
    data = asdict(project)
    return ProjectItem(**data)


def _contact(item: ContactItem) -> Contact:
    return Contact(
        contact_id=item.contact_id,
        email=item.email or "",
        name=item.name or "",
        company_id=item.company_id,
        console_user=bool(item.console_user),
        groups=list(item.groups or []),
        external_for=sorted(item.external_for or []),
        status=ContactStatus(item.status or ContactStatus.ACTIVE),
    )


def _contact_item(contact: Contact) -> ContactItem:
    data = asdict(contact)
    data["status"] = contact.status.value
    data["external_for"] = set(contact.external_for) or None  # DynamoDB has no empty sets
    return ContactItem(**data)


def _grant(item: GrantItem) -> Grant:
    error = item.error.as_dict() if item.error else None
    return Grant(
        project_id=item.project_id,
        contact_id=item.contact_id,
        status=GrantStatus(item.status),
        email=item.email,
        name=item.name,
        requested_by=item.requested_by,
        requested_at=item.requested_at,
        updated_at=item.updated_at,
        service_desk_id=item.service_desk_id,
        organization_id=item.organization_id,
        via_company_id=item.via_company_id,
        jira_account_id=item.jira_account_id,
        account_created=bool(item.account_created),
        error=GrantError(**error) if error else None,
        expires_at=item.expires_at,
        lifecycle_id=item.lifecycle_id,
    )


def _grant_item(grant: Grant) -> GrantItem:
    data = asdict(grant)
    data["status"] = grant.status.value
    return GrantItem(**data)


def _activity(item: ActivityItem) -> ActivityEntry:
    return ActivityEntry(
        project_id=item.project_id,
        at=item.at,
        id=item.id,
        action=item.action,
        actor=Actor.from_dict(item.actor.as_dict()),
        contact_id=item.contact_id,
        contact_email=item.contact_email,
        detail=item.detail.as_dict() if item.detail else {},
    )


def _activity_item(entry: ActivityEntry) -> ActivityItem:
    return ActivityItem(
        project_id=entry.project_id,
        id=entry.id,
        at=entry.at,
        action=entry.action,
        actor=entry.actor.to_dict(),
        contact_id=entry.contact_id,
        contact_email=entry.contact_email,
        project_contact=f"{entry.project_id}#{entry.contact_id}" if entry.contact_id else None,
        detail=entry.detail,
    )


def _log_recorded(entry: ActivityEntry) -> None:
    """The CloudWatch copy of a committed activity entry (infra/monitoring.py's saved queries)."""
    error = entry.detail.get("error")
    logger.info(
        "activity recorded",
        extra={
            "activity": {
                "project_id": entry.project_id,
                "id": entry.id,
                "action": entry.action,
                "actor_type": entry.actor.type.value,
                "actor_id": entry.actor.id,
                "actor_email": mask_email(entry.actor.email),
                "contact_id": entry.contact_id,
                "contact_email": mask_email(entry.contact_email),
                "execution": entry.detail.get("execution"),
                "error_code": error.get("code") if isinstance(error, dict) else None,
            }
        },
    )


# --- pagination -----------------------------------------------------------------------------


def _encode_cursor(key: dict[str, Any] | None) -> str | None:
    if not key:
        return None
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode()


def _decode_cursor(cursor: str | None, key_of: dict[str, str | None]) -> dict[str, Any] | None:
    """The start key a cursor carries; it must be a key of this very query (`key_of`: attribute
    → required value, or None for any string), else DynamoDB fails the query (a 500) or pages
    another partition's position."""
    if not cursor:
        return None
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, binascii.Error) as exc:
        raise MalformedRequest("cursor is not one this API returned") from exc
    if not isinstance(key, dict) or set(key) != set(key_of):
        raise MalformedRequest("cursor is not one this API returned")
    for name, wanted in key_of.items():
        value = key[name]
        if not (isinstance(value, dict) and set(value) == {"S"} and isinstance(value["S"], str)):
            raise MalformedRequest("cursor is not one this API returned")
        if wanted is not None and value["S"] != wanted:
            raise MalformedRequest("cursor is not one this API returned")
    return key


def _page(results: ResultIterator[M], convert: Callable[[M], X]) -> Page[X]:
    items = [convert(item) for item in results]
    return Page(items=items, next_cursor=_encode_cursor(results.last_evaluated_key))


# --- unit of work ---------------------------------------------------------------------------


class DynamoUnitOfWork:
    """Collects writes, then commits them in one DynamoDB transaction."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self._ops: list[Callable[[TransactWrite], None]] = []
        self._entries: list[ActivityEntry] = []

    def create_contact(self, contact: Contact) -> None:
        item = _contact_item(contact)
        claim = ContactItem(contact_id=_claim_key(contact.email), claimed_by=contact.contact_id)
        self._ops.append(lambda t: t.save(item, condition=ContactItem.contact_id.does_not_exist()))
        self._ops.append(lambda t: t.save(claim, condition=ContactItem.contact_id.does_not_exist()))

    def put_contact(self, contact: Contact, previous_email: str | None) -> None:
        """Directory sync: upsert, moving the email claim when the address changed."""
        item = _contact_item(contact)
        self._ops.append(lambda t: t.save(item))
        if previous_email != contact.email:
            claim = ContactItem(contact_id=_claim_key(contact.email), claimed_by=contact.contact_id)
            owned = ContactItem.contact_id.does_not_exist() | (
                ContactItem.claimed_by == contact.contact_id
            )
            self._ops.append(lambda t: t.save(claim, condition=owned))
            if previous_email:
                old = ContactItem(contact_id=_claim_key(previous_email))
                self._ops.append(lambda t: t.delete(old))

    def link_external(self, contact_id: str, company_id: str) -> None:
        item = ContactItem(contact_id=contact_id)
        self._ops.append(
            lambda t: t.update(
                item,
                actions=[ContactItem.external_for.add({company_id})],
                condition=ContactItem.contact_id.exists()
                & ~ContactItem.external_for.contains(company_id),
            )
        )

    def unlink_external(self, contact_id: str, company_id: str) -> None:
        item = ContactItem(contact_id=contact_id)
        self._ops.append(
            lambda t: t.update(
                item,
                actions=[ContactItem.external_for.delete({company_id})],
                condition=ContactItem.external_for.contains(company_id),
            )
        )

    def put_project(self, project: Project) -> None:
        item = _project_item(project)
        self._ops.append(lambda t: t.save(item))

    def change_support_access(
        self, project_id: str, access: SupportAccess, *, expected_enabled: bool
    ) -> None:
        item = ProjectItem(project_id=project_id)
        enabled = ProjectItem.support_access["enabled"]
        unchanged = enabled == expected_enabled
        if not expected_enabled:  # a project never switched on has no support_access yet
            unchanged = unchanged | ProjectItem.support_access.does_not_exist()
        self._ops.append(
            lambda t: t.update(
                item,
                actions=[ProjectItem.support_access.set(asdict(access))],
                condition=ProjectItem.project_id.exists() & unchanged,
            )
        )

    def create_grant(self, grant: Grant) -> None:
        item = _grant_item(grant)
        self._ops.append(lambda t: t.save(item, condition=GrantItem.project_id.does_not_exist()))

    def transition_grant(
        self,
        grant: Grant,
        target: GrantStatus,
        *,
        expected_lifecycle: str | None = None,
        lifecycle_id: str | None = None,
        jira_account_id: str | None = None,
        account_created: bool | None = None,
        error: GrantError | None = None,
    ) -> None:
        item = GrantItem(project_id=grant.project_id, contact_id=grant.contact_id)
        actions: list[Any] = [
            GrantItem.status.set(target.value),
            GrantItem.updated_at.set(iso(utc_now())),
        ]
        actions.append(GrantItem.error.set(asdict(error)) if error else GrantItem.error.remove())
        if lifecycle_id is not None:
            actions.append(GrantItem.lifecycle_id.set(lifecycle_id))
        if jira_account_id is not None:
            actions.append(GrantItem.jira_account_id.set(jira_account_id))
        if account_created is not None:
            actions.append(GrantItem.account_created.set(account_created))
        condition: Condition = GrantItem.status.is_in(*(s.value for s in ALLOWED_FROM[target]))
        if expected_lifecycle is not None:
            condition &= GrantItem.lifecycle_id == expected_lifecycle
        self._ops.append(lambda t: t.update(item, actions=actions, condition=condition))

    def delete_grant(self, grant: Grant, *, expected_lifecycle: str | None) -> None:
        item = GrantItem(project_id=grant.project_id, contact_id=grant.contact_id)
        condition: Condition = GrantItem.status == GrantStatus.DELETION_PENDING.value
        if expected_lifecycle is not None:
            condition &= GrantItem.lifecycle_id == expected_lifecycle
        self._ops.append(lambda t: t.delete(item, condition=condition))

    def append(self, entry: ActivityEntry) -> None:
        item = _activity_item(entry)
        self._ops.append(lambda t: t.save(item, condition=ActivityItem.id.does_not_exist()))
        self._entries.append(entry)

    def commit(self) -> None:
        if not self._ops:
            return
        try:
            with TransactWrite(connection=self._connection) as transaction:
                for op in self._ops:
                    op(transaction)
        except TransactWriteError as exc:
            reasons = [r.code for r in (exc.cancellation_reasons or []) if r]
            if "ConditionalCheckFailed" in reasons:
                raise StaleState("the item changed while we were writing it") from exc
            raise
        else:
            for entry in self._entries:
                _log_recorded(entry)
        finally:
            self._ops.clear()
            self._entries.clear()


# --- store ----------------------------------------------------------------------------------


class DynamoStore:
    """Reads and single writes; multi-item writes go through `unit_of_work()`."""

    def __init__(self) -> None:
        self._connection = Connection(region=get_settings().region)

    def unit_of_work(self) -> DynamoUnitOfWork:
        return DynamoUnitOfWork(self._connection)

    def get_project(self, project_id: str) -> Project | None:
        return _first(ProjectItem, project_id, convert=_project)

    def get_contact(self, contact_id: str) -> Contact | None:
        contact = _first(ContactItem, contact_id, convert=_contact)
        return contact if contact and not contact.contact_id.startswith("email#") else None

    def find_contact_by_email(self, email: str) -> Contact | None:
        claim = _first(ContactItem, _claim_key(email), convert=lambda item: item)
        return self.get_contact(claim.claimed_by) if claim and claim.claimed_by else None

    def company_console_users(self, company_id: str) -> list[Contact]:
        items = ContactItem.company_index.query(company_id)
        contacts = (_contact(item) for item in items)
        return [c for c in contacts if c.console_user and c.status is ContactStatus.ACTIVE]

    def get_grant(self, project_id: str, contact_id: str, consistent: bool = True) -> Grant | None:
        try:
            return _grant(GrantItem.get(project_id, contact_id, consistent_read=consistent))
        except GrantItem.DoesNotExist:
            return None

    def grants_of_project(self, project_id: str, limit: int, cursor: str | None) -> Page[Grant]:
        results = GrantItem.query(
            project_id,
            limit=limit,
            page_size=limit,
            last_evaluated_key=_decode_cursor(
                cursor, {"project_id": project_id, "contact_id": None}
            ),
        )
        return _page(results, _grant)

    def grants_of_contact(self, contact_id: str) -> list[Grant]:
        return [_grant(item) for item in GrantItem.contact_index.query(contact_id)]

    def all_grants_of_project(self, project_id: str) -> list[Grant]:
        return [_grant(item) for item in GrantItem.query(project_id)]

    def all_projects(self) -> list[Project]:
        """Every project (a scan: for the daily drift check only)."""
        return [_project(item) for item in ProjectItem.scan()]

    def activity(
        self, project_id: str, contact_id: str | None, limit: int, cursor: str | None
    ) -> Page[ActivityEntry]:
        key_of: dict[str, str | None] = {"project_id": project_id, "id": None}
        if contact_id:
            key_of["project_contact"] = f"{project_id}#{contact_id}"
        start = _decode_cursor(cursor, key_of)
        if contact_id:
            results = ActivityItem.contact_index.query(
                f"{project_id}#{contact_id}",
                scan_index_forward=False,
                limit=limit,
                page_size=limit,
                last_evaluated_key=start,
            )
        else:
            results = ActivityItem.query(
                project_id,
                scan_index_forward=False,
                limit=limit,
                page_size=limit,
                last_evaluated_key=start,
            )
        return _page(results, _activity)

    def append_activity(self, entry: ActivityEntry) -> None:
        try:
            _activity_item(entry).save(condition=ActivityItem.id.does_not_exist())
        except PutError as exc:
            raise StaleState("activity entry already recorded") from exc
        _log_recorded(entry)

    def pending_grants(self) -> list[Grant]:
        """Every grant with a lifecycle under way (a scan: for the stalled-grant sweeper only)."""
        wanted = [s.value for s in PENDING]
        return [_grant(item) for item in GrantItem.scan(GrantItem.status.is_in(*wanted))]


def _first(model: type[M], key: str, convert: Callable[[M], X]) -> X | None:
    try:
        return convert(model.get(key, consistent_read=True))
    except model.DoesNotExist:
        return None
