"""What operators watch: alarms (to an SNS topic), one dashboard and saved Logs Insights queries.

Sources:
- the service's own metrics, EMF from `chalicelib/observability.py`, namespace
  `HelpdeskAccess-<stage>`, dimension `service=helpdesk-access` (+ `outcome` for `JiraCalls`);
- AWS metrics of the state machines, the HR queues, API Gateway and the Lambda functions;
- the Powertools JSON log lines: `message="activity recorded"` with `activity.*` (one per committed
  activity entry), `message="jira call"` with `jira.*`, `message="jira throttled"`,
  `message="drift found"` with `drift.*`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .functions import Function

Json = dict[str, Any]

SERVICE_DIMENSION = {"Name": "service", "Value": "helpdesk-access"}
FIVE_MINUTES = 300


@dataclass(frozen=True)
class Watched:
    """The names and logical ids the monitoring refers to."""

    stage: str
    prefix: str  # "helpdesk-access-dev"
    namespace: str  # "HelpdeskAccess-dev"
    api_name: str
    api_stage: str
    functions: list[Function]
    state_machines: dict[str, str]  # name → logical id
    queue_id: str
    dead_letter_queue_id: str
    topic_id: str


def _alarm(
    description: str, metric: Json, *, threshold: float, topic_id: str, **extra: Any
) -> Json:
    properties: Json = {
        "AlarmDescription": description,
        "ComparisonOperator": "GreaterThanOrEqualToThreshold",
        "Threshold": threshold,
        "EvaluationPeriods": 1,
        "DatapointsToAlarm": 1,
        "Period": FIVE_MINUTES,
        "Statistic": "Sum",
        "TreatMissingData": "notBreaching",
        "AlarmActions": [{"Ref": topic_id}],
        "OKActions": [{"Ref": topic_id}],
        **metric,
        **extra,
    }
    return {"Type": "AWS::CloudWatch::Alarm", "Properties": properties}


def alarms(w: Watched) -> dict[str, Json]:
    """Alarm resources by logical id."""
    resources: dict[str, Json] = {}
    for name, machine_id in sorted(w.state_machines.items()):
        resources[f"{machine_id}FailedAlarm"] = _alarm(
            f"{name}: executions failed without recording an outcome (the failure step itself "
            "failed; recorded failures end their executions cleanly and raise GrantsFailed). "
            "The sweeper marks such a grant failed within minutes; check its logs.",
            {
                "Namespace": "AWS/States",
                "MetricName": "ExecutionsFailed",
                "Dimensions": [{"Name": "StateMachineArn", "Value": {"Ref": machine_id}}],
            },
            threshold=1,
            topic_id=w.topic_id,
        )
    # Recorded failures end their executions like successes do: this is what says a grant failed.
    resources["GrantsFailedAlarm"] = _alarm(
        "Grants moved to activation_failed or deletion_failed (Jira refused, auth, rate limit "
        "exhausted, or the workflow could not start). Run the 'Failed grants today' query; "
        "retry with POST .../retry once the cause is fixed.",
        {
            "Namespace": w.namespace,
            "MetricName": "GrantsFailed",
            "Dimensions": [SERVICE_DIMENSION],
        },
        threshold=1,
        topic_id=w.topic_id,
    )
    resources["EmailsFailedAlarm"] = _alarm(
        "SES refused a welcome email when its grant activated (sandbox, unverified sender or "
        "domain): the grant is activated and the email owed; the sweeper retries it every run. "
        "Check the SES identity and sending quota.",
        {
            "Namespace": w.namespace,
            "MetricName": "EmailsFailed",
            "Dimensions": [SERVICE_DIMENSION],
        },
        threshold=1,
        topic_id=w.topic_id,
    )
    resources["HrDeadLetterAlarm"] = _alarm(
        "HR events reached the dead-letter queue (3 failed receives): replay or discard them "
        "(docs/operations.md).",
        {
            "Namespace": "AWS/SQS",
            "MetricName": "ApproximateNumberOfMessagesVisible",
            "Dimensions": [
                {
                    "Name": "QueueName",
                    "Value": {"Fn::GetAtt": [w.dead_letter_queue_id, "QueueName"]},
                }
            ],
        },
        threshold=1,
        topic_id=w.topic_id,
        Statistic="Maximum",
    )
    resources["HrQueueAgeAlarm"] = _alarm(
        "An HR event has waited more than 15 minutes: offboardings are not being processed.",
        {
            "Namespace": "AWS/SQS",
            "MetricName": "ApproximateAgeOfOldestMessage",
            "Dimensions": [
                {"Name": "QueueName", "Value": {"Fn::GetAtt": [w.queue_id, "QueueName"]}}
            ],
        },
        threshold=900,
        topic_id=w.topic_id,
        Statistic="Maximum",
    )
    resources["Api5xxAlarm"] = _alarm(
        "The API answered 5xx (the API itself answers 503 only when AWS is unreachable; "
        "anything else is a bug or an API Gateway failure).",
        {
            "Namespace": "AWS/ApiGateway",
            "MetricName": "5XXError",
            "Dimensions": [
                {"Name": "ApiName", "Value": w.api_name},
                {"Name": "Stage", "Value": w.api_stage},
            ],
        },
        threshold=1,
        topic_id=w.topic_id,
    )
    resources["DriftFoundAlarm"] = _alarm(
        "The daily check found JSM organizations that differ from the grants table. "
        "Run the 'Drift found' query, then fix JSM or retry/remove the grants.",
        {
            "Namespace": w.namespace,
            "MetricName": "DriftFound",
            "Dimensions": [SERVICE_DIMENSION],
        },
        threshold=1,
        topic_id=w.topic_id,
    )
    resources["JiraAuthErrorsAlarm"] = _alarm(
        "Jira answered 401/403: the API token was revoked, expired or lost its permissions. "
        "Rotate it (docs/operations.md); affected grants are *_failed and can be retried.",
        {
            "Namespace": w.namespace,
            "MetricName": "JiraCalls",
            "Dimensions": [{"Name": "outcome", "Value": "auth_error"}, SERVICE_DIMENSION],
        },
        threshold=1,
        topic_id=w.topic_id,
    )
    for function in w.functions:
        if function.is_workflow_task or function.kind == "api":
            # Tasks raise typed errors by design (retried or caught by the ASL, which alarms on
            # failed executions); the API's failures show up as 5xx.
            continue
        resources[f"{function.logical_id}ErrorsAlarm"] = _alarm(
            f"{function.name} ({function.kind}) failed.",
            {
                "Namespace": "AWS/Lambda",
                "MetricName": "Errors",
                "Dimensions": [{"Name": "FunctionName", "Value": function.function_name}],
            },
            threshold=1,
            topic_id=w.topic_id,
        )
    return resources


# --- saved Logs Insights queries ------------------------------------------------------------

PROJECT_PLACEHOLDER = "REPLACE-WITH-PROJECT-ID"

QUERIES: dict[str, str] = {
    "Who changed access to project X": f"""\
fields @timestamp, activity.action as action, activity.actor_type as actor_type,
  activity.actor_id as actor, activity.actor_email as actor_email,
  activity.contact_id as contact, activity.execution as execution, activity.id as entry
| filter message = "activity recorded" and activity.project_id = "{PROJECT_PLACEHOLDER}"
| sort @timestamp desc
| limit 1000""",
    "Failed grants today": """\
fields @timestamp, activity.project_id as project, activity.contact_id as contact,
  activity.action as action, activity.error_code as error, activity.execution as execution
| filter message = "activity recorded"
  and activity.action in ["grant.activation_failed", "grant.removal_failed"]
| sort @timestamp desc
| limit 1000""",
    "Jira throttling": """\
filter (message = "jira call" and jira.outcome = "throttled") or message = "jira throttled"
| stats count(jira.outcome) as throttled_calls, count(wait_seconds) as steps_waiting,
  max(wait_seconds) as longest_wait_s by bin(5m)
| sort @timestamp desc""",
    "Drift found": """\
fields @timestamp, drift.project_id as project, drift.missing_in_jsm as missing_in_jsm,
  drift.unknown_in_jsm as unknown_in_jsm,
  drift.shares_organization_with as shares_organization_with, drift.error as error
| filter message = "drift found"
| sort @timestamp desc
| limit 200""",
    # Who was offboarded, by which source (hr/scim + event id or SCIM token), which grants it
    # removed: one row per contact, source and project (`contact.offboarded` is written with
    # each removal an offboarding starts; company changes show as removals without it).
    "Offboardings: who, by which source, which grants": """\
fields @timestamp, activity.contact_id as contact, activity.contact_email as email,
  activity.actor_type as source, activity.actor_id as source_id,
  activity.project_id as project, activity.action as action
| filter message = "activity recorded" and activity.actor_type in ["hr", "scim"]
  and activity.action in ["contact.offboarded", "grant.removal_requested"]
| stats earliest(@timestamp) as at, count(*) as entries by contact, email, source, source_id,
  project, action
| sort at desc
| limit 1000""",
    "One grant lifecycle (by execution name)": """\
fields @timestamp, @logStream, step, message, jira.method, jira.path, jira.status, jira.outcome,
  activity.action, problem, detail
| filter execution = "REPLACE-WITH-EXECUTION-NAME"
  or activity.execution = "REPLACE-WITH-EXECUTION-NAME"
| sort @timestamp asc""",
}


def query_definitions(w: Watched) -> dict[str, Json]:
    log_groups = [f.log_group_name for f in w.functions]
    resources = {}
    for index, (title, query) in enumerate(QUERIES.items(), start=1):
        resources[f"SavedQuery{index}"] = {
            "Type": "AWS::Logs::QueryDefinition",
            "Properties": {
                "Name": f"{w.prefix}/{title}",
                "QueryString": query,
                "LogGroupNames": log_groups,
            },
        }
    return resources


# --- dashboard --------------------------------------------------------------------------------


def _service_metric(w: Watched, name: str, **options: Any) -> list[Any]:
    return [w.namespace, name, "service", "helpdesk-access", options or {}]


def _widget(
    title: str, metrics: list[list[Any]], x: int, y: int, width: int = 12, **properties: Any
) -> Json:
    return {
        "type": "metric",
        "x": x,
        "y": y,
        "width": width,
        "height": 6,
        "properties": {
            "title": title,
            "region": "${AWS::Region}",
            "view": "timeSeries",
            "stacked": False,
            "period": FIVE_MINUTES,
            "stat": "Sum",
            "metrics": metrics,
            **properties,
        },
    }


def dashboard_body(w: Watched, alarm_ids: list[str]) -> dict[str, Any]:
    """The dashboard JSON (a `Fn::Sub` string: `${X}` are CloudFormation references)."""
    widgets: list[Json] = [
        {
            "type": "text",
            "x": 0,
            "y": 0,
            "width": 24,
            "height": 2,
            "properties": {
                "markdown": f"## Helpdesk access ({w.stage})\n"
                "Grants move `activation_pending → activated | activation_failed` and "
                "`deletion_pending → removed | deletion_failed`. A failed grant is retried with "
                "`POST .../retry`. Runbook: `docs/operations.md`."
            },
        },
        _widget(
            "Grants",
            [
                _service_metric(w, "GrantsRequested"),
                _service_metric(w, "GrantsActivated"),
                _service_metric(w, "GrantsFailed", color="#d62728"),
                _service_metric(w, "GrantsRemoved"),
            ],
            0,
            2,
        ),
        _widget(
            "Activation time (request → activated), seconds",
            [
                _service_metric(w, "ActivationSeconds", stat="p50", label="p50"),
                _service_metric(w, "ActivationSeconds", stat="p90", label="p90"),
                _service_metric(w, "ActivationSeconds", stat="Maximum", label="max"),
            ],
            12,
            2,
        ),
        _widget(
            "Jira calls by outcome",
            [
                [
                    {
                        "expression": f"SEARCH('{{{w.namespace},outcome,service}} "
                        "MetricName=\"JiraCalls\"', 'Sum', 300)",
                        "id": "calls",
                        "label": "",
                    }
                ]
            ],
            0,
            8,
        ),
        _widget(
            "Jira throttled (429)",
            [_service_metric(w, "JiraThrottled", color="#ff7f0e")],
            12,
            8,
            width=6,
        ),
        _widget(
            "Drift found (daily JSM check)",
            [_service_metric(w, "DriftFound", color="#9467bd")],
            18,
            8,
            width=6,
            period=86400,
        ),
    ]
    y = 14
    for index, (name, machine_id) in enumerate(sorted(w.state_machines.items())):
        arn = f"${{{machine_id}}}"
        widgets.append(
            _widget(
                f"Executions: {name}",
                [
                    ["AWS/States", "ExecutionsStarted", "StateMachineArn", arn],
                    ["AWS/States", "ExecutionsSucceeded", "StateMachineArn", arn],
                    [
                        "AWS/States",
                        "ExecutionsFailed",
                        "StateMachineArn",
                        arn,
                        {"color": "#d62728"},
                    ],
                    ["AWS/States", "ExecutionsTimedOut", "StateMachineArn", arn],
                    ["AWS/States", "ExecutionThrottled", "StateMachineArn", arn],
                ],
                12 * (index % 2),
                y + 6 * (index // 2),
            )
        )
    y += 6 * ((len(w.state_machines) + 1) // 2)
    queue = f"${{{w.queue_id}.QueueName}}"
    dead_letters = f"${{{w.dead_letter_queue_id}.QueueName}}"
    widgets += [
        _widget(
            "HR events: queue and dead-letter queue",
            [
                ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", queue],
                [
                    "AWS/SQS",
                    "ApproximateAgeOfOldestMessage",
                    "QueueName",
                    queue,
                    {"yAxis": "right"},
                ],
                [
                    "AWS/SQS",
                    "ApproximateNumberOfMessagesVisible",
                    "QueueName",
                    dead_letters,
                    {"label": "dead letters", "color": "#d62728"},
                ],
            ],
            0,
            y,
            stat="Maximum",
        ),
        _widget(
            "API",
            [
                ["AWS/ApiGateway", "Count", "ApiName", w.api_name, "Stage", w.api_stage],
                ["AWS/ApiGateway", "4XXError", "ApiName", w.api_name, "Stage", w.api_stage],
                [
                    "AWS/ApiGateway",
                    "5XXError",
                    "ApiName",
                    w.api_name,
                    "Stage",
                    w.api_stage,
                    {"color": "#d62728"},
                ],
                [
                    "AWS/ApiGateway",
                    "Latency",
                    "ApiName",
                    w.api_name,
                    "Stage",
                    w.api_stage,
                    {"stat": "p90", "yAxis": "right", "label": "latency p90 (ms)"},
                ],
            ],
            12,
            y,
        ),
        _widget(
            "Lambda errors by function",
            [
                ["AWS/Lambda", "Errors", "FunctionName", f.function_name, {"label": f.name}]
                for f in w.functions
            ],
            0,
            y + 6,
        ),
        _widget(
            "Lambda throttles and duration p90 by function",
            [
                ["AWS/Lambda", "Throttles", "FunctionName", f.function_name, {"label": f.name}]
                for f in w.functions
            ]
            + [
                [
                    "AWS/Lambda",
                    "Duration",
                    "FunctionName",
                    f.function_name,
                    {"stat": "p90", "yAxis": "right", "label": f"{f.name} p90 ms"},
                ]
                for f in w.functions
            ],
            12,
            y + 6,
        ),
        {
            "type": "alarm",
            "x": 0,
            "y": y + 12,
            "width": 24,
            "height": 3,
            "properties": {
                "title": "Alarms",
                "alarms": [f"${{{alarm_id}.Arn}}" for alarm_id in alarm_ids],
            },
        },
        {
            "type": "log",
            "x": 0,
            "y": y + 15,
            "width": 24,
            "height": 6,
            "properties": {
                "title": "Latest failed grants",
                "region": "${AWS::Region}",
                "view": "table",
                "query": " | ".join(f"SOURCE '{f.log_group_name}'" for f in w.functions)
                + " | "
                + QUERIES["Failed grants today"]
                .replace("\n", " ")
                .replace("limit 1000", "limit 20"),
            },
        },
    ]
    return {"start": "-PT6H", "widgets": widgets}


def dashboard(w: Watched, alarm_ids: list[str]) -> Json:
    return {
        "Type": "AWS::CloudWatch::Dashboard",
        "Properties": {
            "DashboardName": w.prefix,
            "DashboardBody": {"Fn::Sub": json.dumps(dashboard_body(w, alarm_ids))},
        },
    }


def alarm_topic(topic_id: str, prefix: str) -> dict[str, Json]:
    """The topic every alarm notifies, with an email subscription when `AlarmEmail` is set."""
    return {
        topic_id: {
            "Type": "AWS::SNS::Topic",
            "Properties": {"TopicName": f"{prefix}-alarms", "DisplayName": f"{prefix} alarms"},
        },
        f"{topic_id}EmailSubscription": {
            "Type": "AWS::SNS::Subscription",
            "Condition": "HasAlarmEmail",
            "Properties": {
                "TopicArn": {"Ref": topic_id},
                "Protocol": "email",
                "Endpoint": {"Ref": "AlarmEmail"},
            },
        },
    }


def monitoring(w: Watched) -> dict[str, Json]:
    """Every monitoring resource: topic, alarms, dashboard, saved queries."""
    resources = alarm_topic(w.topic_id, w.prefix)
    found = alarms(w)
    resources.update(found)
    resources["Dashboard"] = dashboard(w, sorted(found))
    resources.update(query_definitions(w))
    return resources
