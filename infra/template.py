"""Builds the CloudFormation that `chalice package --merge-template` merges into the app's template.

Chalice generates the functions, their roles, the REST API and the schedule. This module adds
everything else, from the same definitions the local stack uses (`infra/resources.py`: tables
from the PynamoDB models, the ASL files, the task functions of each state machine), and patches
the Chalice resources by logical id: Chalice deep-merges this template into its own (dicts merge,
lists replace), so `{"APIHandler": {"Properties": {"Environment": ...}}}` only adds keys.

Physical names are fixed per stage (`helpdesk-access-<stage>-…`): policies and environment
variables can then name state machines and log groups without `Ref`, which would make cycles
(a state machine refers to its task functions, whose environment refers to the state machine).

Usage: `python -m infra.template --stage dev` prints the merge template.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from . import access, resources
from .functions import Function, app_functions
from .monitoring import Watched, monitoring

Json = dict[str, Any]

APP_NAME = "helpdesk-access"
API_GATEWAY_STAGE = "api"  # .chalice/config.json api_gateway_stage


@dataclass(frozen=True)
class StageSettings:
    log_retention_days: int
    api_rate_limit: float  # requests per second, steady, over the whole stage
    api_burst_limit: int


# Audit questions reach back further in prod; the activity table keeps everything regardless.
# The console's backend is the API's one caller: prod leaves room for a batch of grant POSTs
# (SPEC: ≤ 100 per batch) on top of its reads; dev is a few people clicking.
STAGES: dict[str, StageSettings] = {
    "dev": StageSettings(log_retention_days=30, api_rate_limit=20, api_burst_limit=40),
    "prod": StageSettings(log_retention_days=365, api_rate_limit=100, api_burst_limit=200),
}

# The setting (chalicelib/config.py) that carries each state machine's ARN.
STATE_MACHINE_ENV = {
    "grant-activation": "HELPDESK_ACTIVATION_STATE_MACHINE_ARN",
    "grant-removal": "HELPDESK_REMOVAL_STATE_MACHINE_ARN",
}
SECRET_IDS = {"jira_token": "JiraTokenSecret", "jwt": "JwtSecret", "hr_webhook": "HrWebhookSecret"}
SECRET_ENV = {
    "jira_token": "HELPDESK_JIRA_TOKEN_SECRET_ARN",
    "jwt": "HELPDESK_JWT_SECRET_ARN",
    "hr_webhook": "HELPDESK_HR_SECRET_ARN",
}
EVENT_BUS_ID = "EventBus"
HR_QUEUE_ID = "HrEventsQueue"
HR_DEAD_LETTER_QUEUE_ID = "HrEventsDeadLetterQueue"
ALARM_TOPIC_ID = "AlarmTopic"
API_ACCESS_LOG_GROUP_ID = "ApiAccessLogGroup"
TWO_WEEKS = 14 * 24 * 3600
API_GATEWAY_TIMEOUT_SECONDS = 29  # REST API integration timeout: the API function must end first
DEFAULT_LAMBDA_TIMEOUT = 30  # .chalice/config.json lambda_timeout, what a new consumer gets
# Resources with fixed physical names that outlive the stack (data, audit logs). Retained when
# the stack is deleted or a change replaces them, but removed when the stack's first create
# rolls back, so a failed first deploy does not leave names that block the next one.
_RETAINED = {"DeletionPolicy": "RetainExceptOnCreate", "UpdateReplacePolicy": "Retain"}


@dataclass(frozen=True)
class Stack:
    """Names shared by every part of one stage's template."""

    stage: str
    functions: list[Function]
    name_prefix: str | None = None  # instead of `helpdesk-access-<stage>` (the local stack's)

    @property
    def prefix(self) -> str:
        return self.name_prefix or f"{APP_NAME}-{self.stage}"

    @property
    def namespace(self) -> str:
        """The metrics namespace (`HELPDESK_METRICS_NAMESPACE`), `HelpdeskAccess-<stage>`."""
        return f"HelpdeskAccess-{self.stage}"

    @property
    def settings(self) -> StageSettings:
        return STAGES[self.stage]

    def table_name(self, key: str) -> str:
        return f"{self.prefix}-{key}"

    def state_machine_name(self, name: str) -> str:
        return f"{self.prefix}-{name}"

    @property
    def names(self) -> access.Names:
        return access.Names(
            state_machine_names={
                m: self.state_machine_name(m) for m in resources.STATE_MACHINE_IDS
            },
            secret_ids=SECRET_IDS,
            event_bus_id=EVENT_BUS_ID,
            hr_queue_id=HR_QUEUE_ID,
            mail_configuration_set=self.prefix,
        )


# --- parameters -----------------------------------------------------------------------------

PARAMETERS: Json = {
    "JiraUrl": {
        "Type": "String",
        "Description": "The JSM Cloud site, e.g. https://acme.atlassian.net",
        "AllowedPattern": "^https://[^/]+$",
    },
    "JiraEmail": {
        "Type": "String",
        "Description": "The JSM bot account whose API token is in the Jira token secret",
        "AllowedPattern": "^[^@\\s]+@[^@\\s]+$",
    },
    "PortalUrl": {
        "Type": "String",
        "Default": "",
        "Description": "The JSM customer portal base for email links (empty: the Jira URL)",
    },
    "MailSender": {
        "Type": "String",
        "Description": "From address of the service's emails; its domain becomes the SES identity",
        "AllowedPattern": "^[^@\\s]+@[^@\\s]+$",
    },
    "SupportTeamEmail": {
        "Type": "String",
        "Description": "Who is told when vendor support access is switched on or off",
        "AllowedPattern": "^[^@\\s]+@[^@\\s]+$",
    },
    "AlarmEmail": {
        "Type": "String",
        "Default": "",
        "Description": "Subscribed to the alarm topic when set (confirm the email AWS sends)",
    },
    "MailIdentityExists": {
        "Type": "String",
        "Default": "true",
        "AllowedValues": ["true", "false"],
        "Description": "true: MailSender's domain is already an SES identity in this account and "
        "region (used as it is); false: the stack creates it (DKIM records in the outputs)",
    },
}

CONDITIONS: Json = {
    "HasPortalUrl": {"Fn::Not": [{"Fn::Equals": [{"Ref": "PortalUrl"}, ""]}]},
    "HasAlarmEmail": {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmEmail"}, ""]}]},
    # Creating an identity that exists fails the whole deploy: SES has one per domain and region.
    "CreatesMailIdentity": {"Fn::Equals": [{"Ref": "MailIdentityExists"}, "false"]},
}


# --- data -----------------------------------------------------------------------------------


def tables(stack: Stack) -> dict[str, Json]:
    """One `AWS::DynamoDB::Table` per PynamoDB model (on demand, PITR, deletion protection)."""
    found: dict[str, Json] = {}
    for key, properties in sorted(resources.tables().items()):
        name = stack.table_name(key)
        props: Json = {
            "TableName": name,
            **properties,
            "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
            "DeletionProtectionEnabled": True,
            "SSESpecification": {"SSEEnabled": True},
        }
        if key == access.APPEND_ONLY_TABLE:
            props["ResourcePolicy"] = {"PolicyDocument": access.append_only_resource_policy(name)}
        found[resources.TABLE_IDS[key]] = {
            "Type": "AWS::DynamoDB::Table",
            # The activity table is the audit record; none of them is dropped with the stack.
            # Deletion protection also holds on a rolled-back first create: `make deploy`
            # removes such an empty table before creating the stack again (infra/deploy.py).
            **_RETAINED,
            "Properties": props,
        }
    return found


# --- workflows ------------------------------------------------------------------------------


def _substitutions(name: str, function_ids: set[str]) -> Json:
    """`{"EnsureCustomerFunctionArn": {"Fn::GetAtt": ["EnsureCustomer", "Arn"]}, ...}`."""
    definition = resources.state_machine_definition(name)
    found = resources.placeholders(definition)
    expected = {f"{task}FunctionArn" for task in resources.TASK_FUNCTIONS[name]}
    if found != expected:
        raise ValueError(
            f"{name}.asl.json placeholders {sorted(found)} differ from "
            f"TASK_FUNCTIONS {sorted(expected)}"
        )
    missing = set(resources.TASK_FUNCTIONS[name]) - function_ids
    if missing:
        raise ValueError(f"{name} calls functions the app does not define: {sorted(missing)}")
    return {
        f"{task}FunctionArn": {"Fn::GetAtt": [task, "Arn"]}
        for task in resources.TASK_FUNCTIONS[name]
    }


def state_machines(stack: Stack) -> dict[str, Json]:
    """Each `statemachines/*.asl.json` as a STANDARD state machine with its own role and logs."""
    function_ids = {f.logical_id for f in stack.functions}
    found: dict[str, Json] = {}
    for name, machine_id in sorted(resources.STATE_MACHINE_IDS.items()):
        role_id = f"{machine_id}Role"
        log_group_id = f"{machine_id}LogGroup"
        tasks = resources.TASK_FUNCTIONS[name]
        found[log_group_id] = _log_group(
            f"/aws/vendedlogs/states/{stack.state_machine_name(name)}",
            stack.settings.log_retention_days,
        )
        found[role_id] = {
            "Type": "AWS::IAM::Role",
            "Properties": {
                "AssumeRolePolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "states.amazonaws.com"},
                            "Action": "sts:AssumeRole",
                            "Condition": {
                                "StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
                            },
                        }
                    ],
                },
                # Inline, so the role can already do all this when the state machine is created
                # (Step Functions checks log delivery at creation).
                "Policies": [
                    {
                        "PolicyName": "RunTasks",
                        "PolicyDocument": {
                            "Version": "2012-10-17",
                            "Statement": [
                                {
                                    "Sid": "InvokeTasks",
                                    "Effect": "Allow",
                                    "Action": ["lambda:InvokeFunction"],
                                    "Resource": [{"Fn::GetAtt": [t, "Arn"]} for t in tasks]
                                    + [{"Fn::Sub": f"${{{t}.Arn}}:*"} for t in tasks],
                                },
                                {
                                    # Vended log delivery has no resource-level permissions.
                                    "Sid": "DeliverErrorLogs",
                                    "Effect": "Allow",
                                    "Action": [
                                        "logs:CreateLogDelivery",
                                        "logs:DeleteLogDelivery",
                                        "logs:DescribeLogGroups",
                                        "logs:DescribeResourcePolicies",
                                        "logs:GetLogDelivery",
                                        "logs:ListLogDeliveries",
                                        "logs:PutResourcePolicy",
                                        "logs:UpdateLogDelivery",
                                    ],
                                    "Resource": "*",
                                },
                                {
                                    "Sid": "WriteTraces",
                                    "Effect": "Allow",
                                    "Action": [
                                        "xray:GetSamplingRules",
                                        "xray:GetSamplingTargets",
                                        "xray:PutTelemetryRecords",
                                        "xray:PutTraceSegments",
                                    ],
                                    "Resource": "*",
                                },
                            ],
                        },
                    }
                ],
            },
        }
        found[machine_id] = {
            "Type": "AWS::StepFunctions::StateMachine",
            "Properties": {
                "StateMachineName": stack.state_machine_name(name),
                "StateMachineType": "STANDARD",
                "Definition": resources.state_machine_definition(name),
                "DefinitionSubstitutions": _substitutions(name, function_ids),
                "RoleArn": {"Fn::GetAtt": [role_id, "Arn"]},
                # ERROR without execution data: failures are visible, emails and names are not.
                "LoggingConfiguration": {
                    "Level": "ERROR",
                    "IncludeExecutionData": False,
                    "Destinations": [
                        {
                            "CloudWatchLogsLogGroup": {
                                "LogGroupArn": {"Fn::GetAtt": [log_group_id, "Arn"]}
                            }
                        }
                    ],
                },
                "TracingConfiguration": {"Enabled": True},
            },
        }
    return found


# --- messaging, email, secrets ----------------------------------------------------------------


# Said explicitly (cfn-lint I3011): these go with the stack; tables and log groups are retained.
_TRANSIENT = {"DeletionPolicy": "Delete", "UpdateReplacePolicy": "Delete"}


def hr_queues(stack: Stack) -> dict[str, Json]:
    """The HR events queue (SPEC §4) and its dead-letter queue (after 3 receives)."""
    # AWS's rule for Lambda consumers: visibility ≥ 6 × the consumer's timeout (not the drift
    # job's 15 minutes: a message a consumer failed would wait that long to come back).
    consumers = [f.timeout for f in stack.functions if f.sqs_event_ids]
    visibility = 6 * max(consumers, default=DEFAULT_LAMBDA_TIMEOUT)
    return {
        HR_DEAD_LETTER_QUEUE_ID: {
            "Type": "AWS::SQS::Queue",
            **_TRANSIENT,
            "Properties": {
                "QueueName": f"{stack.prefix}-hr-events-dlq",
                "MessageRetentionPeriod": TWO_WEEKS,
                "SqsManagedSseEnabled": True,
            },
        },
        HR_QUEUE_ID: {
            "Type": "AWS::SQS::Queue",
            **_TRANSIENT,
            "Properties": {
                "QueueName": f"{stack.prefix}-hr-events",
                "VisibilityTimeout": visibility,
                "MessageRetentionPeriod": TWO_WEEKS,
                "SqsManagedSseEnabled": True,
                "RedrivePolicy": {
                    "deadLetterTargetArn": {"Fn::GetAtt": [HR_DEAD_LETTER_QUEUE_ID, "Arn"]},
                    "maxReceiveCount": resources.HR_QUEUE_MAX_RECEIVES,
                },
            },
        },
    }


def event_bus(stack: Stack) -> dict[str, Json]:
    return {EVENT_BUS_ID: {"Type": "AWS::Events::EventBus", "Properties": {"Name": stack.prefix}}}


def mail(stack: Stack) -> dict[str, Json]:
    """The SES domain identity of `MailSender`, and a configuration set counting its emails."""
    return {
        "MailConfigurationSet": {
            "Type": "AWS::SES::ConfigurationSet",
            "Properties": {"Name": stack.prefix},
        },
        "MailEventsToCloudWatch": {
            "Type": "AWS::SES::ConfigurationSetEventDestination",
            "Properties": {
                "ConfigurationSetName": {"Ref": "MailConfigurationSet"},
                "EventDestination": {
                    "Name": "cloudwatch",
                    "Enabled": True,
                    "MatchingEventTypes": ["send", "reject", "bounce", "complaint", "delivery"],
                    "CloudWatchDestination": {
                        "DimensionConfigurations": [
                            {
                                "DimensionName": "ses:configuration-set",
                                "DimensionValueSource": "messageTag",
                                "DefaultDimensionValue": stack.prefix,
                            }
                        ]
                    },
                },
            },
        },
        "MailIdentity": {
            "Type": "AWS::SES::EmailIdentity",
            "Condition": "CreatesMailIdentity",
            "Properties": {
                "EmailIdentity": {"Fn::Select": [1, {"Fn::Split": ["@", {"Ref": "MailSender"}]}]},
                # Applies to every email sent from the identity, so the code names no set.
                "ConfigurationSetAttributes": {
                    "ConfigurationSetName": {"Ref": "MailConfigurationSet"}
                },
            },
        },
    }


def secrets(stack: Stack) -> dict[str, Json]:
    """The three secrets, created with random values: operators put the real ones (runbook)."""
    described = {
        "jira_token": ("jira-api-token", "JSM API token of the bot account (put the real one)"),
        "jwt": ("jwt-signing-key", "HS256 key the project console signs its JWTs with"),
        "hr_webhook": ("hr-webhook-secret", "HMAC key HR systems sign webhook bodies with"),
    }
    return {
        SECRET_IDS[key]: {
            "Type": "AWS::SecretsManager::Secret",
            # Re-created with a new value if the stack goes: the real values live elsewhere too
            # (JSM, the console, HR systems) and are put again by the runbook.
            **_TRANSIENT,
            "Properties": {
                "Name": f"{stack.prefix}/{slug}",
                "Description": description,
                "GenerateSecretString": {"PasswordLength": 64, "ExcludePunctuation": True},
            },
        }
        for key, (slug, description) in described.items()
    }


# --- the Chalice functions ------------------------------------------------------------------


def environment(stack: Stack) -> Json:
    """Every setting `chalicelib/config.py` reads that has no sensible default in AWS."""
    variables: Json = {
        "HELPDESK_STAGE": stack.stage,
        "HELPDESK_METRICS_NAMESPACE": stack.namespace,
        "HELPDESK_EVENT_BUS": {"Ref": EVENT_BUS_ID},
        "HELPDESK_HR_QUEUE_URL": {"Ref": HR_QUEUE_ID},
        "HELPDESK_JIRA_URL": {"Ref": "JiraUrl"},
        "HELPDESK_JIRA_EMAIL": {"Ref": "JiraEmail"},
        "HELPDESK_PORTAL_URL": {
            "Fn::If": ["HasPortalUrl", {"Ref": "PortalUrl"}, {"Ref": "JiraUrl"}]
        },
        "HELPDESK_MAIL_SENDER": {"Ref": "MailSender"},
        "HELPDESK_SUPPORT_TEAM_EMAIL": {"Ref": "SupportTeamEmail"},
        # SPEC §2's 7 days; a stage that wants another TTL sets it here (hours, may be fractional).
        "HELPDESK_ACCESS_REQUEST_TTL_HOURS": "168",
        # Jira calls per second for the whole service (SPEC §3 pacing; adapts down on 429s):
        # set it to the site's limit; "0" leaves the calls unpaced.
        "HELPDESK_JIRA_RATE_PER_SECOND": "0",
        "POWERTOOLS_LOG_LEVEL": "INFO",
    }
    for key, table_id in sorted(resources.TABLE_IDS.items()):
        variables[f"HELPDESK_{key.upper()}_TABLE"] = {"Ref": table_id}
    for name in sorted(resources.STATE_MACHINE_IDS):
        try:
            variable = STATE_MACHINE_ENV[name]
        except KeyError:
            raise ValueError(f"no setting carries the ARN of state machine {name}") from None
        variables[variable] = access.state_machine_arn(stack.state_machine_name(name))
    for key, secret_id in sorted(SECRET_IDS.items()):
        variables[SECRET_ENV[key]] = {"Ref": secret_id}
    return variables


def _log_group(name: str, retention_days: int) -> Json:
    return {
        "Type": "AWS::Logs::LogGroup",
        **_RETAINED,
        "Properties": {"LogGroupName": name, "RetentionInDays": retention_days},
    }


def functions(stack: Stack) -> dict[str, Json]:
    """Patches of the Chalice functions, plus each one's log group and least-privilege policy."""
    variables = environment(stack)
    found: dict[str, Json] = {}
    for function in stack.functions:
        properties: Json = {
            "FunctionName": function.function_name,
            "Tracing": "Active",
            "Environment": {"Variables": variables},
        }
        if function.sqs_event_ids:
            # The one queue of the service (SPEC §4), whatever name the decorator was given.
            # `Fn::Sub`, the intrinsic Chalice writes there: `chalice package` deep-merges
            # dicts, so any other one would sit beside Chalice's in one invalid dict. Each
            # failed message is reported on its own (Powertools batch processing), so one
            # poison message never makes its whole batch come back (SPEC §4).
            properties["Events"] = {
                event_id: {
                    "Properties": {
                        "Queue": {"Fn::Sub": f"${{{HR_QUEUE_ID}.Arn}}"},
                        "FunctionResponseTypes": ["ReportBatchItemFailures"],
                    }
                }
                for event_id in function.sqs_event_ids
            }
        found[function.logical_id] = {
            # The log group exists before the function can write (or Lambda would create it
            # without retention), and the policy before anything invokes it.
            "DependsOn": [function.log_group_id, function.policy_id],
            "Properties": properties,
        }
        found[function.log_group_id] = _log_group(
            function.log_group_name, stack.settings.log_retention_days
        )
        found[function.policy_id] = access.function_policy(function, stack.names)
    return found


# --- the REST API ---------------------------------------------------------------------------

# API Gateway's own answers (no route, throttled, too large, Lambda failed...) as problem+json.
# The status is fixed per type; MISSING_AUTHENTICATION_TOKEN is what API Gateway answers for an
# unknown route (no authorizer here), so it becomes a 404.
GATEWAY_RESPONSES: dict[str, tuple[int, str | None]] = {
    "MISSING_AUTHENTICATION_TOKEN": (404, "There is no such resource."),
    "RESOURCE_NOT_FOUND": (404, "There is no such resource."),
    "ACCESS_DENIED": (403, None),
    "WAF_FILTERED": (403, None),
    "INVALID_SIGNATURE": (403, None),
    "EXPIRED_TOKEN": (401, None),
    "UNAUTHORIZED": (401, None),
    "BAD_REQUEST_BODY": (400, None),
    "BAD_REQUEST_PARAMETERS": (400, None),
    "REQUEST_TOO_LARGE": (413, None),
    "UNSUPPORTED_MEDIA_TYPE": (415, None),
    "THROTTLED": (429, "Too many requests; retry later."),
    "QUOTA_EXCEEDED": (429, "Too many requests; retry later."),
    "INTEGRATION_FAILURE": (502, "The service failed to answer; it has been logged."),
    "INTEGRATION_TIMEOUT": (504, "The service did not answer in time; it has been logged."),
    "API_CONFIGURATION_ERROR": (500, "An internal error occurred; it has been logged."),
    "AUTHORIZER_FAILURE": (500, "An internal error occurred; it has been logged."),
    "AUTHORIZER_CONFIGURATION_ERROR": (500, "An internal error occurred; it has been logged."),
    # Whatever else API Gateway may answer: the named types above cover the ones it documents.
    "DEFAULT_4XX": (400, None),
    "DEFAULT_5XX": (500, "An internal error occurred; it has been logged."),
}


def _slug(status: int) -> str:
    from chalicelib.api.problems import SLUG_OF_STATUS  # noqa: PLC0415 - the app's own slugs

    return SLUG_OF_STATUS.get(status) or HTTPStatus(status).phrase.lower().replace(" ", "-")


def gateway_responses() -> Json:
    found: Json = {}
    for response_type, (status, detail) in GATEWAY_RESPONSES.items():
        # Mapping templates do simple substitution only; messageString is already JSON-quoted.
        detail_json = json.dumps(detail) if detail else "$context.error.messageString"
        body = (
            f'{{"type": "/problems/{_slug(status)}", "title": "{HTTPStatus(status).phrase}", '
            f'"status": {status}, "detail": {detail_json}}}'
        )
        found[response_type] = {
            "statusCode": str(status),
            "responseParameters": {
                "gatewayresponse.header.Content-Type": "'application/problem+json'"
            },
            "responseTemplates": {"application/json": body},
        }
    return found


# One JSON line per request. No headers or bodies: tokens and emails stay out.
ACCESS_LOG_FORMAT = json.dumps(
    {
        "requestId": "$context.requestId",
        "requestTime": "$context.requestTime",
        "sourceIp": "$context.identity.sourceIp",
        "httpMethod": "$context.httpMethod",
        "resourcePath": "$context.resourcePath",
        "path": "$context.path",
        "status": "$context.status",
        "responseLength": "$context.responseLength",
        "responseLatency": "$context.responseLatency",
        "integrationLatency": "$context.integrationLatency",
        "integrationStatus": "$context.integrationStatus",
        "errorType": "$context.error.responseType",
        "xrayTraceId": "$context.xrayTraceId",
    },
    separators=(",", ":"),
)


def rest_api(stack: Stack) -> dict[str, Json]:
    """The API's stage: throttled, traced and access-logged; problem+json for its own errors.

    No CORS: the project console's backend calls the API, browsers never do (docs/decisions.md).
    """
    name = stack.prefix  # one API name per stage, so their metrics do not mix
    settings = stack.settings
    api_function = next((f for f in stack.functions if f.kind == "api"), None)
    if api_function is not None and api_function.timeout >= API_GATEWAY_TIMEOUT_SECONDS:
        raise ValueError(
            f"the API function's timeout ({api_function.timeout} s) must be below API "
            f"Gateway's {API_GATEWAY_TIMEOUT_SECONDS} s (lambda_timeout in .chalice/config.json)"
        )
    return {
        API_ACCESS_LOG_GROUP_ID: _log_group(
            f"/aws/apigateway/{stack.prefix}/access", settings.log_retention_days
        ),
        "RestAPI": {
            "Properties": {
                "Name": name,
                # Any value stops SAM from also deploying a stage named "Stage".
                "OpenApiVersion": "2.0",
                "TracingEnabled": True,
                "MethodSettings": [
                    {
                        "ResourcePath": "/*",
                        "HttpMethod": "*",
                        "ThrottlingRateLimit": settings.api_rate_limit,
                        "ThrottlingBurstLimit": settings.api_burst_limit,
                    }
                ],
                "AccessLogSetting": {
                    "DestinationArn": {"Fn::GetAtt": [API_ACCESS_LOG_GROUP_ID, "Arn"]},
                    "Format": ACCESS_LOG_FORMAT,
                },
                "DefinitionBody": {
                    "info": {"title": name},
                    "x-amazon-apigateway-gateway-responses": gateway_responses(),
                },
            }
        },
    }


# --- the whole merge template ---------------------------------------------------------------


def outputs(stack: Stack) -> Json:
    found: Json = {
        "DashboardUrl": {
            "Value": {
                "Fn::Sub": "https://${AWS::Region}.console.aws.amazon.com/cloudwatch/home"
                f"?region=${{AWS::Region}}#dashboards:name={stack.prefix}"
            }
        },
        "AlarmTopicArn": {"Value": {"Ref": ALARM_TOPIC_ID}},
        "EventBusName": {"Value": {"Ref": EVENT_BUS_ID}},
        "HrEventsQueueUrl": {"Value": {"Ref": HR_QUEUE_ID}},
        "HrEventsDeadLetterQueueUrl": {"Value": {"Ref": HR_DEAD_LETTER_QUEUE_ID}},
        "HrEventsQueueArn": {"Value": {"Fn::GetAtt": [HR_QUEUE_ID, "Arn"]}},
        "HrEventsDeadLetterQueueArn": {"Value": {"Fn::GetAtt": [HR_DEAD_LETTER_QUEUE_ID, "Arn"]}},
    }
    for secret_id in SECRET_IDS.values():
        found[f"{secret_id}Arn"] = {"Value": {"Ref": secret_id}}
    for table_id in resources.TABLE_IDS.values():
        found[f"{table_id}Name"] = {"Value": {"Ref": table_id}}
    for machine_id in resources.STATE_MACHINE_IDS.values():
        found[f"{machine_id}Arn"] = {"Value": {"Ref": machine_id}}
    for n in (1, 2, 3):
        found[f"MailDkimRecord{n}"] = {
            "Condition": "CreatesMailIdentity",
            "Description": "CNAME to publish in the sender domain's DNS (SES Easy DKIM)",
            "Value": {
                "Fn::Join": [
                    " CNAME ",
                    [
                        {"Fn::GetAtt": ["MailIdentity", f"DkimDNSTokenName{n}"]},
                        {"Fn::GetAtt": ["MailIdentity", f"DkimDNSTokenValue{n}"]},
                    ],
                ]
            },
        }
    return found


def build(
    stage: str, app_functions_: list[Function] | None = None, *, prefix: str | None = None
) -> Json:
    """The merge template for `stage` (the functions default to the app's own, via Chalice).

    `prefix` replaces `helpdesk-access-<stage>` in physical names: the local stack builds the
    template with its own names and enforces the very policies it contains (local/iam.py).
    """
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}: one of {sorted(STAGES)}")
    functions_ = app_functions_ if app_functions_ is not None else app_functions(stage)
    stack = Stack(stage, functions_, prefix)
    if not stack.functions:
        raise ValueError("the app defines no Lambda function")
    found: dict[str, Json] = {}
    for part in (
        tables(stack),
        hr_queues(stack),
        event_bus(stack),
        mail(stack),
        secrets(stack),
        functions(stack),
        state_machines(stack),
        rest_api(stack),
        monitoring(
            Watched(
                stage=stage,
                prefix=stack.prefix,
                namespace=stack.namespace,
                api_name=stack.prefix,
                api_stage=API_GATEWAY_STAGE,
                functions=stack.functions,
                state_machines=dict(resources.STATE_MACHINE_IDS),
                queue_id=HR_QUEUE_ID,
                dead_letter_queue_id=HR_DEAD_LETTER_QUEUE_ID,
                topic_id=ALARM_TOPIC_ID,
            )
        ),
    ):
        clash = set(part) & set(found)
        if clash:
            raise ValueError(f"logical ids defined twice: {sorted(clash)}")
        found.update(part)
    return {
        "Description": f"{APP_NAME} ({stage}): helpdesk access API, workflows and monitoring",
        "Parameters": PARAMETERS,
        "Conditions": CONDITIONS,
        "Resources": found,
        "Outputs": outputs(stack),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", default="dev", choices=sorted(STAGES))
    args = parser.parse_args(argv)
    print(json.dumps(build(args.stage), indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
