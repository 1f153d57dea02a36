"""Composition root: every entry point (API, workflow tasks, schedules) gets its domain services
here, wired to their AWS and Jira adapters once per Lambda container.

Adapters are cheap to build and touch AWS only when used: the Jira client reads its token on its
first call, so a function that never calls JSM needs no permission on the secret; and it is
imported only by the factories that need it, so an API call that never reaches JSM does not pay
for importing it (cold start, docs/decisions.md).
"""

from __future__ import annotations

from datetime import timedelta
from functools import lru_cache
from typing import TYPE_CHECKING

from .config import get_settings, jira_token
from .domain.access_requests import AccessRequestExpiryJob, AccessRequestService
from .domain.contacts import ContactService
from .domain.drift import DriftRepair
from .domain.expiry import ExpiryJob
from .domain.grant_batches import GrantBatches
from .domain.grant_steps import GrantSteps
from .domain.grants import GrantService
from .domain.helpdesk import HelpdeskService
from .domain.offboarding import OffboardingService
from .domain.projects import ProjectService
from .domain.reviews import ReviewDeadlineJob, ReviewService
from .domain.scim_tokens import ScimTokenService
from .domain.scim_users import ScimUserService
from .domain.support_access import SupportAccessService
from .events import EventBridgePublisher
from .hr import SqsHrQueue
from .mail import SesMailer
from .store.repository import DynamoStore
from .workflows.starter import StepFunctionsStarter

if TYPE_CHECKING:
    from .jira.pacing import JiraPacer


@lru_cache(maxsize=1)
def store() -> DynamoStore:
    return DynamoStore()


@lru_cache(maxsize=1)
def events() -> EventBridgePublisher:
    return EventBridgePublisher()


@lru_cache(maxsize=1)
def mailer() -> SesMailer:
    return SesMailer()


@lru_cache(maxsize=1)
def workflows() -> StepFunctionsStarter:
    return StepFunctionsStarter()


@lru_cache(maxsize=1)
def hr_queue() -> SqsHrQueue:
    return SqsHrQueue()


@lru_cache(maxsize=1)
def offboarding() -> OffboardingService:
    """HR events and SCIM deactivations: offboarding, company change, reactivation."""
    return OffboardingService(store(), workflows(), events(), hr_queue())


@lru_cache(maxsize=1)
def grants() -> GrantService:
    return GrantService(
        store(), workflows(), mailer(), events(), reset_url=get_settings().password_reset_url
    )


@lru_cache(maxsize=1)
def grant_batches() -> GrantBatches:
    return GrantBatches(grants())


@lru_cache(maxsize=1)
def expiry() -> ExpiryJob:
    return ExpiryJob(store(), workflows(), mailer(), events())


@lru_cache(maxsize=1)
def reviews() -> ReviewService:
    return ReviewService(store(), workflows(), events())


@lru_cache(maxsize=1)
def review_deadlines() -> ReviewDeadlineJob:
    return ReviewDeadlineJob(store(), workflows(), events())


@lru_cache(maxsize=1)
def access_requests() -> AccessRequestService:
    ttl = timedelta(hours=get_settings().access_request_ttl_hours)
    return AccessRequestService(store(), grants(), mailer(), events(), ttl)


@lru_cache(maxsize=1)
def access_request_expiry() -> AccessRequestExpiryJob:
    return AccessRequestExpiryJob(store(), events())


@lru_cache(maxsize=1)
def grant_steps() -> GrantSteps:
    from .jira import jsm_client  # noqa: PLC0415 - only the functions that call JSM import it

    return GrantSteps(store(), jsm_client(), mailer(), events(), get_settings().portal_url)


@lru_cache(maxsize=1)
def jira_pacer() -> JiraPacer | None:
    """The service-wide Jira limiter, None when no rate is set (then no call is paced)."""
    from .jira.pacing import JiraPacer  # noqa: PLC0415 - only the functions that call JSM

    rate = get_settings().jira_rate_per_second
    return JiraPacer(rate) if rate > 0 else None


@lru_cache(maxsize=1)
def drift_repair() -> DriftRepair:
    from .jira import jsm_client  # noqa: PLC0415 - only the functions that call JSM import it

    return DriftRepair(store(), jsm_client())


@lru_cache(maxsize=1)
def projects() -> ProjectService:
    from .jira import jsm_client  # noqa: PLC0415 - only the functions that call JSM import it

    return ProjectService(store(), jsm_client())


@lru_cache(maxsize=1)
def contacts() -> ContactService:
    return ContactService(store())


@lru_cache(maxsize=1)
def support_access() -> SupportAccessService:
    return SupportAccessService(store(), mailer(), events(), get_settings().support_team_email)


@lru_cache(maxsize=1)
def helpdesk() -> HelpdeskService:
    from .jira import JsmClient  # noqa: PLC0415 - only the functions that call JSM import it

    settings = get_settings()
    # A client of its own with a short timeout: the tab must render even when JSM is slow.
    reader = JsmClient(
        settings.jira_base_url,
        settings.jira_email,
        jira_token,
        timeout=settings.helpdesk_timeout_seconds,
    )
    return HelpdeskService(
        reader,
        settings.portal_base_url,
        settings.helpdesk_cache_seconds,
        settings.helpdesk_timeout_seconds,
    )


@lru_cache(maxsize=1)
def scim_tokens() -> ScimTokenService:
    return ScimTokenService(store())


@lru_cache(maxsize=1)
def scim_users() -> ScimUserService:
    # SCIM deactivation is HR offboarding: the same service, the token as actor.
    return ScimUserService(store(), offboarding())
