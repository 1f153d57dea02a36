"""`/projects/{project_id}/reviews`: access reviews (rule 11)."""

from __future__ import annotations

from chalice.app import Blueprint

from .. import services
from ..domain.models import Review, ReviewItem
from .models import (
    OpenReviewRequest,
    ReviewDecisionRequest,
    ReviewItemResponse,
    ReviewList,
    ReviewResponse,
)
from .routing import Call, Result, operation

bp = Blueprint(__name__)

REVIEWS = "/projects/{project_id}/reviews"
REVIEW = REVIEWS + "/{review_id}"


def _item(item: ReviewItem) -> ReviewItemResponse:
    return ReviewItemResponse(
        contact_id=item.contact_id,
        email=item.email,
        name=item.name,
        decision=item.decision,
        decided_by=item.decided_by,
        decided_at=item.decided_at,
    )


def _review(review: Review) -> ReviewResponse:
    return ReviewResponse(
        review_id=review.review_id,
        project_id=review.project_id,
        status=review.status,
        opened_by=review.opened_by,
        opened_at=review.opened_at,
        due_at=review.due_at,
        closed_at=review.closed_at,
        items=[_item(i) for i in review.items],
    )


@operation(
    bp,
    "GET",
    REVIEWS,
    summary="Access reviews of the project, newest first",
    who="members",
    response=ReviewList,
    errors=(400, 401, 403, 404),
)
def list_reviews(call: Call, project_id: str) -> Result:
    reviews = services.reviews().list(call.user, project_id)
    return Result(ReviewList(items=[_review(r) for r in reviews], next_cursor=None))


@operation(
    bp,
    "POST",
    REVIEWS,
    summary="Open an access review of every activated grant, to be decided by a deadline",
    who="project_manager, supervisor of the customer company; platform_admin",
    request=OpenReviewRequest,
    response=ReviewResponse,
    status=201,
    errors=(400, 401, 403, 404, 409, 422),
)
def open_review(call: Call, project_id: str) -> Result:
    body: OpenReviewRequest = call.body
    review = services.reviews().open(call.user, project_id, body.due_at)
    location = f"/projects/{project_id}/reviews/{review.review_id}"
    return Result(_review(review), status=201, headers={"Location": location})


@operation(
    bp,
    "GET",
    REVIEW,
    summary="An access review with its items",
    who="members",
    response=ReviewResponse,
    errors=(400, 401, 403, 404),
)
def get_review(call: Call, project_id: str, review_id: str) -> Result:
    return Result(_review(services.reviews().get(call.user, project_id, review_id)))


@operation(
    bp,
    "PUT",
    REVIEW + "/items/{contact_id}",
    summary="Keep or revoke one reviewed grant (revoke starts its removal at once)",
    who="whoever may remove that grant (rule 2)",
    request=ReviewDecisionRequest,
    response=ReviewItemResponse,
    errors=(400, 401, 403, 404, 409, 422, 503),
)
def decide_review_item(call: Call, project_id: str, review_id: str, contact_id: str) -> Result:
    body: ReviewDecisionRequest = call.body
    item = services.reviews().decide(call.user, project_id, review_id, contact_id, body.decision)
    return Result(_item(item))
