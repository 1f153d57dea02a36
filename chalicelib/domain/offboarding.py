"""Access follows the identity record (rule 9, SPEC §4): offboarding, company change, reactivation.

HR events and SCIM deactivations both land here. A revocation is a fan-out over the contact's
grants that must never lose one:

- the contact's own change (status or company) is one conditional write, so of two sources
  arriving together (an HR event and a SCIM PATCH, or one event delivered 3 times) one records
  it and publishes `ContactOffboarded`, the others find it done;
- each grant then moves to `deletion_pending` through `GrantLifecycle.apply`, conditional on the
  status and run it was read in, so each gets exactly one `grant.removal_requested` however many
  rounds race over it; its removal execution starts (or is left to the sweeper, which starts it
  under the same name);
- a round moves at most `ROUND_SIZE` grants (bounded work per Lambda invocation); grants it could
  not act on yet — more than a round's worth, an activation still running, a run still finishing
  — are handed to a follow-up round (`FollowUps`, the HR queue in AWS) that starts where this one
  left off, so a contact with 10,000 grants is revoked in many short invocations;
- an activation running while its contact is offboarded never ends activated: its completion step
  refuses (`refuse_offboarded`), the run takes back what it added and fails, and the follow-up
  round removes the failed grant.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Literal, Protocol

from ..errors import Conflict, ContactOffboarded
from . import activity
from .changes import commit_change
from .events import ContactOffboarded as ContactOffboardedEvent
from .grant_lifecycle import GrantLifecycle, Move
from .models import (
    Actor,
    Contact,
    ContactStatus,
    Grant,
    GrantStatus,
    Project,
    iso,
    parse_iso,
    utc_now,
)
from .ports import EventPublisher, Store, UnitOfWork, WorkflowStarter
from .sweeper import start_removal_or_leave_to_sweeper

# At most this many grants move to removal per round (one transaction + one StartExecution each,
# ~0.1 s in AWS): a round stays far inside the consumer's timeout whatever the contact holds.
ROUND_SIZE = 10
# A follow-up round waiting for activations to settle comes this long after the previous one...
WAIT_SECONDS = 30
# ... at most this many times (an hour): a run stuck longer than that is failed by the sweeper
# (10 min) and its grant holds nothing (`refuse_offboarded`); the error log names what is left.
MAX_WAITING_ROUNDS = 120
# An activated grant changed within this may still have its execution finishing (its event):
# the removal waits for the next round, as `GrantService` makes a person wait.
FINISHING_SECONDS = 300

OFFBOARDED = "offboarded"
COMPANY_CHANGED = "company_changed"
Kind = Literal["offboarding", "company_change"]

# Statuses a revocation moves to `deletion_pending` (`deletion_failed` is retried once per
# revocation: a grant whose removal failed after the revocation started is reported, not looped).
REMOVABLE = frozenset(
    {GrantStatus.ACTIVATED, GrantStatus.ACTIVATION_FAILED, GrantStatus.DELETION_FAILED}
)


@dataclass(frozen=True)
class Revocation:
    """One fan-out: which contact, which rule (`kind`), who asked, and where it stands.

    `reason` goes to each removal's `detail.reason`; `origin` names what started it (an HR event
    id, a SCIM token), `started_at` when; `round` counts the follow-ups so far. A follow-up round
    carries the same revocation, round + 1.
    """

    contact_id: str
    actor: Actor
    kind: Kind
    reason: str
    origin: str
    started_at: str
    round: int = 0

    def next_round(self) -> Revocation:
        return replace(self, round=self.round + 1)


@dataclass
class OffboardingResult:
    """What one round did. `done`: nothing is left for a follow-up round."""

    contact: Contact | None
    changed: bool = False  # this call recorded the contact's change (status or company)
    removals_started: list[str] = field(default_factory=list)  # project ids
    left_to_sweeper: list[str] = field(default_factory=list)  # removal recorded, start failed
    already_removing: list[str] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)  # activation running / run finishing
    failed: list[str] = field(default_factory=list)  # removal failed during this revocation
    kept: list[str] = field(default_factory=list)  # the rule keeps them (company change)
    more: bool = False  # the round was full: grants are left for the next one
    follow_up_in: int | None = None  # seconds until the follow-up round, None = none

    @property
    def done(self) -> bool:
        return not self.more and not self.waiting


class FollowUps(Protocol):
    """Schedules the next round of a revocation (the HR queue with a delay, in AWS)."""

    def schedule(self, revocation: Revocation, delay_seconds: int) -> None: ...


def refuse_offboarded(contact: Contact | None) -> None:
    """A grant's activation may not complete for an offboarded contact (rule 9)."""
    if contact is not None and contact.status is ContactStatus.OFFBOARDED:
        raise ContactOffboarded("the contact was offboarded while its access was being activated")


def company_allows(contact: Contact, project: Project | None) -> bool:
    """After a company change: a grant stays where the contact's company is the project's
    customer or integrator, or where it is linked as an external of one of them (SPEC §4)."""
    if project is None:
        return False
    companies = project.company_ids
    return contact.company_id in companies or bool(companies.intersection(contact.external_for))


class OffboardingService:
    def __init__(
        self,
        store: Store,
        workflows: WorkflowStarter,
        events: EventPublisher,
        follow_ups: FollowUps,
    ) -> None:
        self._store = store
        self._workflows = workflows
        self._events = events
        self._follow_ups = follow_ups
        self._lifecycle = GrantLifecycle(store, events)

    # --- the contact's change + the first round ----------------------------------------------

    def offboard_contact(
        self, contact: Contact, actor: Actor, *, reason: str = OFFBOARDED, origin: str = ""
    ) -> OffboardingResult:
        """Mark the contact offboarded (once) and revoke every grant it has, in every project.

        Idempotent: an already offboarded contact is not changed again, but its grants are
        looked at again (a duplicate event finishes what a crashed first delivery started).
        """
        changed = False
        if contact.status is not ContactStatus.OFFBOARDED:
            uow = self._store.unit_of_work()
            uow.change_contact_status(contact.contact_id, ContactStatus.OFFBOARDED)
            event = ContactOffboardedEvent(
                contact_id=contact.contact_id,
                actor_type=actor.type.value,
                actor_id=actor.id,
                reason=reason,
            )
            changed = commit_change(uow, self._events, event)
        origin = origin or actor.type.value
        revocation = Revocation(
            contact.contact_id, actor, "offboarding", reason, origin, iso(utc_now())
        )
        result = self.continue_revocation(revocation)
        result.changed = changed
        return result

    def change_company(
        self, contact: Contact, new_company_id: str | None, actor: Actor, *, origin: str = ""
    ) -> OffboardingResult:
        """Move the contact to `new_company_id` (None: a pure external), then revoke its grants
        on projects the new company is not part of, except where it is linked as an external."""
        changed = False
        if contact.company_id != new_company_id:
            uow = self._store.unit_of_work()
            uow.change_contact_company(contact.contact_id, new_company_id, contact.company_id)
            changed = commit_change(uow, self._events, None)
            if not changed:
                # Changed meanwhile (another event, a directory sync): the rule below uses the
                # contact as stored now; the caller may deliver the event again.
                raise Conflict(f"contact {contact.contact_id} changed meanwhile; deliver it again")
        revocation = Revocation(
            contact.contact_id,
            actor,
            "company_change",
            COMPANY_CHANGED,
            origin or actor.type.value,
            iso(utc_now()),
        )
        result = self.continue_revocation(revocation)
        result.changed = changed
        return result

    def reactivate_contact(self, contact: Contact, actor: Actor) -> Contact:
        """Status back to active (SCIM `active: true`); no grant comes back by itself."""
        if contact.status is ContactStatus.ACTIVE:
            return contact
        uow = self._store.unit_of_work()
        uow.change_contact_status(contact.contact_id, ContactStatus.ACTIVE)
        commit_change(uow, self._events, None)  # lost: it was reactivated meanwhile
        return self._store.get_contact(contact.contact_id) or replace(
            contact, status=ContactStatus.ACTIVE
        )

    # --- one round of the fan-out ------------------------------------------------------------

    def continue_revocation(self, revocation: Revocation) -> OffboardingResult:
        """Revoke up to `ROUND_SIZE` grants the rule no longer allows; schedule what is left."""
        contact = self._store.get_contact(revocation.contact_id)
        result = OffboardingResult(contact=contact)
        if contact is None or not self._still_applies(revocation, contact):
            return result  # reactivated meanwhile: nothing more to revoke
        allows = self._rule(revocation, contact)
        for listed in self._store.grants_of_contact(contact.contact_id):
            if len(result.removals_started) + len(result.left_to_sweeper) >= ROUND_SIZE:
                result.more = True
                break
            self._revoke(revocation, contact, listed, allows, result)
        self._schedule_follow_up(revocation, result)
        return result

    def _revoke(
        self,
        revocation: Revocation,
        contact: Contact,
        listed: Grant,
        allows: Callable[[Grant], bool],
        result: OffboardingResult,
    ) -> None:
        """Move one grant to removal, or say why not; a lost race is read again (twice)."""
        project = listed.project_id
        if listed.status is GrantStatus.DELETION_PENDING:
            result.already_removing.append(project)  # the contact index may lag: harmless
            return
        for _attempt in range(3):
            grant = self._store.get_grant(listed.project_id, listed.contact_id)
            if grant is None or grant.status is GrantStatus.DELETION_PENDING:
                result.already_removing.append(project)
                return
            if allows(grant):
                result.kept.append(project)
                return
            if grant.status is GrantStatus.ACTIVATION_PENDING or self._finishing(grant):
                result.waiting.append(project)
                return
            if grant.status is GrantStatus.DELETION_FAILED and grant.updated_at >= (
                revocation.started_at
            ):
                result.failed.append(project)  # failed during this revocation: reported once
                return
            started = self._lifecycle.apply(
                grant,
                Move(
                    GrantStatus.DELETION_PENDING,
                    revocation.actor,
                    self._detail(revocation, contact),
                ),
                uow=self._with_contact_entry(revocation, contact, grant),
            )
            if started is None:
                continue  # it moved meanwhile (an activation completed, a person removed it)
            if start_removal_or_leave_to_sweeper(self._workflows, started):
                result.removals_started.append(project)
            else:
                result.left_to_sweeper.append(project)
            return
        result.waiting.append(project)  # kept losing races: the next round looks again

    def _with_contact_entry(
        self, revocation: Revocation, contact: Contact, grant: Grant
    ) -> UnitOfWork:
        """The removal's transaction, carrying `contact.offboarded` on this project for an
        offboarding: recorded exactly when (and as often as) this project's grant is revoked."""
        uow = self._store.unit_of_work()
        if revocation.kind == "offboarding":
            uow.append(
                activity.entry(
                    grant.project_id,
                    "contact.offboarded",
                    revocation.actor,
                    contact_id=contact.contact_id,
                    contact_email=contact.email,
                    detail={"origin": revocation.origin},
                )
            )
        return uow

    @staticmethod
    def _detail(revocation: Revocation, contact: Contact) -> dict[str, str | None]:
        detail: dict[str, str | None] = {"reason": revocation.reason, "origin": revocation.origin}
        if revocation.kind == "company_change":
            detail["company_id"] = contact.company_id
        return detail

    def _rule(self, revocation: Revocation, contact: Contact) -> Callable[[Grant], bool]:
        """Which grants the revocation keeps: none for an offboarding."""
        if revocation.kind == "offboarding":
            return lambda _grant: False
        projects: dict[str, Project | None] = {}

        def allows(grant: Grant) -> bool:
            if grant.project_id not in projects:
                projects[grant.project_id] = self._store.get_project(grant.project_id)
            return company_allows(contact, projects[grant.project_id])

        return allows

    @staticmethod
    def _still_applies(revocation: Revocation, contact: Contact) -> bool:
        if revocation.kind == "offboarding":
            return contact.status is ContactStatus.OFFBOARDED
        return True

    def _finishing(self, grant: Grant) -> bool:
        recent = (utc_now() - parse_iso(grant.updated_at)).total_seconds() < FINISHING_SECONDS
        return bool(
            recent and grant.lifecycle_id and self._workflows.is_running(grant.lifecycle_id)
        )

    def _schedule_follow_up(self, revocation: Revocation, result: OffboardingResult) -> None:
        if result.more:
            delay = 0
        elif result.waiting and revocation.round < MAX_WAITING_ROUNDS:
            delay = WAIT_SECONDS
        else:
            return
        self._follow_ups.schedule(revocation.next_round(), delay)
        result.follow_up_in = delay
