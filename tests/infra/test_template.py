"""The packaged CloudFormation template: it lints, and it keeps the promises the SPEC makes.

One real `make synth` (vendored zip included) runs once per session into a temporary directory;
every test reads its output. The vendored dependencies are cached in `infra/out/vendor/` (the
first run on a machine downloads the Lambda wheels through pip).
"""

from __future__ import annotations

import fnmatch
import importlib.util
import json
import re
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
from cfnlint.api import ManualArgs, lint

from chalicelib.config import REQUIRED_OUTSIDE_LOCAL, load_settings
from infra import access, deploy, resources, template
from infra.functions import Function, app_functions
from infra.synth import MAX_ZIP_BYTES, SynthResult, synth

ROOT = Path(__file__).resolve().parents[2]
STAGE = "dev"
ACTIVITY_ID = resources.TABLE_IDS["activity"]
ACTIVITY_ARN = f"arn:aws:dynamodb:eu-west-1:123456789012:table/helpdesk-access-{STAGE}-activity"

Json = dict[str, Any]


# --- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> SynthResult:
    return synth(STAGE, out=tmp_path_factory.mktemp("synth"))


@pytest.fixture(scope="session")
def cfn(synthesized: SynthResult) -> Json:
    document: Json = json.loads(Path(synthesized.template).read_text())
    return document


@pytest.fixture(scope="session")
def resources_of(cfn: Json) -> Json:
    found: Json = cfn["Resources"]
    return found


def of_type(resources_: Json, kind: str) -> dict[str, Json]:
    return {rid: body for rid, body in resources_.items() if body["Type"] == kind}


def lint_errors(path: str) -> list[str]:
    # No rule is ignored; informational checks (I...) are included on purpose.
    matches = lint(
        Path(path).read_text(),
        config=ManualArgs(include_checks=["I"], regions=["eu-west-1", "us-east-1"]),
    )
    return [f"{m.rule.id} {m.message} (line {m.linenumber})" for m in matches]


# --- the package ----------------------------------------------------------------------------


def test_template_passes_cfn_lint(synthesized: SynthResult) -> None:
    # Given the synthesized template (SAM transform included) / When linted / Then it is clean
    assert lint_errors(synthesized.template) == []


def test_prod_template_passes_cfn_lint(tmp_path: Path) -> None:
    # Given the prod stage, template only (no vendoring) / When linted / Then it is clean
    result = synth("prod", template_only=True, out=tmp_path)
    assert result.package is None
    assert lint_errors(result.template) == []
    groups = of_type(
        json.loads(Path(result.template).read_text())["Resources"], "AWS::Logs::LogGroup"
    )
    assert {g["Properties"]["RetentionInDays"] for g in groups.values()} == {365}


def test_zip_is_small_and_built_for_lambda(synthesized: SynthResult) -> None:
    # Given the deployment package
    assert synthesized.package is not None
    size = Path(synthesized.package).stat().st_size
    print(f"deployment.zip: {size / 2**20:.2f} MiB, synth {synthesized.seconds:.1f} s")
    names = zipfile.ZipFile(synthesized.package).namelist()
    # Then it stays well under the limit and carries the app and Linux wheels, not boto3
    assert size <= MAX_ZIP_BYTES
    assert "app.py" in names
    assert "chalicelib/store/tables.py" in names
    assert any(
        re.match(r"pydantic_core/_pydantic_core\.cpython-311-aarch64-linux-gnu\.so$", n)
        for n in names
    )
    assert not [n for n in names if n.split("/")[0] in {"boto3", "botocore", "s3transfer"}]


def test_zip_ships_the_runtime_bytecode_of_exactly_its_sources(synthesized: SynthResult) -> None:
    # Given the deployment package (.pyc added by infra.synth.add_bytecode: cold start)
    assert synthesized.package is not None
    archive = zipfile.ZipFile(synthesized.package)
    names = archive.namelist()
    sources = [n for n in names if n.endswith(".py")]
    compiled = [n for n in names if n.endswith(".pyc") or "__pycache__" in n]
    # Then every module has the .pyc CPython 3.11 looks for, and there is no other bytecode
    # (no stray cache of the machine that built it: another Python, or stale sources)
    assert sys.implementation.cache_tag == "cpython-311"
    assert sorted(compiled) == sorted(importlib.util.cache_from_source(n) for n in sources)
    for name in sources:
        pyc = archive.read(importlib.util.cache_from_source(name))
        # And each is 3.11's, hash-based and unchecked (PEP 552 flags 0b01: used without
        # reading the source), compiled from the very source it sits beside
        assert pyc[:4] == importlib.util.MAGIC_NUMBER, name
        assert int.from_bytes(pyc[4:8], "little") == 0b01, name
        assert pyc[8:16] == importlib.util.source_hash(archive.read(name)), name


def test_functions_run_on_arm64_with_a_zip_built_for_it(
    synthesized: SynthResult, resources_of: Json
) -> None:
    # Given every packaged function / Then it runs on Graviton
    functions = of_type(resources_of, "AWS::Serverless::Function")
    assert functions
    for rid, function in functions.items():
        assert function["Properties"]["Architectures"] == ["arm64"], rid
    # And every compiled extension in the zip is an aarch64 (or abi3 aarch64-tagged) build
    assert synthesized.package is not None
    extensions = [n for n in zipfile.ZipFile(synthesized.package).namelist() if n.endswith(".so")]
    assert extensions
    assert [n for n in extensions if "x86_64" in n] == []


def test_only_the_api_function_has_the_api_handler(resources_of: Json) -> None:
    # app.py registers the routes only where Lambda's _HANDLER is the API's (cold start)
    import app  # noqa: PLC0415

    handlers = {
        rid: f["Properties"]["Handler"]
        for rid, f in of_type(resources_of, "AWS::Serverless::Function").items()
    }
    assert handlers.pop("APIHandler") == app.API_HANDLER
    assert app.API_HANDLER not in handlers.values()


def test_zip_leaves_out_the_xray_sdk_and_what_the_runtime_ships(synthesized: SynthResult) -> None:
    # Given the deployment package
    assert synthesized.package is not None
    tops = {n.split("/")[0] for n in zipfile.ZipFile(synthesized.package).namelist()}
    # Then no X-Ray SDK (active tracing needs none) and no copy of botocore's own dependencies
    assert tops & {"aws_xray_sdk", "wrapt"} == set()
    assert tops & {"urllib3", "jmespath", "dateutil", "six.py"} == set()


# --- workflows ------------------------------------------------------------------------------


def test_every_substitution_resolves_to_a_packaged_function(resources_of: Json) -> None:
    machines = of_type(resources_of, "AWS::StepFunctions::StateMachine")
    functions = of_type(resources_of, "AWS::Serverless::Function")
    assert set(machines) == set(resources.STATE_MACHINE_IDS.values())
    for machine in machines.values():
        props = machine["Properties"]
        placeholders = set(re.findall(r"\$\{(\w+)\}", json.dumps(props["Definition"])))
        substitutions = props["DefinitionSubstitutions"]
        assert placeholders == set(substitutions)
        for value in substitutions.values():
            target, attribute = value["Fn::GetAtt"]
            assert target in functions
            assert attribute == "Arn"


def test_state_machines_log_errors_without_execution_data(resources_of: Json) -> None:
    for machine in of_type(resources_of, "AWS::StepFunctions::StateMachine").values():
        props = machine["Properties"]
        assert props["StateMachineType"] == "STANDARD"
        assert props["LoggingConfiguration"]["Level"] == "ERROR"
        assert props["LoggingConfiguration"]["IncludeExecutionData"] is False
        destination = props["LoggingConfiguration"]["Destinations"][0]
        log_group = destination["CloudWatchLogsLogGroup"]["LogGroupArn"]["Fn::GetAtt"][0]
        assert resources_of[log_group]["Type"] == "AWS::Logs::LogGroup"
        assert props["TracingConfiguration"] == {"Enabled": True}


# --- data -----------------------------------------------------------------------------------


def test_every_table_is_on_demand_recoverable_and_protected(resources_of: Json) -> None:
    tables = of_type(resources_of, "AWS::DynamoDB::Table")
    assert set(tables) == set(resources.TABLE_IDS.values())
    for table in tables.values():
        props = table["Properties"]
        assert props["BillingMode"] == "PAY_PER_REQUEST"
        assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
        assert props["DeletionProtectionEnabled"] is True
        # Kept when the stack goes or replaces them; dropped when the first create rolls back
        assert table["DeletionPolicy"] == "RetainExceptOnCreate"
        assert table["UpdateReplacePolicy"] == "Retain"
    idempotency = tables[resources.TABLE_IDS["idempotency"]]["Properties"]
    assert idempotency["TimeToLiveSpecification"] == {
        "AttributeName": "expiration",
        "Enabled": True,
    }


def test_tables_match_the_local_stack_definitions(resources_of: Json) -> None:
    # The same PynamoDB-derived definitions provision moto locally (infra/resources.py).
    for key, expected in resources.tables().items():
        props = resources_of[resources.TABLE_IDS[key]]["Properties"]
        assert {k: props[k] for k in expected} == expected


# --- IAM ------------------------------------------------------------------------------------


def _statements(resources_: Json) -> list[tuple[str, Json]]:
    found = []
    for rid, body in resources_.items():
        props = body.get("Properties", {})
        documents = []
        if body["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            documents.append(props["PolicyDocument"])
        if body["Type"] == "AWS::IAM::Role":
            documents += [p["PolicyDocument"] for p in props.get("Policies", [])]
        for document in documents:
            statements = document["Statement"]
            for statement in statements if isinstance(statements, list) else [statements]:
                found.append((rid, statement))
    return found


def _pattern(resource: Any) -> str:
    """A resource as a glob: the activity table's own references become its ARN."""
    if isinstance(resource, str):
        return resource
    if "Fn::GetAtt" in resource:
        target = resource["Fn::GetAtt"][0]
        return ACTIVITY_ARN if target == ACTIVITY_ID else f"<{target}>"
    if "Fn::Sub" in resource:
        text = resource["Fn::Sub"]
        text = text if isinstance(text, str) else text[0]
        text = text.replace(f"${{{ACTIVITY_ID}.Arn}}", ACTIVITY_ARN)
        return re.sub(r"\$\{[^}]+\}", "*", text)
    return "*"  # anything we cannot read is assumed to cover everything


def _covers_activity_table(statement: Json) -> bool:
    if "NotResource" in statement:
        return True
    resources_ = statement["Resource"]
    for resource in resources_ if isinstance(resources_, list) else [resources_]:
        pattern = _pattern(resource)
        if pattern.startswith(ACTIVITY_ARN) or fnmatch.fnmatchcase(ACTIVITY_ARN, pattern):
            return True
    return False


def _dynamodb_actions(statement: Json) -> set[str]:
    if "NotAction" in statement:
        return {"dynamodb:*"}
    actions = statement["Action"]
    actions = actions if isinstance(actions, list) else [actions]
    return {a for a in actions if a == "*" or a.lower().startswith("dynamodb:")}


def _grants(pattern: str, action: str) -> bool:
    return fnmatch.fnmatch(action.lower(), pattern.lower())


def test_activity_table_is_append_only_for_every_principal(resources_of: Json) -> None:
    granted: set[str] = set()
    for rid, statement in _statements(resources_of):
        if statement["Effect"] != "Allow" or not _covers_activity_table(statement):
            continue
        actions = _dynamodb_actions(statement)
        for forbidden in (*access.APPEND_ONLY_FORBIDDEN, "dynamodb:DeleteTable"):
            assert not any(_grants(a, forbidden) for a in actions), (rid, statement)
        granted |= actions
    # Only exact actions (no wildcard), all of them harmless to existing entries.
    assert granted
    assert granted <= access.APPEND_ONLY_ALLOWED
    # And the table itself refuses updates and deletes, whatever IAM says.
    policy = resources_of[ACTIVITY_ID]["Properties"]["ResourcePolicy"]["PolicyDocument"]
    (deny,) = policy["Statement"]
    assert deny["Effect"] == "Deny"
    assert deny["Principal"] == "*"
    assert {"dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem"} <= set(
        deny["Action"]
    )


def test_each_function_has_its_own_role_and_policy(resources_of: Json) -> None:
    functions = of_type(resources_of, "AWS::Serverless::Function")
    roles = {f["Properties"]["Role"]["Fn::GetAtt"][0] for f in functions.values()}
    assert len(roles) == len(functions)
    attached = {
        body["Properties"]["Roles"][0]["Ref"]
        for body in of_type(resources_of, "AWS::IAM::Policy").values()
    }
    assert roles <= attached
    for rid, statement in _statements(resources_of):
        actions = (
            statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        )
        assert not [a for a in actions if a.endswith(":*") or a == "*"], (rid, statement)
        if statement["Resource"] == "*":
            assert all(a.split(":")[0] in {"xray", "logs"} for a in actions), (rid, statement)


def test_a_function_without_declared_access_fails_the_synth() -> None:
    # Given a handler nobody declared access for
    stranger = Function(
        "export_everything", "ExportEverything", "ExportEverythingRole", "task", "x", 30
    )
    # When the template is built / Then it refuses
    with pytest.raises(ValueError, match="no declared access"):
        template.build(STAGE, [*app_functions(STAGE), stranger])


def test_an_sqs_consumer_reads_the_hr_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a future HR consumer (SPEC §4) subscribed to a queue
    consumer = Function(
        "hr_events",
        "HrEvents",
        "HrEventsRole",
        "sqs",
        "helpdesk-access-dev-hr_events",
        30,
        sqs_event_ids=("HrEventsSqsEventSource",),
    )
    monkeypatch.setitem(access.ACCESS, "hr_events", access.Access(tables={"grants": access.READ}))
    # When the template is built
    built = template.build(STAGE, [*app_functions(STAGE), consumer])["Resources"]
    # Then its event reads the HR queue, its policy may consume it, and its failures alarm
    event = built["HrEvents"]["Properties"]["Events"]["HrEventsSqsEventSource"]
    assert event["Properties"]["Queue"] == {"Fn::Sub": f"${{{template.HR_QUEUE_ID}.Arn}}"}
    assert event["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    statements = built["HrEventsAccess"]["Properties"]["PolicyDocument"]["Statement"]
    assert any("sqs:ReceiveMessage" in s["Action"] for s in statements)
    assert "HrEventsErrorsAlarm" in built


# --- functions ------------------------------------------------------------------------------

LOCAL_ONLY_SETTINGS = {
    "HELPDESK_ACCOUNT_ID",  # only builds the local default ARNs
    "HELPDESK_RESOURCE_PREFIX",  # idem
    "HELPDESK_JIRA_PORT",  # the JSM emulator
    "HELPDESK_JIRA_TIMEOUT_SECONDS",  # the defaults hold in AWS too
    "HELPDESK_HELPDESK_CACHE_SECONDS",
    "HELPDESK_HELPDESK_TIMEOUT_SECONDS",
}
PLAINTEXT_SECRETS = {"HELPDESK_JWT_SECRET", "HELPDESK_JIRA_TOKEN", "HELPDESK_HR_WEBHOOK_SECRET"}


def test_every_function_gets_every_setting_and_no_plaintext_secret(resources_of: Json) -> None:
    read = set(re.findall(r'"(HELPDESK_[A-Z_]+)"', (ROOT / "chalicelib" / "config.py").read_text()))
    wanted = read - LOCAL_ONLY_SETTINGS - PLAINTEXT_SECRETS
    for rid, function in of_type(resources_of, "AWS::Serverless::Function").items():
        variables = function["Properties"]["Environment"]["Variables"]
        assert wanted <= set(variables), (rid, sorted(wanted - set(variables)))
        assert not PLAINTEXT_SECRETS & set(variables)
        assert variables["HELPDESK_METRICS_NAMESPACE"] == f"HelpdeskAccess-{STAGE}"
        assert variables["HELPDESK_STAGE"] == STAGE


@pytest.mark.parametrize("stage", sorted(template.STAGES))
def test_every_setting_a_deployed_function_needs_is_in_its_environment(stage: str) -> None:
    # Given the settings a function outside the local stage refuses to start without
    # When the template's function environment is built / Then it has each of them
    variables = template.environment(template.Stack(stage, []))
    assert set(REQUIRED_OUTSIDE_LOCAL) <= set(variables)
    # And the deployed stage's settings load from it (values as CloudFormation resolves them)
    resolved = {
        name: value if isinstance(value, str) else "resolved" for name, value in variables.items()
    }
    assert load_settings(resolved).stage == stage


def test_fixed_name_tables_and_log_groups_do_not_block_the_next_create(resources_of: Json) -> None:
    # Given every resource whose physical name we fix and keep beyond the stack
    kept = {
        rid: body
        for rid, body in resources_of.items()
        if body["Type"] in ("AWS::DynamoDB::Table", "AWS::Logs::LogGroup")
    }
    assert kept
    for rid, body in kept.items():
        # Then a rolled-back first create removes it, anything later keeps it
        assert body["DeletionPolicy"] == "RetainExceptOnCreate", rid
        assert body["UpdateReplacePolicy"] == "Retain", rid
    assert not [rid for rid, b in resources_of.items() if b.get("DeletionPolicy") == "Retain"]


def test_every_function_logs_to_a_retained_group(resources_of: Json) -> None:
    for rid, function in of_type(resources_of, "AWS::Serverless::Function").items():
        log_group = resources_of[f"{rid}LogGroup"]
        name = function["Properties"]["FunctionName"]
        assert log_group["Properties"]["LogGroupName"] == f"/aws/lambda/{name}"
        assert (
            log_group["Properties"]["RetentionInDays"] == template.STAGES[STAGE].log_retention_days
        )
        assert f"{rid}LogGroup" in function["DependsOn"]
        assert function["Properties"]["Tracing"] == "Active"


# --- API Gateway ------------------------------------------------------------------------------


def test_gateway_errors_are_problem_json(resources_of: Json) -> None:
    body = resources_of["RestAPI"]["Properties"]["DefinitionBody"]
    responses = body["x-amazon-apigateway-gateway-responses"]
    assert responses["MISSING_AUTHENTICATION_TOKEN"]["statusCode"] == "404"
    assert {"DEFAULT_4XX", "DEFAULT_5XX", "THROTTLED", "INTEGRATION_TIMEOUT"} <= set(responses)
    for response in responses.values():
        header = response["responseParameters"]["gatewayresponse.header.Content-Type"]
        assert header == "'application/problem+json'"
        rendered = response["responseTemplates"]["application/json"].replace(
            "$context.error.messageString", '"Missing Authentication Token"'
        )
        problem = json.loads(rendered)
        assert set(problem) == {"type", "title", "status", "detail"}
        assert problem["type"].startswith("/problems/")
        assert str(problem["status"]) == response["statusCode"]
    assert not [r for r in resources_of.values() if r["Type"] == "AWS::ApiGateway::Authorizer"]


def test_the_api_stage_is_throttled_traced_and_access_logged(resources_of: Json) -> None:
    props = resources_of["RestAPI"]["Properties"]
    assert props["TracingEnabled"] is True
    (everything,) = props["MethodSettings"]
    assert (everything["ResourcePath"], everything["HttpMethod"]) == ("/*", "*")
    assert everything["ThrottlingRateLimit"] == template.STAGES[STAGE].api_rate_limit
    assert everything["ThrottlingBurstLimit"] == template.STAGES[STAGE].api_burst_limit
    destination = props["AccessLogSetting"]["DestinationArn"]
    (group_id, attribute) = destination["Fn::GetAtt"]
    assert attribute == "Arn"
    assert resources_of[group_id]["Type"] == "AWS::Logs::LogGroup"
    fields = json.loads(props["AccessLogSetting"]["Format"])
    assert {"requestId", "status", "resourcePath", "responseLatency"} <= set(fields)
    # No header or body: tokens and emails stay out of the access log
    assert "Authorization" not in props["AccessLogSetting"]["Format"]


def test_the_api_function_times_out_before_api_gateway(resources_of: Json) -> None:
    # API Gateway gives up after 29 s: the function must stop (and log) first
    timeout = resources_of["APIHandler"]["Properties"]["Timeout"]
    assert 0 < timeout < template.API_GATEWAY_TIMEOUT_SECONDS


def test_the_drift_job_has_the_time_its_work_needs(resources_of: Json) -> None:
    # Every project's organization is read from JSM, page by page: 30 s would cut it short
    assert resources_of["CheckDrift"]["Properties"]["Timeout"] == 900
    # And the HR queue's visibility follows its consumers, not the slowest function
    queue = resources_of[template.HR_QUEUE_ID]["Properties"]
    assert queue["VisibilityTimeout"] == 6 * template.DEFAULT_LAMBDA_TIMEOUT


def test_the_hr_consumer_reads_the_stacks_queue_reporting_each_failed_message(
    resources_of: Json,
) -> None:
    # Given the packaged template (Chalice's SQS event merged with ours)
    [event] = resources_of["HrEvents"]["Properties"]["Events"].values()
    # Then it reads the stack's HR queue, 10 at a time, and reports failed messages one by one
    assert event["Properties"]["Queue"] == {"Fn::Sub": f"${{{template.HR_QUEUE_ID}.Arn}}"}
    assert event["Properties"]["BatchSize"] == 10
    assert event["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_the_api_is_server_to_server_without_cors(resources_of: Json) -> None:
    # docs/decisions.md: the console's backend calls the API, browsers never do
    body = resources_of["RestAPI"]["Properties"]["DefinitionBody"]
    methods = {method for path in body["paths"].values() for method in path}
    assert "options" not in methods
    assert "Access-Control-" not in json.dumps(body)
    import app  # noqa: PLC0415

    assert not [
        path
        for path, methods_ in app.app.routes.items()
        for entry in methods_.values()
        if entry.cors
    ]


def test_the_mail_identity_is_created_only_when_asked(cfn: Json) -> None:
    # Given an account whose sender domain is already an SES identity (the default)
    parameter = cfn["Parameters"]["MailIdentityExists"]
    assert parameter["Default"] == "true"
    assert parameter["AllowedValues"] == ["true", "false"]
    # Then the stack creates the identity (and outputs its DKIM records) only on request
    assert cfn["Resources"]["MailIdentity"]["Condition"] == "CreatesMailIdentity"
    dkim = {k: v for k, v in cfn["Outputs"].items() if k.startswith("MailDkimRecord")}
    assert dkim
    assert {v["Condition"] for v in dkim.values()} == {"CreatesMailIdentity"}
    assert cfn["Conditions"]["CreatesMailIdentity"] == {
        "Fn::Equals": [{"Ref": "MailIdentityExists"}, "false"]
    }


# --- after the SAM transform ------------------------------------------------------------------


@pytest.fixture(scope="session")
def transformed(synthesized: SynthResult, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The packaged template after the SAM transform (aws-sam-translator, offline)."""
    from samtranslator.translator.transform import transform  # noqa: PLC0415

    class NoManagedPolicies:  # our functions name their roles: no managed policy to look up
        def load(self) -> dict[str, str]:
            return {}

    body = deploy.point_code_at(
        json.loads(Path(synthesized.template).read_text()), "artifacts", "helpdesk-access/x.zip"
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
        result = transform(body, {}, NoManagedPolicies())  # type: ignore[arg-type]
    path = tmp_path_factory.mktemp("sam") / "transformed.json"
    path.write_text(json.dumps(result, indent=2))
    return path


def test_the_transformed_template_passes_cfn_lint(transformed: Path) -> None:
    assert lint_errors(str(transformed)) == []


def test_sam_makes_no_extra_stage(transformed: Path) -> None:
    # SAM's default deployment also creates a stage named "Stage" unless OpenApiVersion is set
    resources_ = json.loads(transformed.read_text())["Resources"]
    stages = [
        b["Properties"]["StageName"] for b in of_type(resources_, "AWS::ApiGateway::Stage").values()
    ]
    assert stages == [template.API_GATEWAY_STAGE]
    for deployment in of_type(resources_, "AWS::ApiGateway::Deployment").values():
        assert "StageName" not in deployment["Properties"]


# --- monitoring -----------------------------------------------------------------------------


def _alarms(resources_: Json) -> list[Json]:
    return [a["Properties"] for a in of_type(resources_, "AWS::CloudWatch::Alarm").values()]


def test_dead_letter_queue_alarms_on_the_first_message(resources_of: Json) -> None:
    queue = resources_of[template.HR_QUEUE_ID]["Properties"]
    assert queue["RedrivePolicy"]["maxReceiveCount"] == 3
    dlq = [
        a
        for a in _alarms(resources_of)
        if a["MetricName"] == "ApproximateNumberOfMessagesVisible"
        and a["Dimensions"][0]["Value"]
        == {"Fn::GetAtt": [template.HR_DEAD_LETTER_QUEUE_ID, "QueueName"]}
    ]
    assert len(dlq) == 1
    assert dlq[0]["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert dlq[0]["Threshold"] == 1
    assert dlq[0]["AlarmActions"] == [{"Ref": template.ALARM_TOPIC_ID}]


def test_alarms_cover_workflows_api_and_jira_auth(resources_of: Json) -> None:
    alarms = _alarms(resources_of)
    failed = {
        a["Dimensions"][0]["Value"]["Ref"] for a in alarms if a["MetricName"] == "ExecutionsFailed"
    }
    assert failed == set(resources.STATE_MACHINE_IDS.values())
    assert any(a["MetricName"] == "5XXError" for a in alarms)
    (jira,) = [a for a in alarms if a["MetricName"] == "JiraCalls"]
    assert jira["Namespace"] == f"HelpdeskAccess-{STAGE}"
    assert {"Name": "outcome", "Value": "auth_error"} in jira["Dimensions"]
    assert "SweepStalledGrantsErrorsAlarm" in resources_of


def test_failed_grants_alarm_on_their_own(resources_of: Json) -> None:
    # A recorded failure is a grant in *_failed, whether or not its execution failed too
    (alarm,) = [a for a in _alarms(resources_of) if a["MetricName"] == "GrantsFailed"]
    assert alarm["Namespace"] == f"HelpdeskAccess-{STAGE}"
    assert alarm["Dimensions"] == [{"Name": "service", "Value": "helpdesk-access"}]
    assert alarm["Threshold"] == 1
    assert alarm["AlarmActions"] == [{"Ref": template.ALARM_TOPIC_ID}]


def test_dashboard_refers_only_to_resources_of_the_stack(resources_of: Json) -> None:
    (dashboard,) = of_type(resources_of, "AWS::CloudWatch::Dashboard").values()
    body = dashboard["Properties"]["DashboardBody"]["Fn::Sub"]
    references = {ref.split(".")[0] for ref in re.findall(r"\$\{([^}]+)\}", body)}
    assert {r for r in references if not r.startswith("AWS::")} <= set(resources_of)
    metrics = json.dumps(json.loads(body))
    for name in ("GrantsRequested", "GrantsActivated", "GrantsFailed", "GrantsRemoved"):
        assert name in metrics
    for name in ("JiraCalls", "JiraThrottled", "ActivationSeconds", "ExecutionsFailed"):
        assert name in metrics


def test_saved_queries_search_every_function_log_group(resources_of: Json) -> None:
    queries = of_type(resources_of, "AWS::Logs::QueryDefinition")
    names = {q["Properties"]["Name"] for q in queries.values()}
    prefix = f"helpdesk-access-{STAGE}/"
    assert {
        prefix + "Who changed access to project X",
        prefix + "Failed grants today",
        prefix + "Jira throttling",
        prefix + "Offboardings: who, by which source, which grants",
    } <= names
    groups = {
        g["Properties"]["LogGroupName"]
        for rid, g in of_type(resources_of, "AWS::Logs::LogGroup").items()
        if not rid.endswith("StateMachineLogGroup") and rid != template.API_ACCESS_LOG_GROUP_ID
    }
    for query in queries.values():
        assert set(query["Properties"]["LogGroupNames"]) == groups


@pytest.mark.parametrize(
    "statement",
    [
        {"Effect": "Allow", "Action": "dynamodb:*", "Resource": "*"},
        {
            "Effect": "Allow",
            "Action": ["dynamodb:Update*"],
            "Resource": {"Fn::GetAtt": [ACTIVITY_ID, "Arn"]},
        },
        {
            "Effect": "Allow",
            "Action": ["dynamodb:BatchWriteItem"],
            "Resource": {"Fn::Sub": "arn:${AWS::Partition}:dynamodb:${AWS::Region}:*:table/*"},
        },
        {"Effect": "Allow", "NotAction": ["s3:*"], "Resource": "*"},
    ],
)
def test_the_append_only_check_catches_broad_grants(statement: Json) -> None:
    # Given a statement that would let someone rewrite history / Then the checker sees it
    assert _covers_activity_table(statement)
    actions = _dynamodb_actions(statement)
    assert any(_grants(a, f) for a in actions for f in access.APPEND_ONLY_FORBIDDEN)


def test_declaring_an_update_on_the_activity_table_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given someone declares UpdateItem on the activity table
    bad = access.Access(tables={"activity": frozenset({access.PUT, access.UPDATE})})
    monkeypatch.setitem(access.ACCESS, "record_failure", bad)
    # When the template is built / Then it refuses
    with pytest.raises(ValueError, match="append-only"):
        template.build(STAGE)
