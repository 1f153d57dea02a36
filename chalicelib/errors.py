"""One error family for the whole service; only `api/` turns these into HTTP problems.

The class names of the Jira errors are part of the state-machine contract: ASL `Retry`/`Catch`
blocks match them by name (`ErrorEquals`), so renaming one is a breaking change.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class ServiceError(Exception):
    """Base of every error the service raises on purpose."""

    code = "service-error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class FieldError:
    """One invalid input field, reported in a problem's `errors` list."""

    field: str
    message: str


class ValidationFailed(ServiceError):
    """Well-formed input that breaks a rule (HTTP 422)."""

    code = "validation-error"

    def __init__(self, message: str, errors: list[FieldError] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or []


class ContactOffboarded(ValidationFailed):
    """The contact was offboarded: no access may be given to it (HTTP 422 of its own type)."""

    code = "contact-offboarded"


class MalformedRequest(ServiceError):
    """Input that cannot even be parsed (HTTP 400)."""

    code = "bad-request"

    def __init__(self, message: str, errors: list[FieldError] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or []


class NotFound(ServiceError):
    code = "not-found"


class Forbidden(ServiceError):
    code = "forbidden"


class Unauthorized(ServiceError):
    code = "unauthorized"


class Conflict(ServiceError):
    """The resource is in a state that forbids the request (HTTP 409)."""

    code = "conflict"

    def __init__(self, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class EmailTaken(Conflict):
    """Another contact has this email (SCIM `scimType: uniqueness`; whose is not said)."""

    code = "uniqueness"


class StaleState(ServiceError):
    """A conditional write lost: somebody else changed the item first."""

    code = "conflict"


class TooManyRequests(ServiceError):
    """The caller repeats something the service does at most so often (HTTP 429)."""

    code = "too-many-requests"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TooLarge(ServiceError):
    """The answer would be larger than the service gives in one response (HTTP 413)."""

    code = "payload-too-large"


class WriteConflict(ServiceError):
    """DynamoDB cancelled a transaction because another one wrote the same items at that moment
    (`TransactionConflict`): nothing was written, and trying again may well succeed."""

    code = "conflict"


class InternalFault(ServiceError):
    """A fault the service did not expect (HTTP 500), caught where the work around it must go on
    (the other items of a batch); its cause is logged, never shown."""

    code = "internal-error"


class DependencyUnavailable(ServiceError):
    """A downstream service (Step Functions, Jira) could not take the request now (HTTP 503)."""

    code = "service-unavailable"

    def __init__(self, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class StoreThrottled(DependencyUnavailable):
    """DynamoDB throttled the request (capacity or a hot partition): retry after a pause."""


# --- Jira (JSM) errors: raised by `chalicelib.jira`, matched by name in the ASL ---------------


@dataclass
class JiraError(ServiceError):
    """Base for every failed JSM call."""

    message: str
    status: int | None = None
    details: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        ServiceError.__init__(self, self.message)


@dataclass
class JiraRateLimited(JiraError):
    """HTTP 429: retry after `retry_after` seconds (None when the server did not say);
    `limit` is the server's `X-RateLimit-Limit`, when it sent one."""

    retry_after: int | None = None
    limit: float | None = None


class JiraUnavailable(JiraError):
    """5xx, timeout or connection failure: worth retrying with backoff."""


class JiraRejected(JiraError):
    """A 4xx that retrying will not fix (bad request, conflict we could not resolve)."""


class JiraAuthError(JiraError):
    """401/403: the bot's credentials or permissions are wrong."""


class JiraNotFound(JiraRejected):
    """404: the service desk, organization or account does not exist."""


class JiraCustomerExists(JiraRejected):
    """409 on customer creation: an account with that email already exists (look it up)."""
