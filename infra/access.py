"""Least-privilege IAM: what each Lambda function may touch, declared once and rendered as policies.

Every function gets its own role (Chalice, `autogen_policy: false`) whose inline policy only
allows X-Ray; everything else is one `AWS::IAM::Policy` per function built from `ACCESS` below.
A function that is not declared here fails the synth: a new handler states what it needs.

The activity table is append-only: no function may update or delete its items. DynamoDB checks
each item of a `TransactWriteItems` against the action of that item (Put → `PutItem`, Update →
`UpdateItem`, Delete → `DeleteItem`, ConditionCheck → `ConditionCheckItem`), so `PutItem` +
`Query` are all the code needs; IAM cannot require `attribute_not_exists` on a put, so the code
always puts activity entries with that condition (`chalicelib/store/repository.py`) and the
table's resource policy denies updates and deletes to every principal.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .functions import Function
from .resources import STATE_MACHINE_IDS, TABLE_IDS

Json = dict[str, Any]

GET = "dynamodb:GetItem"
QUERY = "dynamodb:Query"
SCAN = "dynamodb:Scan"
PUT = "dynamodb:PutItem"
UPDATE = "dynamodb:UpdateItem"
DELETE = "dynamodb:DeleteItem"
CHECK = "dynamodb:ConditionCheckItem"
BATCH_GET = "dynamodb:BatchGetItem"  # POST /grants reads project, contact and grant at once
BATCH_WRITE = "dynamodb:BatchWriteItem"  # a new review's items (more than a transaction holds)

READ = frozenset({GET, QUERY})
READ_WRITE = frozenset({GET, QUERY, PUT, UPDATE, DELETE})
# Powertools idempotency: get the record, put it conditionally, update it, delete it on failure.
IDEMPOTENCY = frozenset({GET, PUT, UPDATE, DELETE})
APPEND_ONLY_TABLE = "activity"
APPEND = frozenset({PUT})
APPEND_AND_READ = frozenset({PUT, QUERY})
# Everything the activity table may ever be granted; the infra test holds every policy to it.
APPEND_ONLY_ALLOWED = frozenset(
    {PUT, QUERY, "dynamodb:ConditionCheckItem", "dynamodb:DescribeTable"}
)
APPEND_ONLY_FORBIDDEN = (
    UPDATE,
    DELETE,
    "dynamodb:BatchWriteItem",
    "dynamodb:PartiQLUpdate",
    "dynamodb:PartiQLDelete",
)

SECRETS = ("jira_token", "jwt", "hr_webhook")


@dataclass(frozen=True)
class Access:
    """What one function may do, by capability (rendered into IAM statements)."""

    tables: Mapping[str, frozenset[str]] = field(default_factory=dict)
    secrets: frozenset[str] = frozenset()
    start_executions: frozenset[str] = frozenset()  # state machine names (statemachines/*)
    describe_executions: frozenset[str] = frozenset()
    send_email: bool = False
    put_events: bool = False
    send_hr_queue: bool = False
    consume_hr_queue: bool = False


# Every Jira step reserves its calls' slots in the service-wide limiter: one item of the
# governance table, changed by atomic conditional updates, read after a 429 another call already
# reported (chalicelib/jira/pacing.py).
PACE = frozenset({GET, UPDATE})
_JIRA_STEP = Access(tables={"governance": PACE}, secrets=frozenset({"jira_token"}))
_DESK_STEP = Access(
    tables={"grants": READ, "contacts": frozenset({GET}), "governance": PACE},
    secrets=frozenset({"jira_token"}),
)

# Keyed by Chalice function name. Derived from what each entry point reaches in chalicelib/.
ACCESS: dict[str, Access] = {
    # The HTTP API: projects, contacts, grants, activity, idempotent POSTs, starting lifecycles,
    # password-reset / support-access emails, events, JWT verification and the Helpdesk tab (JSM).
    "api_handler": Access(
        tables={
            # A project moving to another organization deletes its old organization claim.
            "projects": frozenset({GET, BATCH_GET, PUT, UPDATE, DELETE}),
            # The email claim moves with a directory sync (delete + put); a grant keeps the
            # contact's reference sets and checks an external's link (grant_lifecycle).
            "contacts": READ_WRITE | {CHECK, BATCH_GET},
            "grants": frozenset({GET, BATCH_GET, QUERY, PUT, UPDATE}),
            "activity": APPEND_AND_READ,
            "idempotency": IDEMPOTENCY,
            # Reviews: open (items batch-written, then header + lock), decide (a condition
            # check on the open review + the item), read. Access requests: put with their
            # pending lock, decided (update + the lock deleted), read (pending index).
            "governance": frozenset({GET, QUERY, PUT, UPDATE, DELETE, CHECK, BATCH_WRITE}),
        },
        # + the HR webhook's HMAC key; a verified HR event is queued (SPEC §2 POST /hr/events).
        secrets=frozenset({"jwt", "jira_token", "hr_webhook"}),
        start_executions=frozenset(STATE_MACHINE_IDS),
        # A new run waits for the previous run's execution to end (domain.grants).
        describe_executions=frozenset(STATE_MACHINE_IDS),
        send_email=True,
        put_events=True,
        send_hr_queue=True,
    ),
    # Jira-only workflow steps.
    # Notes on the grant that it is creating the account (the create's answer may be lost).
    "ensure_customer": Access(
        tables={"grants": frozenset({GET, UPDATE}), "governance": PACE},
        secrets=frozenset({"jira_token"}),
    ),
    "add_to_service_desk": _JIRA_STEP,
    "add_to_organization": _JIRA_STEP,
    "leave_organization": _JIRA_STEP,
    # Reads the contact's other grants (its desk reference set; contact-index, then each one
    # again, consistently) before leaving a service desk other projects may share.
    "leave_service_desk": _DESK_STEP,
    # Takes back a failed activation's memberships (organization, desk unless shared).
    "undo_activation": _DESK_STEP,
    "complete_activation": Access(
        tables={
            "projects": frozenset({GET}),
            "contacts": frozenset({GET}),  # an offboarded contact's activation fails instead
            "grants": frozenset({GET, UPDATE}),
            "activity": APPEND,
            "idempotency": IDEMPOTENCY,  # the welcome email is sent once per lifecycle
        },
        send_email=True,
        put_events=True,
    ),
    "complete_removal": Access(
        tables={
            "grants": frozenset({GET, QUERY, DELETE}),
            # Drops the company reference; unlinks an external with no grant of it left.
            "contacts": frozenset({GET, UPDATE, CHECK}),
            "activity": APPEND,
        },
        put_events=True,
    ),
    "record_failure": Access(
        tables={
            "grants": frozenset({GET, UPDATE}),
            "contacts": frozenset({UPDATE}),  # a failed grant no longer holds its desk
            "activity": APPEND,
        },
        put_events=True,
    ),
    "sweep_stalled_grants": Access(
        # Scans for stalled grants; marks those whose execution ended without an outcome.
        # Sends the emails still owed (support-access changes: scan of projects; welcome emails SES
        # refused at activation: scan of grants), each run-once, then marks it sent.
        tables={
            "grants": frozenset({SCAN, UPDATE}),
            "contacts": frozenset({UPDATE}),  # a failed grant no longer holds its desk
            "projects": frozenset({GET, SCAN, UPDATE}),  # + the project's name for a welcome
            "activity": APPEND,
            "idempotency": IDEMPOTENCY,
        },
        send_email=True,
        start_executions=frozenset(STATE_MACHINE_IDS),
        describe_executions=frozenset(STATE_MACHINE_IDS),
        put_events=True,
    ),
    # Every minute: queries the sparse expiry index; starts due removals (a transition: the
    # grant, its desk reference, the activity entry) after checking the activation's execution
    # ended; emails each reminder once (run-once), then marks it on the grant.
    "expire_grants": Access(
        tables={
            "grants": frozenset({QUERY, UPDATE}),
            "contacts": frozenset({UPDATE}),  # a grant being removed no longer holds its desk
            "projects": frozenset({GET}),  # the project's name for the reminder
            "activity": APPEND,
            "idempotency": IDEMPOTENCY,
        },
        send_email=True,
        start_executions=frozenset({"grant-removal"}),
        describe_executions=frozenset({"grant-activation"}),
    ),
    # Every minute: queries the sparse due index of reviews; removes each undecided grant still
    # in the reviewed run (a transition, as for expiry) after checking its activation's
    # execution ended; then closes the review (its header, its open-review lock, the entry).
    "close_due_reviews": Access(
        tables={
            "governance": frozenset({GET, QUERY, UPDATE, DELETE}),
            "grants": frozenset({GET, UPDATE}),
            "contacts": frozenset({UPDATE}),  # a grant being removed no longer holds its desk
            "activity": APPEND,
        },
        start_executions=frozenset({"grant-removal"}),
        describe_executions=frozenset({"grant-activation"}),
        put_events=True,
    ),
    # Every minute: queries the sparse due index of access requests; each still pending
    # expires (its item updated, its pending lock deleted, the entry, AccessRequestDecided).
    "expire_access_requests": Access(
        tables={"governance": frozenset({QUERY, UPDATE, DELETE}), "activity": APPEND},
        put_events=True,
    ),
    # The HR queue (SPEC §4): finds the contact (by id or email claim), changes its status or
    # company (conditional update), then moves its grants to removal (grants by the contact
    # index, each read again; a transition keeps the desk reference and appends the entries),
    # after checking a recently changed grant's run ended; starts the removals; ContactOffboarded;
    # follow-up rounds go back on the queue; each message runs once (idempotency table).
    "hr_events": Access(
        tables={
            "contacts": frozenset({GET, UPDATE}),
            "grants": frozenset({GET, QUERY, UPDATE}),
            "projects": frozenset({GET}),  # a company change keeps the projects of the company
            "activity": APPEND,
            "idempotency": IDEMPOTENCY,
        },
        start_executions=frozenset({"grant-removal"}),
        describe_executions=frozenset(STATE_MACHINE_IDS),
        put_events=True,
        send_hr_queue=True,
        consume_hr_queue=True,
    ),
    # Daily: every project's JSM organization against its grants (report only).
    "check_drift": Access(
        tables={"projects": frozenset({SCAN}), "grants": frozenset({QUERY})},
        secrets=frozenset({"jira_token"}),
        put_events=True,  # DriftFound, one per project with drift
    ),
}


@dataclass(frozen=True)
class Names:
    """Physical names the policies point at (fixed per stage, so policies need no `Ref` cycles)."""

    state_machine_names: Mapping[str, str]  # "grant-activation" → "helpdesk-access-dev-grant-..."
    secret_ids: Mapping[str, str]  # "jwt" → "JwtSecret" (logical id)
    event_bus_id: str
    hr_queue_id: str
    mail_configuration_set: str


def access_of(function: Function) -> Access:
    try:
        return ACCESS[function.name]
    except KeyError:
        raise ValueError(
            f"{function.name} ({function.logical_id}) has no declared access: add it to "
            "infra/access.py ACCESS (least privilege: list only what it calls)"
        ) from None


def _sub_arn(service: str, resource: str) -> Json:
    prefix = "arn:${AWS::Partition}:" + service + ":${AWS::Region}:${AWS::AccountId}"
    return {"Fn::Sub": f"{prefix}:{resource}"}


def state_machine_arn(name: str) -> Json:
    return _sub_arn("states", f"stateMachine:{name}")


def table_statements(tables: Mapping[str, frozenset[str]]) -> list[Json]:
    statements = []
    for key in sorted(tables):
        actions = tables[key]
        if key == APPEND_ONLY_TABLE and not actions <= APPEND_AND_READ:
            raise ValueError(f"the {key} table is append-only: only PutItem and Query are allowed")
        table_id = TABLE_IDS[key]
        resources: list[Any] = [{"Fn::GetAtt": [table_id, "Arn"]}]
        if actions & {QUERY, SCAN}:
            resources.append({"Fn::Sub": f"${{{table_id}.Arn}}/index/*"})
        statements.append(
            {
                "Sid": f"{table_id}Items",
                "Effect": "Allow",
                "Action": sorted(actions),
                "Resource": resources,
            }
        )
    return statements


def policy_statements(function: Function, names: Names) -> list[Json]:
    """The statements of `function`'s policy: its own log group first, then its declared access."""
    access = access_of(function)
    statements: list[Json] = [
        {
            "Sid": "OwnLogGroup",
            "Effect": "Allow",
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": _sub_arn("logs", f"log-group:{function.log_group_name}:*"),
        }
    ]
    statements += table_statements(access.tables)
    if access.secrets:
        statements.append(
            {
                "Sid": "ReadSecrets",
                "Effect": "Allow",
                "Action": ["secretsmanager:GetSecretValue"],
                "Resource": [{"Ref": names.secret_ids[s]} for s in sorted(access.secrets)],
            }
        )
    if access.start_executions:
        statements.append(
            {
                "Sid": "StartLifecycles",
                "Effect": "Allow",
                "Action": ["states:StartExecution"],
                "Resource": [
                    state_machine_arn(names.state_machine_names[m])
                    for m in sorted(access.start_executions)
                ],
            }
        )
    if access.describe_executions:
        statements.append(
            {
                "Sid": "DescribeLifecycles",
                "Effect": "Allow",
                "Action": ["states:DescribeExecution"],
                "Resource": [
                    _sub_arn("states", f"execution:{names.state_machine_names[m]}:*")
                    for m in sorted(access.describe_executions)
                ],
            }
        )
    if access.send_email:
        statements.append(
            {
                "Sid": "SendEmailAsTheService",
                "Effect": "Allow",
                "Action": ["ses:SendEmail"],
                # Recipient identities are checked too while the account is in the SES sandbox;
                # the sender is pinned by the condition instead.
                "Resource": [
                    _sub_arn("ses", "identity/*"),
                    _sub_arn("ses", f"configuration-set/{names.mail_configuration_set}"),
                ],
                "Condition": {"StringEquals": {"ses:FromAddress": {"Ref": "MailSender"}}},
            }
        )
    if access.put_events:
        statements.append(
            {
                "Sid": "PublishDomainEvents",
                "Effect": "Allow",
                "Action": ["events:PutEvents"],
                "Resource": {"Fn::GetAtt": [names.event_bus_id, "Arn"]},
            }
        )
    if access.send_hr_queue:
        statements.append(
            {
                "Sid": "EnqueueHrEvents",
                "Effect": "Allow",
                "Action": ["sqs:SendMessage"],
                "Resource": {"Fn::GetAtt": [names.hr_queue_id, "Arn"]},
            }
        )
    if access.consume_hr_queue or function.sqs_event_ids:
        statements.append(
            {
                "Sid": "ConsumeHrEvents",
                "Effect": "Allow",
                "Action": [
                    "sqs:ChangeMessageVisibility",
                    "sqs:DeleteMessage",
                    "sqs:GetQueueAttributes",
                    "sqs:ReceiveMessage",
                ],
                "Resource": {"Fn::GetAtt": [names.hr_queue_id, "Arn"]},
            }
        )
    return statements


def function_policy(function: Function, names: Names) -> Json:
    """The `AWS::IAM::Policy` attached to the role Chalice made for `function`."""
    return {
        "Type": "AWS::IAM::Policy",
        "Properties": {
            "PolicyName": function.policy_id,
            "Roles": [{"Ref": function.role_id}],
            "PolicyDocument": {
                "Version": "2012-10-17",
                "Statement": policy_statements(function, names),
            },
        },
    }


def base_role_policy() -> Json:
    """The inline policy of every Chalice-made role (`.chalice/policy-<stage>.json` at synth).

    X-Ray's write actions have no resource-level permissions, so they are the one `*` here.
    """
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "WriteTraces",
                "Effect": "Allow",
                "Action": ["xray:PutTraceSegments", "xray:PutTelemetryRecords"],
                "Resource": "*",
            }
        ],
    }


def append_only_resource_policy(table_name: str) -> Json:
    """The activity table's own policy: nobody updates or deletes its items, whatever their IAM."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AppendOnly",
                "Effect": "Deny",
                "Principal": "*",
                "Action": list(APPEND_ONLY_FORBIDDEN),
                "Resource": _sub_arn("dynamodb", f"table/{table_name}"),
            }
        ],
    }
