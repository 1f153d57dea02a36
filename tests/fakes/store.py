"""`InMemoryStore`: the domain's `Store` and `UnitOfWork` with `DynamoStore`'s semantics, in memory.

Mirrors `chalicelib.store.repository`: every write of a unit of work is conditional exactly like
its DynamoDB counterpart (a grant transition only from the status and lifecycle run it read,
email claims keeping contact emails unique, organization claims keeping one organization per
project, append-only activity), and a commit first checks every condition, then applies every
write, or raises `StaleState` and applies nothing. `fail_next` makes writes fail the way real
DynamoDB does under contention (`TransactionConflict`, throttling), which the moto-backed local
stack never does. Reads hand out copies, so a caller mutating what it read never changes the
store behind the store's back.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import threading
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, replace
from typing import Literal, TypeVar

from chalicelib.domain.grant_lifecycle import PENDING
from chalicelib.domain.ids import ulid_range
from chalicelib.domain.models import (
    EVERY_ENTRY,
    AccessRequest,
    ActivityEntry,
    ActivityFilter,
    Contact,
    ContactStatus,
    Grant,
    GrantStatus,
    Project,
    Review,
    ReviewItem,
    SupportAccess,
)
from chalicelib.domain.ports import GrantReads, LastRun, Page, ReferenceKind
from chalicelib.errors import MalformedRequest, StaleState, StoreThrottled, WriteConflict

T = TypeVar("T")


@dataclass(frozen=True)
class StoreState:
    """Everything the store holds, as plain values: equal states mean nothing was written."""

    projects: dict[str, Project]
    contacts: dict[str, Contact]
    email_claims: dict[str, str]
    organization_claims: dict[str, str]
    grants: dict[tuple[str, str], Grant]
    activity: dict[tuple[str, str], ActivityEntry]


@dataclass(frozen=True)
class _Write:
    """One write of a transaction: the item it touches, its condition and its effect."""

    item: Hashable
    condition: Callable[[], bool]
    apply: Callable[[], object]


def _always() -> bool:
    return True


def _claim_key(email: str) -> str:
    return email.lower()


def _encode_cursor(key: dict[str, str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode()


def _decode_cursor(cursor: str | None, field: str) -> str | None:
    """The key a cursor resumes after; MalformedRequest for one this store did not issue."""
    if not cursor:
        return None
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, binascii.Error) as exc:
        raise MalformedRequest("cursor is not one this API returned") from exc
    if not isinstance(key, dict) or not isinstance(key.get(field), str):
        raise MalformedRequest("cursor is not one this API returned")
    return str(key[field])


def _page(items: list[T], limit: int, cursor_of: Callable[[T], dict[str, str]]) -> Page[T]:
    """The first `limit` items, with a cursor only when more remain."""
    shown = items[:limit]
    more = len(items) > limit
    return Page(items=shown, next_cursor=_encode_cursor(cursor_of(shown[-1])) if more else None)


class InMemoryUnitOfWork:
    """Collects conditional writes and commits them atomically against an `InMemoryStore`."""

    def __init__(self, store: InMemoryStore) -> None:
        self._store = store
        self._writes: list[_Write] = []

    def create_contact(self, contact: Contact) -> None:
        new = copy.deepcopy(contact)
        claim = _claim_key(contact.email)
        contacts, claims = self._store._contacts, self._store._email_claims
        self._add(
            ("contact", new.contact_id),
            lambda: new.contact_id not in contacts,
            lambda: contacts.__setitem__(new.contact_id, new),
        )
        self._add(
            ("claim", claim),
            lambda: claim not in claims,
            lambda: claims.__setitem__(claim, new.contact_id),
        )

    def put_contact(self, contact: Contact, previous_email: str | None) -> None:
        """Directory sync: upsert, moving the email claim when the address changed."""
        new = copy.deepcopy(contact)
        contacts, claims = self._store._contacts, self._store._email_claims

        def unchanged() -> bool:  # as DynamoStore: conditional on the status the sync read
            current = contacts.get(new.contact_id)
            return current is None or current.status is new.status

        self._add(
            ("contact", new.contact_id),
            unchanged,
            lambda: contacts.__setitem__(new.contact_id, new),
        )
        if previous_email != contact.email:
            claim = _claim_key(contact.email)
            self._add(
                ("claim", claim),
                lambda: claims.get(claim, new.contact_id) == new.contact_id,
                lambda: claims.__setitem__(claim, new.contact_id),
            )
            if previous_email:
                old = _claim_key(previous_email)
                self._add(("claim", old), _always, lambda: claims.pop(old, None))

    def put_project(
        self,
        project: Project,
        *,
        expected_organization_id: str | None = None,
        released_organization_id: str | None = None,
    ) -> None:
        new = copy.deepcopy(project)
        pid, organization = new.project_id, new.organization_id
        projects, claims = self._store._projects, self._store._organization_claims
        linked = {organization, expected_organization_id}

        def unchanged() -> bool:
            current = projects.get(pid)
            return current is None or (
                current.organization_id in linked
                and current.support_access.changed_at == new.support_access.changed_at
            )

        self._add(("project", pid), unchanged, lambda: projects.__setitem__(pid, new))
        self._add(
            ("organization", organization),
            lambda: claims.get(organization, pid) == pid,
            lambda: claims.__setitem__(organization, pid),
        )
        released = released_organization_id
        if released and released != organization:
            self._add(
                ("organization", released),
                lambda: claims.get(released, pid) == pid,
                lambda: claims.pop(released, None),
            )

    def change_support_access(
        self, project_id: str, access: SupportAccess, *, expected: SupportAccess
    ) -> None:
        projects = self._store._projects
        new = copy.deepcopy(access)

        def unchanged() -> bool:
            project = projects.get(project_id)
            return project is not None and project.support_access.changed_at == expected.changed_at

        def apply() -> None:
            projects[project_id] = replace(projects[project_id], support_access=new)

        self._add(("project", project_id), unchanged, apply)

    def mark_support_access_notified(self, project_id: str, changed_at: str) -> None:
        projects = self._store._projects

        def same_change() -> bool:
            project = projects.get(project_id)
            return project is not None and project.support_access.changed_at == changed_at

        def apply() -> None:
            project = projects[project_id]
            notified = replace(project.support_access, notified=True)
            projects[project_id] = replace(project, support_access=notified)

        self._add(("project", project_id), same_change, apply)

    def change_contact_status(self, contact_id: str, status: ContactStatus) -> None:
        contacts = self._store._contacts

        def other() -> bool:
            contact = contacts.get(contact_id)
            return contact is not None and contact.status is not status

        def apply() -> None:
            contacts[contact_id] = replace(contacts[contact_id], status=status)

        self._add(("contact", contact_id), other, apply)

    def change_contact_company(
        self, contact_id: str, company_id: str | None, expected: str | None
    ) -> None:
        contacts = self._store._contacts

        def same() -> bool:
            contact = contacts.get(contact_id)
            return contact is not None and contact.company_id == expected

        def apply() -> None:
            contacts[contact_id] = replace(contacts[contact_id], company_id=company_id)

        self._add(("contact", contact_id), same, apply)

    def require_active_contact(self, contact_id: str) -> None:
        self._add(("contact", contact_id), lambda: self._store._active(contact_id), _always)

    def link_external(self, contact_id: str, company_id: str) -> None:
        contacts = self._store._contacts

        def unlinked() -> bool:
            contact = contacts.get(contact_id)
            return (
                self._store._active(contact_id)
                and contact is not None
                and company_id not in contact.external_for
            )

        def apply() -> None:
            contact = contacts[contact_id]
            contacts[contact_id] = replace(
                contact, external_for=[*contact.external_for, company_id]
            )

        self._add(("contact", contact_id), unlinked, apply)

    def unlink_external(self, contact_id: str, company_id: str) -> None:
        contacts = self._store._contacts

        references = self._store._references

        def linked() -> bool:
            contact = contacts.get(contact_id)
            return contact is not None and company_id in contact.external_for

        def apply() -> None:
            contact = contacts[contact_id]
            rest = [c for c in contact.external_for if c != company_id]
            contacts[contact_id] = replace(contact, external_for=rest)

        self._add(("contact", contact_id), linked, apply)
        name = ("company", contact_id, company_id)
        self._add(("reference", name), lambda: not references.get(name), _always)

    def require_external_link(self, contact_id: str, company_id: str) -> None:
        contacts = self._store._contacts

        def linked() -> bool:
            contact = contacts.get(contact_id)
            return (
                self._store._active(contact_id)
                and contact is not None
                and company_id in contact.external_for
            )

        self._add(("contact", contact_id), linked, _always)

    def create_grant(self, grant: Grant) -> None:
        new = copy.deepcopy(grant)
        key = (grant.project_id, grant.contact_id)
        grants = self._store._grants
        self._add(("grant", key), lambda: key not in grants, lambda: grants.__setitem__(key, new))

    def transition_grant(
        self, current: Grant, new: Grant, *, expiry_unchanged: bool = False
    ) -> None:
        written = copy.deepcopy(new)
        self._update_in_run(
            current,
            current.status,
            also=lambda stored: not expiry_unchanged or stored.expires_at == current.expires_at,
            change=lambda stored: replace(
                stored,
                status=written.status,
                updated_at=written.updated_at,
                error=written.error,
                account_created=written.account_created,
                welcome_owed=written.welcome_owed,
                lifecycle_id=written.lifecycle_id or stored.lifecycle_id,
                jira_account_id=written.jira_account_id or stored.jira_account_id,
            ),
        )

    def change_expiry(self, current: Grant, expires_at: str | None, updated_at: str) -> None:
        key = (current.project_id, current.contact_id)
        grants = self._store._grants

        def unchanged() -> bool:
            stored = grants.get(key)
            return (
                stored is not None
                and stored.status is current.status
                and stored.lifecycle_id == current.lifecycle_id
                and stored.expires_at == current.expires_at
            )

        def apply() -> None:
            grants[key] = replace(
                grants[key],
                expires_at=expires_at,
                updated_at=updated_at,
                expiry_reminded_for=None,
            )

        self._add(("grant", key), unchanged, apply)

    def mark_expiry_reminded(self, current: Grant) -> None:
        key = (current.project_id, current.contact_id)
        grants = self._store._grants

        def same_expiry() -> bool:
            stored = grants.get(key)
            return stored is not None and stored.expires_at == current.expires_at

        def apply() -> None:
            grants[key] = replace(grants[key], expiry_reminded_for=current.expires_at)

        self._add(("grant", key), same_expiry, apply)

    def note_account_created(self, current: Grant) -> None:
        self._update_in_run(
            current, current.status, lambda stored: replace(stored, account_created=True)
        )

    def delete_grant(self, current: Grant) -> None:
        key = (current.project_id, current.contact_id)
        grants = self._store._grants

        def removable() -> bool:
            stored = grants.get(key)
            return (
                stored is not None
                and stored.status is GrantStatus.DELETION_PENDING
                and stored.lifecycle_id == current.lifecycle_id
            )

        self._add(("grant", key), removable, lambda: grants.pop(key))

    def claim_password_reset(self, current: Grant, at: str, *, previous_before: str) -> None:
        key = (current.project_id, current.contact_id)
        grants = self._store._grants

        def due() -> bool:
            stored = grants.get(key)
            return (
                stored is not None
                and stored.status is GrantStatus.ACTIVATED
                and (stored.reset_sent_at is None or stored.reset_sent_at < previous_before)
            )

        def apply() -> None:
            grants[key] = replace(grants[key], reset_sent_at=at)

        self._add(("grant", key), due, apply)

    def release_password_reset(self, current: Grant, at: str) -> None:
        key = (current.project_id, current.contact_id)
        grants = self._store._grants

        def ours() -> bool:
            stored = grants.get(key)
            return stored is not None and stored.reset_sent_at == at

        def apply() -> None:
            grants[key] = replace(grants[key], reset_sent_at=None)

        self._add(("grant", key), ours, apply)

    def clear_welcome_owed(self, current: Grant) -> None:
        self._update_in_run(
            current, GrantStatus.ACTIVATED, lambda stored: replace(stored, welcome_owed=False)
        )

    def record_last_run(self, grant: Grant, ended_at: str) -> None:
        runs = self._store._last_runs
        key = (grant.project_id, grant.contact_id)
        run = LastRun(lifecycle_id=str(grant.lifecycle_id), ended_at=ended_at)
        self._add(("last-run", key), _always, lambda: runs.__setitem__(key, run))

    def reference(self, grant: Grant, kind: ReferenceKind, *, add: bool) -> None:
        key = grant.service_desk_id if kind == "desk" else grant.granted_by_company_id
        if not key:
            return
        sets = self._store._references
        name = (kind, grant.contact_id, key)

        def apply() -> None:
            projects = sets.setdefault(name, set())
            (projects.add if add else projects.discard)(grant.project_id)

        self._add(("reference", name), _always, apply)

    def open_review(self, review: Review) -> None:
        new = copy.deepcopy(review)
        key = (review.project_id, review.review_id)
        reviews, open_reviews = self._store._reviews, self._store._open_reviews
        self._add(
            ("review", key), lambda: key not in reviews, lambda: reviews.__setitem__(key, new)
        )
        self._add(
            ("open-review", review.project_id),
            lambda: review.project_id not in open_reviews,
            lambda: open_reviews.__setitem__(review.project_id, review.review_id),
        )

    def decide_review_item(self, review: Review, item: ReviewItem) -> None:
        key = (review.project_id, review.review_id)
        reviews = self._store._reviews
        decided = copy.deepcopy(item)

        def undecided() -> bool:
            stored = reviews.get(key)
            found = stored.item(item.contact_id) if stored else None
            return (
                stored is not None
                and stored.status == "open"
                and found is not None
                and (found.decision is None)
            )

        def apply() -> None:
            stored = reviews[key]
            items = [decided if i.contact_id == item.contact_id else i for i in stored.items]
            reviews[key] = replace(stored, items=items)

        self._add(("review-item", key, item.contact_id), undecided, apply)

    def close_review(self, review: Review) -> None:
        key = (review.project_id, review.review_id)
        reviews, open_reviews = self._store._reviews, self._store._open_reviews

        def still_open() -> bool:
            stored = reviews.get(key)
            return stored is not None and stored.status == "open"

        def apply() -> None:
            reviews[key] = replace(reviews[key], status="closed", closed_at=review.closed_at)
            if open_reviews.get(review.project_id) == review.review_id:
                del open_reviews[review.project_id]

        self._add(("review", key), still_open, apply)

    def create_access_request(self, request: AccessRequest) -> None:
        new = copy.deepcopy(request)
        key = (request.project_id, request.request_id)
        lock = (request.project_id, request.contact_id)
        requests, pending = self._store._requests, self._store._pending_requests
        self._add(
            ("request", key), lambda: key not in requests, lambda: requests.__setitem__(key, new)
        )
        self._add(
            ("pending-request", lock),
            lambda: lock not in pending,
            lambda: pending.__setitem__(lock, request.request_id),
        )

    def decide_access_request(self, current: AccessRequest, decided: AccessRequest) -> None:
        new = copy.deepcopy(decided)
        key = (current.project_id, current.request_id)
        lock = (current.project_id, current.contact_id)
        requests, pending = self._store._requests, self._store._pending_requests

        def still_pending() -> bool:
            stored = requests.get(key)
            return stored is not None and stored.status == "pending"

        def apply() -> None:
            requests[key] = new
            if pending.get(lock) == current.request_id:
                del pending[lock]

        self._add(("request", key), still_pending, apply)

    def append(self, entry: ActivityEntry) -> None:
        key = (entry.project_id, entry.id)
        activity = self._store._activity
        new = copy.deepcopy(entry)
        self._add(
            ("activity", key), lambda: key not in activity, lambda: activity.__setitem__(key, new)
        )

    def commit(self) -> None:
        """As DynamoDB: a conflict or throttle (see `InMemoryStore.fail_next`) writes nothing and
        leaves the writes queued for another commit; a failed condition discards them."""
        if not self._writes:
            return
        items = [w.item for w in self._writes]
        if len(set(items)) != len(items):
            # DynamoDB refuses (ValidationException) a transaction touching one item twice.
            raise ValueError(f"a transaction may write each item once: {items}")
        self._store._injected_failure()
        writes, self._writes = self._writes, []
        with self._store._lock:
            if not all(w.condition() for w in writes):
                raise StaleState("the item changed while we were writing it")
            for w in writes:
                w.apply()

    def _update_in_run(
        self,
        current: Grant,
        status: GrantStatus,
        change: Callable[[Grant], Grant],
        also: Callable[[Grant], bool] = lambda _: True,
    ) -> None:
        """A write of the grant, conditional on it still being `status` in `current`'s run (and
        on `also` of the stored grant)."""
        key = (current.project_id, current.contact_id)
        grants = self._store._grants

        def same_run() -> bool:
            stored = grants.get(key)
            return (
                stored is not None
                and stored.status is status
                and stored.lifecycle_id == current.lifecycle_id
                and also(stored)
            )

        self._add(("grant", key), same_run, lambda: grants.__setitem__(key, change(grants[key])))

    def _add(
        self, item: Hashable, condition: Callable[[], bool], apply: Callable[[], object]
    ) -> None:
        self._writes.append(_Write(item, condition, apply))


class InMemoryStore:
    """The tables as dicts behind one lock; see the module docstring for the semantics."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._projects: dict[str, Project] = {}
        self._contacts: dict[str, Contact] = {}
        self._email_claims: dict[str, str] = {}  # lower-case email → contact id
        self._organization_claims: dict[str, str] = {}  # JSM organization id → project id
        self._grants: dict[tuple[str, str], Grant] = {}
        self._activity: dict[tuple[str, str], ActivityEntry] = {}  # (project id, entry id)
        self._references: dict[tuple[str, str, str], set[str]] = {}  # (kind, contact, key)
        self._last_runs: dict[tuple[str, str], LastRun] = {}  # (project, contact)
        self._reviews: dict[tuple[str, str], Review] = {}  # (project, review id)
        self._open_reviews: dict[str, str] = {}  # project → its open review
        self._requests: dict[tuple[str, str], AccessRequest] = {}  # (project, request id)
        self._pending_requests: dict[tuple[str, str], str] = {}  # (project, contact) → request
        self._failures: list[str] = []

    def _active(self, contact_id: str) -> bool:
        contact = self._contacts.get(contact_id)
        return contact is not None and contact.status is ContactStatus.ACTIVE

    # --- failure injection --------------------------------------------------------------------

    def fail_next(self, *failures: Literal["conflict", "throttle"]) -> None:
        """Make the next writes fail as real DynamoDB does under contention, one per write."""
        self._failures.extend(failures)

    def _injected_failure(self) -> None:
        if not self._failures:
            return
        failure = self._failures.pop(0)
        if failure == "conflict":
            raise WriteConflict("injected TransactionConflict")
        raise StoreThrottled("injected throttling", retry_after=2)

    # --- test helpers -------------------------------------------------------------------------

    def seed(self, *records: Project | Contact | Grant) -> None:
        """Write projects, contacts (with their email claims) and grants as they are.

        Projects are written without organization claims, as projects linked before claims
        existed were: many tests share the builders' organization between projects.
        """
        uow = self.unit_of_work()
        for record in records:
            if isinstance(record, Project):
                with self._lock:
                    self._projects[record.project_id] = copy.deepcopy(record)
            elif isinstance(record, Contact):
                uow.create_contact(record)
            else:
                uow.create_grant(record)
        uow.commit()

    def snapshot(self) -> StoreState:
        with self._lock:
            return StoreState(
                projects=copy.deepcopy(self._projects),
                contacts=copy.deepcopy(self._contacts),
                email_claims=dict(self._email_claims),
                organization_claims=dict(self._organization_claims),
                grants=copy.deepcopy(self._grants),
                activity=copy.deepcopy(self._activity),
            )

    # --- Store --------------------------------------------------------------------------------

    def unit_of_work(self) -> InMemoryUnitOfWork:
        return InMemoryUnitOfWork(self)

    def get_project(self, project_id: str) -> Project | None:
        with self._lock:
            return copy.deepcopy(self._projects.get(project_id))

    def read_for_grant(
        self, project_id: str, *, contact_id: str | None = None, email: str | None = None
    ) -> GrantReads:
        with self._lock:
            return GrantReads(
                project=self.get_project(project_id),
                contact=self.get_contact(contact_id) if contact_id else None,
                grant=self.get_grant(project_id, contact_id) if contact_id else None,
                email_owner=self._email_claims.get(_claim_key(email)) if email else None,
                last_run=self._last_runs.get((project_id, contact_id)) if contact_id else None,
            )

    def organization_owner(self, organization_id: str) -> str | None:
        with self._lock:
            return self._organization_claims.get(organization_id)

    def get_contact(self, contact_id: str) -> Contact | None:
        with self._lock:
            return copy.deepcopy(self._contacts.get(contact_id))

    def find_contact_by_email(self, email: str) -> Contact | None:
        with self._lock:
            owner = self._email_claims.get(_claim_key(email))
            return copy.deepcopy(self._contacts.get(owner)) if owner else None

    def company_console_users(self, company_id: str) -> list[Contact]:
        with self._lock:
            return [
                copy.deepcopy(c)
                for c in self._contacts.values()
                if c.company_id == company_id
                and c.console_user
                and c.status is ContactStatus.ACTIVE
            ]

    def get_grant(self, project_id: str, contact_id: str) -> Grant | None:
        with self._lock:
            return copy.deepcopy(self._grants.get((project_id, contact_id)))

    def grants_of_project(self, project_id: str, limit: int, cursor: str | None) -> Page[Grant]:
        after = _decode_cursor(cursor, "contact_id")
        with self._lock:
            grants = sorted(
                (
                    g
                    for (p, c), g in self._grants.items()
                    if p == project_id and (after is None or c > after)
                ),
                key=lambda g: g.contact_id,
            )
            grants = copy.deepcopy(grants[: limit + 1])
        return _page(
            grants, limit, lambda g: {"project_id": g.project_id, "contact_id": g.contact_id}
        )

    def all_grants_of_project(self, project_id: str) -> list[Grant]:
        with self._lock:
            return sorted(
                (copy.deepcopy(g) for (p, _), g in self._grants.items() if p == project_id),
                key=lambda g: g.contact_id,
            )

    def all_projects(self) -> list[Project]:
        with self._lock:
            return [copy.deepcopy(p) for p in self._projects.values()]

    def grants_of_contact(self, contact_id: str) -> list[Grant]:
        with self._lock:
            return sorted(
                (copy.deepcopy(g) for (_, c), g in self._grants.items() if c == contact_id),
                key=lambda g: g.project_id,
            )

    def activity(
        self,
        project_id: str,
        contact_id: str | None,
        limit: int,
        cursor: str | None,
        where: ActivityFilter = EVERY_ENTRY,
    ) -> Page[ActivityEntry]:
        """Newest first (ULID ids sort by time), optionally only one contact's entries."""
        before = _decode_cursor(cursor, "id")
        entries = self._matching_activity(project_id, contact_id, where, before)
        return _page(
            entries[: limit + 1], limit, lambda e: {"project_id": e.project_id, "id": e.id}
        )

    def all_activity(
        self, project_id: str, contact_id: str | None, where: ActivityFilter
    ) -> Iterator[ActivityEntry]:
        yield from self._matching_activity(project_id, contact_id, where, None)

    def _matching_activity(
        self, project_id: str, contact_id: str | None, where: ActivityFilter, before: str | None
    ) -> list[ActivityEntry]:
        # The same selection as the DynamoDB store: the window on the ULID ids, then the actions.
        low, high = ulid_range(where.since, where.until)
        with self._lock:
            entries = sorted(
                (
                    e
                    for (p, _), e in self._activity.items()
                    if p == project_id
                    and (not contact_id or e.contact_id == contact_id)
                    and (before is None or e.id < before)
                    and low <= e.id <= high
                    and (not where.actions or e.action in where.actions)
                ),
                key=lambda e: e.id,
                reverse=True,
            )
            return copy.deepcopy(entries)

    def append_activity(self, entry: ActivityEntry) -> None:
        uow = self.unit_of_work()
        uow.append(entry)
        try:
            uow.commit()
        except StaleState as exc:
            raise StaleState("activity entry already recorded") from exc

    def referencing_projects(self, contact_id: str, kind: ReferenceKind, key: str) -> set[str]:
        with self._lock:
            return set(self._references.get((kind, contact_id, key), ()))

    def get_review(self, project_id: str, review_id: str) -> Review | None:
        with self._lock:
            return copy.deepcopy(self._reviews.get((project_id, review_id)))

    def reviews_of_project(self, project_id: str) -> list[Review]:
        with self._lock:
            found = [replace(r, items=[]) for (p, _), r in self._reviews.items() if p == project_id]
        return sorted(found, key=lambda r: r.review_id, reverse=True)

    def reviews_due_by(self, until: str) -> list[Review]:
        with self._lock:
            due = [
                replace(r, items=[])
                for r in self._reviews.values()
                if r.status == "open" and r.due_at <= until
            ]
        return sorted(due, key=lambda r: r.due_at)

    def get_access_request(self, project_id: str, request_id: str) -> AccessRequest | None:
        with self._lock:
            return copy.deepcopy(self._requests.get((project_id, request_id)))

    def access_requests_of_project(
        self, project_id: str, status: str | None = None
    ) -> list[AccessRequest]:
        with self._lock:
            found = [
                copy.deepcopy(r)
                for (p, _), r in self._requests.items()
                if p == project_id and status in (None, r.status)
            ]
        return sorted(found, key=lambda r: r.request_id, reverse=True)

    def access_requests_due_by(self, until: str) -> list[AccessRequest]:
        with self._lock:
            due = [
                copy.deepcopy(r)
                for r in self._requests.values()
                if r.status == "pending" and r.expires_at <= until
            ]
        return sorted(due, key=lambda r: r.expires_at)

    def projects_owing_support_email(self) -> list[Project]:
        with self._lock:
            owing = [p for p in self._projects.values() if not p.support_access.notified]
            return copy.deepcopy(owing)

    def grants_owing_welcome(self) -> list[Grant]:
        with self._lock:
            return [copy.deepcopy(g) for g in self._grants.values() if g.welcome_owed]

    def grants_expiring_by(self, until: str) -> list[Grant]:
        """The sparse expiry index: grants with an expiry whose removal has not started."""
        removing = {GrantStatus.DELETION_PENDING, GrantStatus.DELETION_FAILED}
        with self._lock:
            due = [
                g
                for g in self._grants.values()
                if g.expires_at is not None and g.expires_at <= until and g.status not in removing
            ]
            return [copy.deepcopy(g) for g in sorted(due, key=lambda g: str(g.expires_at))]

    def pending_grants(self) -> list[Grant]:
        """Every grant with a lifecycle under way (what the sweeper scans for)."""
        with self._lock:
            return [copy.deepcopy(g) for g in self._grants.values() if g.status in PENDING]
