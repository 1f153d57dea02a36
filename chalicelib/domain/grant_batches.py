"""Grant batches (SPEC §2 `POST /projects/{id}/grant-batches`): many adds and removals in one
request, each item exactly its single call's use case (`GrantService.add` / `remove`), each
failure its own: an item that is refused changes nothing, and the items after it still run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from ..errors import (
    DependencyUnavailable,
    FieldError,
    InternalFault,
    ServiceError,
    ValidationFailed,
)
from .grants import AddGrant, GrantService, GrantView
from .models import Principal

# At most this many items (adds and removals together) in one batch (SPEC §2).
MAX_BATCH_ITEMS = 100
# An item starts only while the function has this much time left: one item takes a fraction of
# it (~0.1 s in AWS), and the 207 must still be answered (and stored for its Idempotency-Key)
# before the function's timeout, or the client would learn nothing of the items that ran.
ITEM_RESERVE_SECONDS = 3.0
NOT_RUN_RETRY_AFTER_SECONDS = 1

Op = Literal["add", "remove"]


@dataclass(frozen=True)
class BatchItem:
    """One item as the API parsed it: an add, a removal, or input its single call would have
    refused before reaching the domain (`refused`: the 400 or 422 of that call)."""

    op: Op
    add: AddGrant | None = None
    contact_id: str | None = None  # the contact a removal names
    refused: ServiceError | None = None

    @classmethod
    def adding(cls, request: AddGrant) -> BatchItem:
        return cls("add", add=request, contact_id=request.contact_id)

    @classmethod
    def removing(cls, contact_id: str) -> BatchItem:
        return cls("remove", contact_id=contact_id)

    @classmethod
    def refusing(cls, op: Op, error: ServiceError) -> BatchItem:
        return cls(op, refused=error)

    def names(self) -> dict[tuple[str, str], str]:
        """How the item names its contact: `{(kind, value): field}` (emails are lower-case)."""
        named: dict[tuple[str, str], str] = {}
        if self.contact_id is not None:
            named[("id", self.contact_id)] = "contact_id"
        request = self.add
        if request is not None and request.email is not None:
            named[("email", request.email.lower())] = "email"
        if request is not None and request.new_contact is not None:
            named[("email", request.new_contact.email.lower())] = "new_contact.email"
        return named


@dataclass(frozen=True)
class BatchOutcome:
    """What one item did: its grant as its single call answers it, or why it was refused."""

    index: int
    op: Op
    contact_id: str | None
    view: GrantView | None = None
    error: ServiceError | None = None


@dataclass
class _Named:
    """The contacts earlier items named or resolved to: item index by (kind, value)."""

    by_name: dict[tuple[str, str], int] = field(default_factory=dict)

    def earlier(self, item: BatchItem) -> tuple[int, str] | None:
        for name, field_name in item.names().items():
            if name in self.by_name:
                return self.by_name[name], field_name
        return None

    def remember(self, index: int, item: BatchItem, view: GrantView | None) -> None:
        names = list(item.names())
        if view is not None:
            names += [("id", view.grant.contact_id), ("email", view.grant.email.lower())]
        for name in names:
            self.by_name.setdefault(name, index)


class GrantBatches:
    def __init__(self, grants: GrantService) -> None:
        self._grants = grants

    def run(
        self,
        principal: Principal,
        project_id: str,
        items: list[BatchItem],
        seconds_left: Callable[[], float | None] = lambda: None,
    ) -> list[BatchOutcome]:
        """Run every item in order; one outcome per item, in the same order.

        A caller who may not manage the project's grants at all is refused for the whole batch
        (404/403, as each single call would refuse it first). An item naming a contact an
        earlier item named (or added) is refused with a 422 and not run. Once `seconds_left`
        (the function's remaining time, None when unknown) is below `ITEM_RESERVE_SECONDS`, the
        remaining items are not run: each is a 503 to send again.
        """
        self._grants.managed_project(principal, project_id)
        named = _Named()
        outcomes = []
        for index, item in enumerate(items):
            left = seconds_left()
            if left is not None and left < ITEM_RESERVE_SECONDS:
                outcomes.append(_not_run(index, item))
            else:
                outcomes.append(self._one(principal, project_id, index, item, named))
        return outcomes

    def _one(
        self, principal: Principal, project_id: str, index: int, item: BatchItem, named: _Named
    ) -> BatchOutcome:
        if item.refused is not None:
            return BatchOutcome(index, item.op, item.contact_id, error=item.refused)
        earlier = named.earlier(item)
        named.remember(index, item, None)
        if earlier is not None:
            first, field_name = earlier
            message = f"item {first} of this batch already names this contact"
            duplicate = ValidationFailed(message, [FieldError(field_name, message)])
            return BatchOutcome(index, item.op, item.contact_id, error=duplicate)
        try:
            if item.add is not None:
                view = self._grants.add(principal, project_id, item.add)
            else:
                assert item.contact_id is not None  # a removal always names its contact
                view = self._grants.remove(principal, project_id, item.contact_id)
        except ServiceError as refused:
            return BatchOutcome(index, item.op, item.contact_id, error=refused)
        except Exception as fault:
            error = InternalFault("an internal error occurred; it has been logged")
            error.__cause__ = fault
            return BatchOutcome(index, item.op, item.contact_id, error=error)
        named.remember(index, item, view)
        return BatchOutcome(index, item.op, view.grant.contact_id, view=view)


def _not_run(index: int, item: BatchItem) -> BatchOutcome:
    error = DependencyUnavailable(
        "not run: the batch ran out of time; send this item again",
        retry_after=NOT_RUN_RETRY_AFTER_SECONDS,
    )
    return BatchOutcome(index, item.op, item.contact_id, error=error)
