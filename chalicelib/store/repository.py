"""`DynamoStore`: the domain's `Store` and `UnitOfWork` on DynamoDB (PynamoDB + transactions).

Every write that belongs together (a grant's status and its activity entry, a new contact and its
email claim, a project and its organization claim) goes through one `TransactWrite`, with the
lifecycle rules as its conditions, so a change is either whole or absent.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import asdict, replace
from typing import Any, NoReturn, TypeVar

from botocore.exceptions import ClientError
from pynamodb.connection import Connection
from pynamodb.exceptions import PutError, TransactWriteError
from pynamodb.expressions.condition import Condition
from pynamodb.models import Model
from pynamodb.pagination import ResultIterator
from pynamodb.transactions import TransactWrite

from ..config import get_settings
from ..domain.grant_lifecycle import PENDING
from ..domain.ids import ulid_range
from ..domain.models import (
    EVERY_ENTRY,
    AccessRequest,
    ActivityEntry,
    ActivityFilter,
    Actor,
    Contact,
    ContactStatus,
    Grant,
    GrantError,
    GrantStatus,
    Project,
    Review,
    ReviewItem,
    ScimToken,
    SupportAccess,
)
from ..domain.ports import GrantReads, LastRun, Page, ReferenceKind
from ..errors import MalformedRequest, StaleState, StoreThrottled, WriteConflict
from ..observability import logger, mask_email
from .tables import (
    EXPIRY_BUCKET,
    ActivityItem,
    ContactItem,
    GovernanceItem,
    GrantItem,
    OrganizationClaimItem,
    ProjectItem,
)

# The export reads the log in pages this big (each at most 1 MB, DynamoDB's own cap).
EXPORT_PAGE_SIZE = 1000

M = TypeVar("M", bound=Model)
X = TypeVar("X")


def _claim_key(email: str) -> str:
    return f"email#{email.lower()}"


_ORGANIZATION_CLAIM = "organization#"


def _organization_key(organization_id: str) -> str:
    return f"{_ORGANIZATION_CLAIM}{organization_id}"


# --- item <-> domain ------------------------------------------------------------------------

# Governance items (tables.GovernanceItem): one partition per project, kinds by key prefix.
REVIEW_DUE_BUCKET = "review"
_OPEN_REVIEW = "open-review"


def _project_pk(project_id: str) -> str:
    return f"project#{project_id}"


def _review_sk(review_id: str) -> str:
    return f"review#{review_id}"


def _review_item_sk(review_id: str, contact_id: str) -> str:
    return f"reviewitem#{review_id}#{contact_id}"


REQUEST_DUE_BUCKET = "request"


def _request_sk(request_id: str) -> str:
    return f"request#{request_id}"


def _pending_request_sk(contact_id: str) -> str:
    return f"pending-request#{contact_id}"


def _access_request(item: GovernanceItem) -> AccessRequest:
    status = item.status if item.status in ("pending", "approved", "denied", "expired") else None
    assert status is not None, f"an access request with status {item.status!r}"
    return AccessRequest(
        request_id=str(item.record_id),
        project_id=str(item.project_id),
        contact_id=str(item.contact_id),
        email=str(item.email),
        name=str(item.name),
        company_id=str(item.company_id),
        reason=str(item.reason),
        status=status,  # type: ignore[arg-type]  # one of the four, checked above
        requested_at=str(item.requested_at),
        expires_at=str(item.due_at),
        decided_by=item.decided_by,
        decided_at=item.decided_at,
        grant_expires_at=item.grant_expires_at,
    )


def _review(item: GovernanceItem, items: list[ReviewItem] | None = None) -> Review:
    return Review(
        review_id=str(item.record_id),
        project_id=str(item.project_id),
        status="open" if item.status == "open" else "closed",
        opened_by=str(item.opened_by),
        opened_at=str(item.opened_at),
        due_at=str(item.due_at),
        closed_at=item.closed_at,
        items=items or [],
    )


def _review_item(item: GovernanceItem) -> ReviewItem:
    decision = item.decision if item.decision in ("keep", "revoke") else None
    return ReviewItem(
        contact_id=str(item.contact_id),
        email=str(item.email),
        name=str(item.name),
        lifecycle_id=item.lifecycle_id,
        granted_by_company_id=item.granted_by_company_id,
        decision=decision,  # type: ignore[arg-type]  # checked against the two values above
        decided_by=item.decided_by,
        decided_at=item.decided_at,
    )


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
        external_id=item.external_id,
        scim_deleted=bool(item.scim_deleted),
    )


def _contact_item(contact: Contact) -> ContactItem:
    data = asdict(contact)
    data["status"] = contact.status.value
    data["external_for"] = set(contact.external_for) or None  # DynamoDB has no empty sets
    data["scim_deleted"] = contact.scim_deleted or None
    return ContactItem(**data)


# SCIM tokens (tables.GovernanceItem): the company's rows and one lookup by hash per live token.
_SCIM_TOKEN = "scim-token"  # noqa: S105 - a key prefix, not a secret


def _company_pk(company_id: str) -> str:
    return f"company#{company_id}"


def _scim_token_sk(token_id: str) -> str:
    return f"{_SCIM_TOKEN}#{token_id}"


def _scim_token(item: GovernanceItem) -> ScimToken:
    return ScimToken(
        token_id=str(item.record_id),
        company_id=str(item.company_id),
        token_hash=str(item.token_hash),
        created_at=str(item.created_at),
        created_by=str(item.created_by),
        revoked_at=item.revoked_at,
        revoked_by=item.revoked_by,
    )


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
        granted_by_company_id=item.granted_by_company_id,
        reset_sent_at=item.reset_sent_at,
        welcome_owed=bool(item.welcome_owed),
        jira_account_id=item.jira_account_id,
        account_created=bool(item.account_created),
        error=GrantError(**error) if error else None,
        expires_at=item.expires_at,
        lifecycle_id=item.lifecycle_id,
        expiry_reminded_for=item.expiry_reminded_for,
    )


def _grant_item(grant: Grant) -> GrantItem:
    data = asdict(grant)
    data["status"] = grant.status.value
    if grant.expires_at is not None and grant.status not in _REMOVING:
        data["expiry_bucket"] = EXPIRY_BUCKET
    return GrantItem(**data)


# A grant whose removal started leaves the expiry index (it never becomes activated again).
_REMOVING = frozenset({GrantStatus.DELETION_PENDING, GrantStatus.DELETION_FAILED})


def _same_expiry(grant: Grant) -> Condition:
    if grant.expires_at is None:
        return GrantItem.expires_at.does_not_exist()
    return GrantItem.expires_at == grant.expires_at


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
        self._before: list[GovernanceItem] = []  # written (batch) before the transaction

    def create_contact(self, contact: Contact) -> None:
        item = _contact_item(contact)
        claim = ContactItem(contact_id=_claim_key(contact.email), claimed_by=contact.contact_id)
        self._ops.append(lambda t: t.save(item, condition=ContactItem.contact_id.does_not_exist()))
        self._ops.append(lambda t: t.save(claim, condition=ContactItem.contact_id.does_not_exist()))

    def put_contact(self, contact: Contact, previous_email: str | None) -> None:
        """Directory sync: upsert, moving the email claim when the address changed. Conditional
        on the status the sync read: an offboarding committed since is never written over."""
        item = _contact_item(contact)
        unchanged = ContactItem.contact_id.does_not_exist() | (
            ContactItem.status == contact.status.value
        )
        if contact.status is ContactStatus.ACTIVE:
            unchanged |= ContactItem.status.does_not_exist()  # written before status was stored
        self._ops.append(lambda t: t.save(item, condition=unchanged))
        if previous_email != contact.email:
            claim = ContactItem(contact_id=_claim_key(contact.email), claimed_by=contact.contact_id)
            owned = ContactItem.contact_id.does_not_exist() | (
                ContactItem.claimed_by == contact.contact_id
            )
            self._ops.append(lambda t: t.save(claim, condition=owned))
            if previous_email:
                old = ContactItem(contact_id=_claim_key(previous_email))
                self._ops.append(lambda t: t.delete(old))

    def change_contact_status(self, contact_id: str, status: ContactStatus) -> None:
        item = ContactItem(contact_id=contact_id)
        current = ContactItem.status
        other = current != status.value
        if status is not ContactStatus.ACTIVE:
            other |= current.does_not_exist()  # contacts written before status was stored
        condition = ContactItem.contact_id.exists() & other
        action = current.set(status.value)
        self._ops.append(lambda t: t.update(item, actions=[action], condition=condition))

    def change_contact_company(
        self, contact_id: str, company_id: str | None, expected: str | None
    ) -> None:
        item = ContactItem(contact_id=contact_id)
        company = ContactItem.company_id
        action = company.set(company_id) if company_id else company.remove()
        same = company == expected if expected else company.does_not_exist()
        condition = ContactItem.contact_id.exists() & same
        self._ops.append(lambda t: t.update(item, actions=[action], condition=condition))

    def require_active_contact(self, contact_id: str) -> None:
        self._ops.append(
            lambda t: t.condition_check(ContactItem, contact_id, condition=_active_contact())
        )

    def link_external(self, contact_id: str, company_id: str) -> None:
        item = ContactItem(contact_id=contact_id)
        self._ops.append(
            lambda t: t.update(
                item,
                actions=[ContactItem.external_for.add({company_id})],
                condition=ContactItem.contact_id.exists()
                & ~ContactItem.external_for.contains(company_id)
                & _active_contact(),
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
        # ...and only while no grant of that company references it (a grant committed after
        # the caller looked makes the whole unlink fail).
        references = f"company#{contact_id}#{company_id}"
        self._ops.append(
            lambda t: t.condition_check(
                ContactItem, references, condition=ContactItem.projects.does_not_exist()
            )
        )

    def require_external_link(self, contact_id: str, company_id: str) -> None:
        linked = ContactItem.external_for.contains(company_id) & _active_contact()
        self._ops.append(lambda t: t.condition_check(ContactItem, contact_id, condition=linked))

    def put_project(
        self,
        project: Project,
        *,
        expected_organization_id: str | None = None,
        released_organization_id: str | None = None,
    ) -> None:
        """Upsert the project with the claim on its organization (see `ports.UnitOfWork`)."""
        item = _project_item(project)
        linked = {project.organization_id, expected_organization_id or project.organization_id}
        # The whole item is rewritten: it must still carry the support access it was read with,
        # or a switch changed meanwhile would be lost (with the email it owes).
        support = ProjectItem.support_access["changed_at"]
        same_switch = (
            ~support.is_type("S")
            if project.support_access.changed_at is None
            else support == project.support_access.changed_at
        )
        unchanged = ProjectItem.project_id.does_not_exist() | (
            ProjectItem.organization_id.is_in(*linked) & same_switch
        )
        self._ops.append(lambda t: t.save(item, condition=unchanged))
        self._claim_organization(project.organization_id, project.project_id)
        if released_organization_id and released_organization_id != project.organization_id:
            old = OrganizationClaimItem(project_id=_organization_key(released_organization_id))
            # Already gone is fine (a concurrent identical move released it first).
            ours = OrganizationClaimItem.project_id.does_not_exist() | (
                OrganizationClaimItem.claimed_by == project.project_id
            )
            self._ops.append(lambda t: t.delete(old, condition=ours))

    def _claim_organization(self, organization_id: str, project_id: str) -> None:
        claim = OrganizationClaimItem(
            project_id=_organization_key(organization_id), claimed_by=project_id
        )
        free_or_ours = OrganizationClaimItem.project_id.does_not_exist() | (
            OrganizationClaimItem.claimed_by == project_id
        )
        self._ops.append(lambda t: t.save(claim, condition=free_or_ours))

    def change_support_access(
        self, project_id: str, access: SupportAccess, *, expected: SupportAccess
    ) -> None:
        item = ProjectItem(project_id=project_id)
        stored = ProjectItem.support_access
        if expected.changed_at is None:  # never switched: nothing stored, or stored as null
            unchanged = stored.does_not_exist() | ~stored["changed_at"].is_type("S")
        else:
            unchanged = stored["changed_at"] == expected.changed_at
        self._ops.append(
            lambda t: t.update(
                item,
                actions=[stored.set(asdict(access))],
                condition=ProjectItem.project_id.exists() & unchanged,
            )
        )

    def mark_support_access_notified(self, project_id: str, changed_at: str) -> None:
        item = ProjectItem(project_id=project_id)
        stored = ProjectItem.support_access
        self._ops.append(
            lambda t: t.update(
                item,
                actions=[stored["notified"].set(True)],
                condition=stored["changed_at"] == changed_at,
            )
        )

    def create_grant(self, grant: Grant) -> None:
        item = _grant_item(grant)
        self._ops.append(lambda t: t.save(item, condition=GrantItem.project_id.does_not_exist()))

    def transition_grant(
        self, current: Grant, new: Grant, *, expiry_unchanged: bool = False
    ) -> None:
        item = GrantItem(project_id=current.project_id, contact_id=current.contact_id)
        actions: list[Any] = [
            GrantItem.status.set(new.status.value),
            GrantItem.updated_at.set(new.updated_at),
            GrantItem.error.set(asdict(new.error)) if new.error else GrantItem.error.remove(),
            GrantItem.account_created.set(new.account_created),
            GrantItem.welcome_owed.set(True)
            if new.welcome_owed
            else GrantItem.welcome_owed.remove(),
        ]
        if new.lifecycle_id is not None:
            actions.append(GrantItem.lifecycle_id.set(new.lifecycle_id))
        if new.jira_account_id is not None:
            actions.append(GrantItem.jira_account_id.set(new.jira_account_id))
        if new.status in _REMOVING:
            actions.append(GrantItem.expiry_bucket.remove())
        condition = (GrantItem.status == current.status.value) & _same_run(current)
        if expiry_unchanged:
            condition &= _same_expiry(current)
        self._ops.append(lambda t: t.update(item, actions=actions, condition=condition))

    def change_expiry(self, current: Grant, expires_at: str | None, updated_at: str) -> None:
        item = GrantItem(project_id=current.project_id, contact_id=current.contact_id)
        actions: list[Any] = [
            GrantItem.updated_at.set(updated_at),
            GrantItem.expiry_reminded_for.remove(),
        ]
        if expires_at is None:
            actions += [GrantItem.expires_at.remove(), GrantItem.expiry_bucket.remove()]
        else:
            actions += [
                GrantItem.expires_at.set(expires_at),
                GrantItem.expiry_bucket.set(EXPIRY_BUCKET),
            ]
        condition = (
            (GrantItem.status == current.status.value) & _same_run(current) & _same_expiry(current)
        )
        self._ops.append(lambda t: t.update(item, actions=actions, condition=condition))

    def mark_expiry_reminded(self, current: Grant) -> None:
        item = GrantItem(project_id=current.project_id, contact_id=current.contact_id)
        condition = GrantItem.project_id.exists() & _same_expiry(current)
        action = GrantItem.expiry_reminded_for.set(str(current.expires_at))
        self._ops.append(lambda t: t.update(item, actions=[action], condition=condition))

    def note_account_created(self, current: Grant) -> None:
        item = GrantItem(project_id=current.project_id, contact_id=current.contact_id)
        condition = (GrantItem.status == current.status.value) & _same_run(current)
        action = GrantItem.account_created.set(True)
        self._ops.append(lambda t: t.update(item, actions=[action], condition=condition))

    def delete_grant(self, current: Grant) -> None:
        item = GrantItem(project_id=current.project_id, contact_id=current.contact_id)
        condition = (GrantItem.status == GrantStatus.DELETION_PENDING.value) & _same_run(current)
        self._ops.append(lambda t: t.delete(item, condition=condition))

    def claim_password_reset(self, current: Grant, at: str, *, previous_before: str) -> None:
        item = GrantItem(project_id=current.project_id, contact_id=current.contact_id)
        last = GrantItem.reset_sent_at
        condition = (GrantItem.status == GrantStatus.ACTIVATED.value) & (
            last.does_not_exist() | (last < previous_before)
        )
        self._ops.append(lambda t: t.update(item, actions=[last.set(at)], condition=condition))

    def release_password_reset(self, current: Grant, at: str) -> None:
        item = GrantItem(project_id=current.project_id, contact_id=current.contact_id)
        last = GrantItem.reset_sent_at
        self._ops.append(lambda t: t.update(item, actions=[last.remove()], condition=last == at))

    def clear_welcome_owed(self, current: Grant) -> None:
        item = GrantItem(project_id=current.project_id, contact_id=current.contact_id)
        condition = (GrantItem.status == GrantStatus.ACTIVATED.value) & _same_run(current)
        action = GrantItem.welcome_owed.remove()
        self._ops.append(lambda t: t.update(item, actions=[action], condition=condition))

    def record_last_run(self, grant: Grant, ended_at: str) -> None:
        item = ContactItem(contact_id=_last_run_key(grant.project_id, grant.contact_id))
        actions: list[Any] = [
            ContactItem.claimed_by.set(str(grant.lifecycle_id)),
            ContactItem.name.set(ended_at),
        ]
        self._ops.append(lambda t: t.update(item, actions=actions))

    def reference(self, grant: Grant, kind: ReferenceKind, *, add: bool) -> None:
        key = _reference_key(grant, kind)
        if key is None:
            return
        item = ContactItem(contact_id=key)
        projects = {grant.project_id}
        action = (
            ContactItem.projects.add(projects) if add else ContactItem.projects.delete(projects)
        )
        self._ops.append(lambda t: t.update(item, actions=[action]))

    def open_review(self, review: Review) -> None:
        pk = _project_pk(review.project_id)
        header = GovernanceItem(
            pk=pk,
            sk=_review_sk(review.review_id),
            project_id=review.project_id,
            record_id=review.review_id,
            status="open",
            opened_by=review.opened_by,
            opened_at=review.opened_at,
            due_at=review.due_at,
            due_bucket=REVIEW_DUE_BUCKET,
        )
        lock = GovernanceItem(pk=pk, sk=_OPEN_REVIEW, record_id=review.review_id)
        new = GovernanceItem.sk.does_not_exist()
        self._ops.append(lambda t: t.save(header, condition=new))
        self._ops.append(lambda t: t.save(lock, condition=new))
        # A review lists every activated grant: more than a transaction's 100 items. Its items
        # are batch-written before the transaction that makes the review exist (they are read
        # only through it); a review that lost to an open one leaves them unread under its id.
        for reviewed in review.items:
            row = GovernanceItem(
                pk=pk,
                sk=_review_item_sk(review.review_id, reviewed.contact_id),
                record_id=review.review_id,
                contact_id=reviewed.contact_id,
                email=reviewed.email,
                name=reviewed.name,
                lifecycle_id=reviewed.lifecycle_id,
                granted_by_company_id=reviewed.granted_by_company_id,
            )
            self._before.append(row)

    def decide_review_item(self, review: Review, item: ReviewItem) -> None:
        pk = _project_pk(review.project_id)
        header_sk = _review_sk(review.review_id)
        row = GovernanceItem(pk=pk, sk=_review_item_sk(review.review_id, item.contact_id))
        actions: list[Any] = [
            GovernanceItem.decision.set(str(item.decision)),
            GovernanceItem.decided_by.set(str(item.decided_by)),
            GovernanceItem.decided_at.set(str(item.decided_at)),
        ]
        undecided = GovernanceItem.sk.exists() & GovernanceItem.decision.does_not_exist()
        is_open = GovernanceItem.status == "open"
        self._ops.append(
            lambda t: t.condition_check(GovernanceItem, pk, header_sk, condition=is_open)
        )
        self._ops.append(lambda t: t.update(row, actions=actions, condition=undecided))

    def close_review(self, review: Review) -> None:
        pk = _project_pk(review.project_id)
        header = GovernanceItem(pk=pk, sk=_review_sk(review.review_id))
        actions: list[Any] = [
            GovernanceItem.status.set("closed"),
            GovernanceItem.closed_at.set(str(review.closed_at)),
            GovernanceItem.due_bucket.remove(),
        ]
        lock = GovernanceItem(pk=pk, sk=_OPEN_REVIEW)
        self._ops.append(
            lambda t: t.update(header, actions=actions, condition=GovernanceItem.status == "open")
        )
        self._ops.append(
            lambda t: t.delete(lock, condition=GovernanceItem.record_id == review.review_id)
        )

    def create_access_request(self, request: AccessRequest) -> None:
        pk = _project_pk(request.project_id)
        row = GovernanceItem(
            pk=pk,
            sk=_request_sk(request.request_id),
            project_id=request.project_id,
            record_id=request.request_id,
            contact_id=request.contact_id,
            email=request.email,
            name=request.name,
            company_id=request.company_id,
            reason=request.reason,
            status="pending",
            requested_at=request.requested_at,
            due_at=request.expires_at,
            due_bucket=REQUEST_DUE_BUCKET,
            pending_project=request.project_id,
        )
        lock = GovernanceItem(
            pk=pk, sk=_pending_request_sk(request.contact_id), record_id=request.request_id
        )
        new = GovernanceItem.sk.does_not_exist()
        self._ops.append(lambda t: t.save(row, condition=new))
        self._ops.append(lambda t: t.save(lock, condition=new))

    def decide_access_request(self, current: AccessRequest, decided: AccessRequest) -> None:
        pk = _project_pk(current.project_id)
        row = GovernanceItem(pk=pk, sk=_request_sk(current.request_id))
        actions: list[Any] = [
            GovernanceItem.status.set(decided.status),
            GovernanceItem.due_bucket.remove(),
            GovernanceItem.pending_project.remove(),
        ]
        if decided.decided_by is not None:
            actions.append(GovernanceItem.decided_by.set(decided.decided_by))
        if decided.decided_at is not None:
            actions.append(GovernanceItem.decided_at.set(decided.decided_at))
        if decided.grant_expires_at is not None:
            actions.append(GovernanceItem.grant_expires_at.set(decided.grant_expires_at))
        lock = GovernanceItem(pk=pk, sk=_pending_request_sk(current.contact_id))
        pending = GovernanceItem.status == "pending"
        ours = GovernanceItem.record_id == current.request_id
        self._ops.append(lambda t: t.update(row, actions=actions, condition=pending))
        self._ops.append(lambda t: t.delete(lock, condition=ours))

    def create_scim_token(self, token: ScimToken) -> None:
        row = GovernanceItem(
            pk=_company_pk(token.company_id),
            sk=_scim_token_sk(token.token_id),
            record_id=token.token_id,
            company_id=token.company_id,
            token_hash=token.token_hash,
            created_at=token.created_at,
            created_by=token.created_by,
        )
        lookup = GovernanceItem(
            pk=f"{_SCIM_TOKEN}#{token.token_hash}",
            sk=_SCIM_TOKEN,
            record_id=token.token_id,
            company_id=token.company_id,
            created_at=token.created_at,
            created_by=token.created_by,
        )
        new = GovernanceItem.pk.does_not_exist()
        self._ops.append(lambda t: t.save(row, condition=new))
        self._ops.append(lambda t: t.save(lookup, condition=new))

    def revoke_scim_token(self, token: ScimToken) -> None:
        row = GovernanceItem(pk=_company_pk(token.company_id), sk=_scim_token_sk(token.token_id))
        actions: list[Any] = [
            GovernanceItem.revoked_at.set(str(token.revoked_at)),
            GovernanceItem.revoked_by.set(str(token.revoked_by)),
        ]
        live = GovernanceItem.pk.exists() & GovernanceItem.revoked_at.does_not_exist()
        lookup = GovernanceItem(pk=f"{_SCIM_TOKEN}#{token.token_hash}", sk=_SCIM_TOKEN)
        self._ops.append(lambda t: t.update(row, actions=actions, condition=live))
        self._ops.append(lambda t: t.delete(lookup))

    def update_contact_profile(self, current: Contact, new: Contact) -> None:
        item = ContactItem(contact_id=current.contact_id)
        actions: list[Any] = [
            ContactItem.email.set(new.email),
            ContactItem.name.set(new.name),
            ContactItem.external_id.set(new.external_id)
            if new.external_id is not None
            else ContactItem.external_id.remove(),
            ContactItem.scim_deleted.set(True)
            if new.scim_deleted
            else ContactItem.scim_deleted.remove(),
        ]
        same = ContactItem.contact_id.exists() & (ContactItem.email == current.email)
        self._ops.append(lambda t: t.update(item, actions=actions, condition=same))
        if new.email != current.email:
            claim = ContactItem(contact_id=_claim_key(new.email), claimed_by=new.contact_id)
            free = ContactItem.contact_id.does_not_exist()
            old = ContactItem(contact_id=_claim_key(current.email))
            self._ops.append(lambda t: t.save(claim, condition=free))
            self._ops.append(lambda t: t.delete(old))

    def append(self, entry: ActivityEntry) -> None:
        item = _activity_item(entry)
        self._ops.append(lambda t: t.save(item, condition=ActivityItem.id.does_not_exist()))
        self._entries.append(entry)

    def commit(self) -> None:
        """Write everything or nothing. A conflict or throttle leaves the writes queued, so the
        caller may commit again; a failed condition means this unit of work is stale."""
        if not self._ops:
            return
        if self._before:
            with GovernanceItem.batch_write() as batch:
                for row in self._before:
                    batch.save(row)
        try:
            with TransactWrite(connection=self._connection) as transaction:
                for op in self._ops:
                    op(transaction)
        except TransactWriteError as exc:
            self._take_back_before()
            reasons = {r.code for r in (exc.cancellation_reasons or []) if r and r.code}
            reasons.add(exc.cause_response_code or "")
            _raise_translated(exc, reasons)
        self._before.clear()
        for entry in self._entries:
            _log_recorded(entry)
        self._ops.clear()
        self._entries.clear()

    def _take_back_before(self) -> None:
        """The transaction did not commit: delete the items batch-written ahead of it (nothing
        reads them, but a refused request changes nothing), and write them again on a retry."""
        if not self._before:
            return
        with GovernanceItem.batch_write() as batch:
            for row in self._before:
                batch.delete(row)


# --- store ----------------------------------------------------------------------------------


class DynamoStore:
    """Reads and single writes; multi-item writes go through `unit_of_work()`."""

    def __init__(self) -> None:
        self._connection = Connection(region=get_settings().region)

    def unit_of_work(self) -> DynamoUnitOfWork:
        return DynamoUnitOfWork(self._connection)

    def get_project(self, project_id: str) -> Project | None:
        if project_id.startswith(_ORGANIZATION_CLAIM):
            return None
        return _first(ProjectItem, project_id, convert=_project)

    def read_for_grant(
        self, project_id: str, *, contact_id: str | None = None, email: str | None = None
    ) -> GrantReads:
        projects, contacts, grants = (
            ProjectItem.Meta.table_name,
            ContactItem.Meta.table_name,
            GrantItem.Meta.table_name,
        )
        wanted: dict[str, list[dict[str, Any]]] = {projects: [{"project_id": {"S": project_id}}]}
        contact_keys = []
        if contact_id is not None:
            contact_keys.append({"contact_id": {"S": contact_id}})
            contact_keys.append({"contact_id": {"S": _last_run_key(project_id, contact_id)}})
            wanted[grants] = [{"project_id": {"S": project_id}, "contact_id": {"S": contact_id}}]
        if email is not None:
            contact_keys.append({"contact_id": {"S": _claim_key(email)}})
        if contact_keys:
            wanted[contacts] = contact_keys
        found = _batch_get(self._connection, wanted)
        project = next((_project(ProjectItem.from_raw_data(i)) for i in found[projects]), None)
        reads = GrantReads(project=project)
        for raw in found[contacts]:
            item = ContactItem.from_raw_data(raw)
            if item.contact_id.startswith(_LAST_RUN):
                run = LastRun(lifecycle_id=str(item.claimed_by), ended_at=str(item.name))
                reads = replace(reads, last_run=run)
            elif item.claimed_by is not None:
                reads = replace(reads, email_owner=item.claimed_by)
            else:
                reads = replace(reads, contact=_contact(item))
        for raw in found[grants]:
            reads = replace(reads, grant=_grant(GrantItem.from_raw_data(raw)))
        return reads

    def organization_owner(self, organization_id: str) -> str | None:
        claim = _first(
            OrganizationClaimItem, _organization_key(organization_id), convert=lambda item: item
        )
        return claim.claimed_by if claim else None

    def get_contact(self, contact_id: str) -> Contact | None:
        contact = _first(ContactItem, contact_id, convert=_contact)
        # Claims and reference sets share the table under `kind#...` keys; contact ids have no `#`.
        return contact if contact and "#" not in contact.contact_id else None

    def find_contact_by_email(self, email: str) -> Contact | None:
        claim = _first(ContactItem, _claim_key(email), convert=lambda item: item)
        return self.get_contact(claim.claimed_by) if claim and claim.claimed_by else None

    def company_console_users(self, company_id: str) -> list[Contact]:
        items = ContactItem.company_index.query(company_id)
        contacts = (_contact(item) for item in items)
        return [c for c in contacts if c.console_user and c.status is ContactStatus.ACTIVE]

    def company_contacts(self, company_id: str) -> list[Contact]:
        return [_contact(item) for item in ContactItem.company_index.query(company_id)]

    def scim_tokens_of_company(self, company_id: str) -> list[ScimToken]:
        items = GovernanceItem.query(
            _company_pk(company_id),
            GovernanceItem.sk.startswith(f"{_SCIM_TOKEN}#"),
            consistent_read=True,
        )
        return [_scim_token(item) for item in items]

    def get_scim_token(self, company_id: str, token_id: str) -> ScimToken | None:
        try:
            item = GovernanceItem.get(
                _company_pk(company_id), _scim_token_sk(token_id), consistent_read=True
            )
        except GovernanceItem.DoesNotExist:
            return None
        return _scim_token(item)

    def scim_token_by_hash(self, token_hash: str) -> ScimToken | None:
        try:
            item = GovernanceItem.get(
                f"{_SCIM_TOKEN}#{token_hash}", _SCIM_TOKEN, consistent_read=True
            )
        except GovernanceItem.DoesNotExist:
            return None
        return replace(_scim_token(item), token_hash=token_hash)

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
        items = ProjectItem.scan(filter_condition=ProjectItem.name.exists())  # not the claims
        return [_project(item) for item in items]

    def activity(
        self,
        project_id: str,
        contact_id: str | None,
        limit: int,
        cursor: str | None,
        where: ActivityFilter = EVERY_ENTRY,
    ) -> Page[ActivityEntry]:
        key_of: dict[str, str | None] = {"project_id": project_id, "id": None}
        if contact_id:
            key_of["project_contact"] = f"{project_id}#{contact_id}"
        start = _decode_cursor(cursor, key_of)
        # An action filter drops items after DynamoDB reads them: read bigger pages so one
        # request of the client is a few Queries, not one per `limit` entries.
        page_size = limit if not where.actions else max(limit, EXPORT_PAGE_SIZE)
        results = _activity_query(project_id, contact_id, where, limit, page_size, start)
        return _page(results, _activity)

    def all_activity(
        self, project_id: str, contact_id: str | None, where: ActivityFilter
    ) -> Iterator[ActivityEntry]:
        for item in _activity_query(project_id, contact_id, where, None, EXPORT_PAGE_SIZE, None):
            yield _activity(item)

    def append_activity(self, entry: ActivityEntry) -> None:
        try:
            _activity_item(entry).save(condition=ActivityItem.id.does_not_exist())
        except PutError as exc:
            _raise_translated(exc, {exc.cause_response_code or ""})
        _log_recorded(entry)

    def referencing_projects(self, contact_id: str, kind: ReferenceKind, key: str) -> set[str]:
        item = _first(ContactItem, f"{kind}#{contact_id}#{key}", convert=lambda i: i)
        return set(item.projects or ()) if item else set()

    def get_review(self, project_id: str, review_id: str) -> Review | None:
        pk = _project_pk(project_id)
        try:
            header = GovernanceItem.get(pk, _review_sk(review_id), consistent_read=True)
        except GovernanceItem.DoesNotExist:
            return None
        rows = GovernanceItem.query(
            pk,
            GovernanceItem.sk.startswith(_review_item_sk(review_id, "")),
            consistent_read=True,
        )
        return _review(header, [_review_item(row) for row in rows])

    def reviews_of_project(self, project_id: str) -> list[Review]:
        rows = GovernanceItem.query(
            _project_pk(project_id),
            GovernanceItem.sk.startswith(_review_sk("")),
            scan_index_forward=False,
        )
        return [_review(row) for row in rows]

    def reviews_due_by(self, until: str) -> list[Review]:
        """A query of the sparse due index: open reviews due by `until`, soonest first."""
        rows = GovernanceItem.due_index.query(REVIEW_DUE_BUCKET, GovernanceItem.due_at <= until)
        return [_review(row) for row in rows]

    def get_access_request(self, project_id: str, request_id: str) -> AccessRequest | None:
        try:
            row = GovernanceItem.get(
                _project_pk(project_id), _request_sk(request_id), consistent_read=True
            )
        except GovernanceItem.DoesNotExist:
            return None
        return _access_request(row)

    def access_requests_of_project(
        self, project_id: str, status: str | None = None
    ) -> list[AccessRequest]:
        if status == "pending":
            rows = GovernanceItem.pending_index.query(project_id, scan_index_forward=False)
        else:
            rows = GovernanceItem.query(
                _project_pk(project_id),
                GovernanceItem.sk.startswith(_request_sk("")),
                filter_condition=(GovernanceItem.status == status) if status else None,
                scan_index_forward=False,
            )
        return [_access_request(row) for row in rows]

    def access_requests_due_by(self, until: str) -> list[AccessRequest]:
        """A query of the sparse due index: pending requests expiring by `until`."""
        rows = GovernanceItem.due_index.query(REQUEST_DUE_BUCKET, GovernanceItem.due_at <= until)
        return [_access_request(row) for row in rows]

    def projects_owing_support_email(self) -> list[Project]:
        owed = ProjectItem.support_access["notified"] == False  # noqa: E712 - a condition
        return [_project(item) for item in ProjectItem.scan(owed)]

    def grants_owing_welcome(self) -> list[Grant]:
        return [_grant(item) for item in GrantItem.scan(GrantItem.welcome_owed == True)]  # noqa: E712

    def grants_expiring_by(self, until: str) -> list[Grant]:
        """A query of the sparse expiry index: grants expiring by `until`, soonest first."""
        items = GrantItem.expiry_index.query(EXPIRY_BUCKET, GrantItem.expires_at <= until)
        return [_grant(item) for item in items]

    def pending_grants(self) -> list[Grant]:
        """Every grant with a lifecycle under way (a scan: for the stalled-grant sweeper only)."""
        wanted = [s.value for s in PENDING]
        return [_grant(item) for item in GrantItem.scan(GrantItem.status.is_in(*wanted))]


def _activity_query(
    project_id: str,
    contact_id: str | None,
    where: ActivityFilter,
    limit: int | None,
    page_size: int,
    start: dict[str, Any] | None,
) -> ResultIterator[ActivityItem]:
    """A Query of one project's log (or one contact's, on the index), newest first; the time
    window is a key condition on the ULID ids, the actions a filter. Never a Scan."""
    low, high = ulid_range(where.since, where.until)
    filtered = ActivityItem.action.is_in(*sorted(where.actions)) if where.actions else None
    if contact_id:
        return ActivityItem.contact_index.query(
            f"{project_id}#{contact_id}",
            range_key_condition=ActivityItem.id.between(low, high),
            filter_condition=filtered,
            scan_index_forward=False,
            limit=limit,
            page_size=page_size,
            last_evaluated_key=start,
        )
    return ActivityItem.query(
        project_id,
        range_key_condition=ActivityItem.id.between(low, high),
        filter_condition=filtered,
        scan_index_forward=False,
        limit=limit,
        page_size=page_size,
        last_evaluated_key=start,
    )


def _active_contact() -> Condition:
    """The contact exists and is not offboarded (no stored status: written before it was)."""
    status = ContactItem.status
    active: Condition = ContactItem.contact_id.exists() & (
        status.does_not_exist() | (status == ContactStatus.ACTIVE.value)
    )
    return active


def _same_run(grant: Grant) -> Condition:
    """The item is still in the lifecycle run `grant` was read in."""
    if grant.lifecycle_id is None:
        return GrantItem.lifecycle_id.does_not_exist()
    return GrantItem.lifecycle_id == grant.lifecycle_id


_LAST_RUN = "run#"


def _last_run_key(project_id: str, contact_id: str) -> str:
    """A removed grant's last run, kept in the contacts table (with the other `kind#` items:
    it is read in the same batch as the contact), `claimed_by` = lifecycle, `name` = when."""
    return f"{_LAST_RUN}{contact_id}#{project_id}"


def _reference_key(grant: Grant, kind: ReferenceKind) -> str | None:
    key = grant.service_desk_id if kind == "desk" else grant.granted_by_company_id
    return f"{kind}#{grant.contact_id}#{key}" if key else None


# DynamoDB's words for "another request holds these items" and "slow down".
_CONFLICTS = {"TransactionConflict", "TransactionInProgress"}
_THROTTLES = {
    "ThrottlingError",
    "ProvisionedThroughputExceeded",
    "RequestLimitExceeded",
    "Throttling",
}
THROTTLE_RETRY_AFTER_SECONDS = 2


def _raise_translated(exc: Exception, codes: set[str]) -> NoReturn:
    """Raise a cancelled or refused write as the service's error (`codes`: DynamoDB's
    cancellation reasons and error code); anything else unchanged."""
    reasons = {code.removesuffix("Exception") for code in codes}
    if "ConditionalCheckFailed" in reasons:
        raise StaleState("the item changed while we were writing it") from exc
    if reasons & _CONFLICTS:
        raise WriteConflict("another transaction wrote the same items at the same moment") from exc
    if reasons & _THROTTLES:
        raise StoreThrottled(
            "the database is throttling requests; retry shortly",
            retry_after=THROTTLE_RETRY_AFTER_SECONDS,
        ) from exc
    raise exc


def _batch_get(
    connection: Connection, wanted: dict[str, list[dict[str, Any]]]
) -> dict[str, list[dict[str, Any]]]:
    """Strongly consistent BatchGetItem over several tables, following `UnprocessedKeys`.

    DynamoDB hands back keys it could not read under throttling: they are asked for again after
    an exponential backoff, a few times, then the request is throttled (503 + `Retry-After`)
    rather than spinning for the function's whole timeout.
    """
    found: dict[str, list[dict[str, Any]]] = defaultdict(list)
    request = {t: {"Keys": keys, "ConsistentRead": True} for t, keys in wanted.items()}
    for attempt in range(BATCH_GET_ATTEMPTS):
        if attempt:
            time.sleep(BATCH_GET_BACKOFF_SECONDS * 2 ** (attempt - 1))
        try:
            answer = connection.client.batch_get_item(RequestItems=request)
        except ClientError as exc:
            _raise_translated(exc, {exc.response["Error"]["Code"]})
        for table, items in answer.get("Responses", {}).items():
            found[table].extend(items)
        request = answer.get("UnprocessedKeys") or {}
        if not request:
            return found
    raise StoreThrottled(
        "the database is throttling reads; retry shortly",
        retry_after=THROTTLE_RETRY_AFTER_SECONDS,
    )


BATCH_GET_ATTEMPTS = 5
BATCH_GET_BACKOFF_SECONDS = 0.05


def _first(model: type[M], key: str, convert: Callable[[M], X]) -> X | None:
    try:
        return convert(model.get(key, consistent_read=True))
    except model.DoesNotExist:
        return None
