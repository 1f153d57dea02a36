"""The app's Lambda functions as `chalice package` will name them, read from Chalice's own graph.

`chalice package` decides the logical ids (`APIHandler`, `EnsureCustomer`, ...) and the role of
each function. Reading them from the same `ApplicationGraphBuilder` it uses means a handler added
to `app.py` (a schedule, an SQS consumer, another workflow task) is picked up by the template
without anyone listing it here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from chalice.cli.factory import CLIFactory
from chalice.deploy import models
from chalice.deploy.appgraph import ApplicationGraphBuilder, DependencyBuilder
from chalice.utils import to_cfn_resource_name

from .resources import ROOT

API_HANDLER = "api_handler"


@dataclass(frozen=True)
class Function:
    """One Lambda function of the packaged app."""

    name: str  # Chalice's name: "ensure_customer", "api_handler", "sweep_stalled_grants"
    logical_id: str  # its resource in the template: "EnsureCustomer", "APIHandler"
    role_id: str  # the role Chalice makes for it (autogen_policy false: one role per function)
    kind: str  # "api", "task" (`@app.lambda_function`), "schedule", "sqs", "sns", ...
    function_name: str  # the physical name we give it: "helpdesk-access-dev-ensure_customer"
    timeout: int  # seconds, from .chalice/config.json
    sqs_event_ids: tuple[str, ...] = ()  # SAM event keys of its SQS subscriptions

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_group_id(self) -> str:
        return f"{self.logical_id}LogGroup"

    @property
    def policy_id(self) -> str:
        return f"{self.logical_id}Access"

    @property
    def is_workflow_task(self) -> bool:
        """Workflow tasks raise typed errors on purpose (the ASL retries or catches them)."""
        return self.kind == "task"


_EVENT_KINDS: dict[type[models.Model], str] = {
    models.ScheduledEvent: "schedule",
    models.CloudWatchEvent: "cloudwatch_event",
    models.SQSEventSource: "sqs",
    models.SNSLambdaSubscription: "sns",
    models.S3BucketNotification: "s3",
    models.KinesisEventSource: "kinesis",
    models.DynamoDBEventSource: "dynamodb_stream",
}


def app_functions(stage: str, project_dir: Path = ROOT) -> list[Function]:
    """Every Lambda function `chalice package --stage <stage>` generates, in a stable order."""
    config = CLIFactory(str(project_dir)).create_config_obj(chalice_stage_name=stage)
    application = ApplicationGraphBuilder().build(config, stage)
    graph = DependencyBuilder().build_dependencies(application)

    kinds: dict[str, str] = {}
    sqs_events: dict[str, list[str]] = {}
    for resource in graph:
        if isinstance(resource, models.RestAPI):
            kinds[resource.lambda_function.resource_name] = "api"
        elif isinstance(resource, models.FunctionEventSubscriber):
            owner = resource.lambda_function.resource_name
            kinds[owner] = _EVENT_KINDS.get(type(resource), resource.resource_type)
            if isinstance(resource, models.SQSEventSource):
                sqs_events.setdefault(owner, []).append(
                    to_cfn_resource_name(resource.resource_name)
                )

    functions = []
    for resource in graph:
        if not isinstance(resource, models.LambdaFunction):
            continue
        name = resource.resource_name
        role = resource.role
        if not isinstance(role, models.ManagedIAMRole):
            raise ValueError(
                f"{name}: the template expects Chalice to manage one role per function"
            )
        functions.append(
            Function(
                name=name,
                logical_id="APIHandler" if name == API_HANDLER else to_cfn_resource_name(name),
                role_id=to_cfn_resource_name(role.resource_name),
                kind=kinds.get(name, "task"),
                function_name=resource.function_name,
                timeout=resource.timeout,
                sqs_event_ids=tuple(sqs_events.get(name, [])),
            )
        )
    return sorted(functions, key=lambda f: f.logical_id)
