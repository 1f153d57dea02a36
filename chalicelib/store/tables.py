"""PynamoDB models of the five tables; `infra/` derives their CloudFormation from these too."""

from __future__ import annotations

from typing import Any

from pynamodb.attributes import (
    BooleanAttribute,
    ListAttribute,
    MapAttribute,
    NumberAttribute,
    UnicodeAttribute,
    UnicodeSetAttribute,
)
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model

from ..config import get_settings

_settings = get_settings()


class _Meta:
    region = _settings.region
    billing_mode = "PAY_PER_REQUEST"


class ProjectItem(Model):
    class Meta(_Meta):
        table_name = _settings.projects_table

    project_id = UnicodeAttribute(hash_key=True)
    name = UnicodeAttribute()
    customer_company_id = UnicodeAttribute()
    integrator_company_id = UnicodeAttribute(null=True)
    created_by = UnicodeAttribute(null=True)
    service_desk_id = UnicodeAttribute()
    organization_id = UnicodeAttribute()
    allowed_email_domains: ListAttribute[str] = ListAttribute(default=list)
    support_access: MapAttribute[str, Any] = MapAttribute(null=True)
    service_desk_name = UnicodeAttribute(null=True)
    organization_name = UnicodeAttribute(null=True)


class OrganizationClaimItem(Model):
    """The claim that links a JSM organization to one project (SPEC §1), kept in the projects
    table under `organization#<id>` (project ids never contain `#`), like the contacts' email
    claims: written in the same transaction as the project, so two projects never share one."""

    class Meta(_Meta):
        table_name = _settings.projects_table

    project_id = UnicodeAttribute(hash_key=True)
    claimed_by = UnicodeAttribute()


class ContactCompanyIndex(GlobalSecondaryIndex["ContactItem"]):
    class Meta:
        index_name = "company-index"
        projection = AllProjection()

    company_id = UnicodeAttribute(hash_key=True)


class ContactItem(Model):
    """A contact; or (with `claimed_by`) the claim that makes an email address unique; or (with
    `projects`) one of a contact's reference sets (`grant_lifecycle.GrantLifecycle`)."""

    class Meta(_Meta):
        table_name = _settings.contacts_table

    contact_id = UnicodeAttribute(hash_key=True)
    email = UnicodeAttribute(null=True)
    name = UnicodeAttribute(null=True)
    company_id = UnicodeAttribute(null=True)
    console_user = BooleanAttribute(default=False)
    groups: ListAttribute[str] = ListAttribute(default=list)
    # A string set, so link and unlink are atomic ADD/DELETE actions that never lose a
    # concurrent change to another company's link.
    external_for = UnicodeSetAttribute(null=True)
    status = UnicodeAttribute(null=True)
    claimed_by = UnicodeAttribute(null=True)
    external_id = UnicodeAttribute(null=True)  # SCIM externalId
    scim_deleted = BooleanAttribute(null=True)
    # A reference set: DynamoDB drops the attribute when its last element is deleted.
    projects = UnicodeSetAttribute(null=True)

    company_index = ContactCompanyIndex()


class GrantContactIndex(GlobalSecondaryIndex["GrantItem"]):
    class Meta:
        index_name = "contact-index"
        projection = AllProjection()

    contact_id = UnicodeAttribute(hash_key=True)
    project_id = UnicodeAttribute(range_key=True)


class GrantExpiryIndex(GlobalSecondaryIndex["GrantItem"]):
    """Sparse: only grants with an expiry whose removal has not started carry `expiry_bucket`
    (always `EXPIRY_BUCKET`), so the expiry job queries `expires_at <= t` without a scan."""

    class Meta:
        index_name = "expiry-index"
        projection = AllProjection()

    expiry_bucket = UnicodeAttribute(hash_key=True)
    expires_at = UnicodeAttribute(range_key=True)


# The one partition key of the expiry index: a few thousand grants expire within a week even at
# 100k grants, well inside one partition's throughput (docs/decisions.md "Time-bound grants").
EXPIRY_BUCKET = "grant"


class GrantItem(Model):
    class Meta(_Meta):
        table_name = _settings.grants_table

    project_id = UnicodeAttribute(hash_key=True)
    contact_id = UnicodeAttribute(range_key=True)
    status = UnicodeAttribute()
    email = UnicodeAttribute()
    name = UnicodeAttribute()
    requested_by = UnicodeAttribute()
    requested_at = UnicodeAttribute()
    updated_at = UnicodeAttribute()
    service_desk_id = UnicodeAttribute()
    organization_id = UnicodeAttribute()
    # Stored under its first name; grants written before it existed are read as None.
    granted_by_company_id = UnicodeAttribute(null=True, attr_name="via_company_id")
    reset_sent_at = UnicodeAttribute(null=True)
    welcome_owed = BooleanAttribute(null=True)
    jira_account_id = UnicodeAttribute(null=True)
    account_created = BooleanAttribute(default=False)
    error: MapAttribute[str, Any] = MapAttribute(null=True)
    expires_at = UnicodeAttribute(null=True)
    lifecycle_id = UnicodeAttribute(null=True)
    expiry_reminded_for = UnicodeAttribute(null=True)
    expiry_bucket = UnicodeAttribute(null=True)  # sparse: see GrantExpiryIndex

    contact_index = GrantContactIndex()
    expiry_index = GrantExpiryIndex()


class ActivityContactIndex(GlobalSecondaryIndex["ActivityItem"]):
    class Meta:
        index_name = "contact-activity-index"
        projection = AllProjection()

    project_contact = UnicodeAttribute(hash_key=True)
    id = UnicodeAttribute(range_key=True)


class ActivityItem(Model):
    """Append-only: the code only ever puts (attribute_not_exists) and queries this table."""

    class Meta(_Meta):
        table_name = _settings.activity_table

    project_id = UnicodeAttribute(hash_key=True)
    id = UnicodeAttribute(range_key=True)  # ULID: sorts by time
    at = UnicodeAttribute()
    action = UnicodeAttribute()
    actor: MapAttribute[str, Any] = MapAttribute()
    contact_id = UnicodeAttribute(null=True)
    contact_email = UnicodeAttribute(null=True)
    project_contact = UnicodeAttribute(null=True)
    detail: MapAttribute[str, Any] = MapAttribute(default=dict)

    contact_index = ActivityContactIndex()


class IdempotencyItem(Model):
    """The Powertools idempotency table (its default schema: `id` key, `expiration` TTL)."""

    class Meta(_Meta):
        table_name = _settings.idempotency_table

    id = UnicodeAttribute(hash_key=True)


class GovernanceDueIndex(GlobalSecondaryIndex["GovernanceItem"]):
    """Sparse: only an open review (`due_bucket = "review"`) and a pending access request
    (`"request"`) carry `due_bucket`, so the deadline jobs query `due_at <= now` without a scan."""

    class Meta:
        index_name = "due-index"
        projection = AllProjection()

    due_bucket = UnicodeAttribute(hash_key=True)
    due_at = UnicodeAttribute(range_key=True)


class GovernancePendingIndex(GlobalSecondaryIndex["GovernanceItem"]):
    """Sparse: a pending access request carries `pending_project` (its project id)."""

    class Meta:
        index_name = "pending-index"
        projection = AllProjection()

    pending_project = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)


class GovernanceItem(Model):
    """Access reviews and access requests of a project (rule 11), keyed `pk = project#<id>`:

    - `sk = review#<review_id>`: a review (status, deadline); `reviewitem#<review_id>#<contact>`:
      one reviewed grant and its decision; `open-review`: the lock that keeps one review open;
    - `sk = request#<request_id>`: an access request; `pending-request#<contact>`: the lock that
      keeps one request of a contact pending.

    And a company's SCIM tokens: `pk = company#<id>`, `sk = scim-token#<token_id>` (listed by
    querying the company), each with its lookup `pk = scim-token#<sha256>`, `sk = scim-token`,
    deleted when the token is revoked (docs/decisions.md "SCIM tokens").
    """

    class Meta(_Meta):
        table_name = _settings.governance_table

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    project_id = UnicodeAttribute(null=True)
    record_id = UnicodeAttribute(null=True)  # review id or request id
    contact_id = UnicodeAttribute(null=True)
    email = UnicodeAttribute(null=True)
    name = UnicodeAttribute(null=True)
    status = UnicodeAttribute(null=True)
    opened_by = UnicodeAttribute(null=True)
    opened_at = UnicodeAttribute(null=True)
    closed_at = UnicodeAttribute(null=True)
    due_at = UnicodeAttribute(null=True)
    due_bucket = UnicodeAttribute(null=True)  # sparse: see GovernanceDueIndex
    pending_project = UnicodeAttribute(null=True)  # sparse: see GovernancePendingIndex
    lifecycle_id = UnicodeAttribute(null=True)
    granted_by_company_id = UnicodeAttribute(null=True)
    company_id = UnicodeAttribute(null=True)
    decision = UnicodeAttribute(null=True)
    decided_by = UnicodeAttribute(null=True)
    decided_at = UnicodeAttribute(null=True)
    reason = UnicodeAttribute(null=True)
    requested_at = UnicodeAttribute(null=True)
    grant_expires_at = UnicodeAttribute(null=True)
    token_hash = UnicodeAttribute(null=True)  # SHA-256 of a SCIM token, never the token
    created_at = UnicodeAttribute(null=True)
    created_by = UnicodeAttribute(null=True)
    revoked_at = UnicodeAttribute(null=True)
    revoked_by = UnicodeAttribute(null=True)

    due_index = GovernanceDueIndex()
    pending_index = GovernancePendingIndex()


class PaceItem(Model):
    """The service-wide Jira limiter (`chalicelib/jira/bucket.py`): one item in the governance
    table, `pk = limit#jira`, `sk = bucket`, changed only by atomic conditional updates."""

    class Meta(_Meta):
        table_name = _settings.governance_table

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    tat = NumberAttribute(null=True)
    cut_rate = NumberAttribute(null=True)
    cut_at = NumberAttribute(null=True)
    limit = NumberAttribute(null=True)


ALL_TABLES: tuple[type[Model], ...] = (
    ProjectItem,
    ContactItem,
    GrantItem,
    ActivityItem,
    IdempotencyItem,
    GovernanceItem,
)
# Every model, tables and the claim model sharing one, whose connections a new endpoint resets.
ALL_MODELS: tuple[type[Model], ...] = (*ALL_TABLES, OrganizationClaimItem, PaceItem)
TTL_ATTRIBUTES: dict[type[Model], str] = {IdempotencyItem: "expiration"}
