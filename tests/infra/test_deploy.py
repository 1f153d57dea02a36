"""`infra.deploy` against moto: uploads, `CodeUri` rewriting and the change set it creates.

moto does not run the SAM transform, so the change set is created but never executed here.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError

from infra import deploy, template
from local.stack import LocalStack

PARAMETERS = {
    "JiraUrl": "https://acme.atlassian.net",
    "JiraEmail": "helpdesk-bot@acme.example",
    "MailSender": "helpdesk@acme.example",
    "SupportTeamEmail": "support@acme.example",
}


@pytest.fixture
def bucket(stack: LocalStack) -> str:
    """An artifacts bucket in the test process's moto server (its endpoint is in the env).

    Not `mock_aws`: leaving it resets moto's process-wide backends, which would empty the
    local stack other tests in this process share.
    """
    name = f"artifacts-{uuid.uuid4().hex[:12]}"
    boto3.client("s3").create_bucket(
        Bucket=name, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
    )
    return name


def test_deploy_uploads_the_package_and_creates_a_change_set(bucket: str, tmp_path: Path) -> None:
    # Given a new stage, in an account where API Gateway may write logs
    boto3.client("apigateway").update_account(
        patchOperations=[
            {
                "op": "replace",
                "path": "/cloudwatchRoleArn",
                "value": "arn:aws:iam::123456789012:role/apigateway-logs",
            }
        ]
    )
    # When deployed without executing
    change_set = deploy.deploy("dev", bucket, PARAMETERS, execute=False, out=tmp_path)
    # Then the zip and the template are in the bucket, content-addressed
    keys = [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=bucket)["Contents"]]
    (zip_key,) = [k for k in keys if k.endswith(".zip")]
    assert zip_key.startswith("helpdesk-access/dev/")
    assert any(k.startswith("helpdesk-access/dev/template-") for k in keys)
    # And every function's code points at the uploaded zip
    packaged = json.loads((tmp_path / "packaged-dev.json").read_text())
    code = {
        body["Properties"]["CodeUri"]
        for body in packaged["Resources"].values()
        if body["Type"] == "AWS::Serverless::Function"
    }
    assert code == {f"s3://{bucket}/{zip_key}"}
    # And a CREATE change set waits for review with the parameters given
    described = boto3.client("cloudformation").describe_change_set(
        StackName="helpdesk-access-dev", ChangeSetName=change_set
    )
    given = {p["ParameterKey"]: p["ParameterValue"] for p in described["Parameters"]}
    assert given.items() >= PARAMETERS.items()


def test_a_new_stack_needs_its_required_parameters() -> None:
    with pytest.raises(SystemExit, match="JiraUrl"):
        deploy.parameters({"JiraEmail": "bot@acme.example"}, updating=False)


def test_an_update_keeps_parameters_not_given() -> None:
    found = deploy.parameters({"AlarmEmail": "ops@acme.example"}, updating=True)
    kept = {p["ParameterKey"] for p in found if p.get("UsePreviousValue")}
    assert kept == set(template.PARAMETERS) - {"AlarmEmail"}


# --- deploy traps (issue 12, item 2) ------------------------------------------------------------

NO_CREDENTIALS_ENV = {
    "AWS_ACCESS_KEY_ID": None,
    "AWS_SECRET_ACCESS_KEY": None,
    "AWS_SESSION_TOKEN": None,
    "AWS_PROFILE": None,
    "AWS_DEFAULT_PROFILE": None,
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": None,
    "AWS_CONTAINER_CREDENTIALS_FULL_URI": None,
    "AWS_WEB_IDENTITY_TOKEN_FILE": None,
    "AWS_EC2_METADATA_DISABLED": "true",  # no instance metadata lookup (no network here)
}


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No config or credentials files: only what a test puts in the environment counts."""
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    for name, value in NO_CREDENTIALS_ENV.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    return monkeypatch


def test_deploy_without_credentials_says_what_is_missing(
    aws_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given no AWS credentials anywhere / When deploying
    aws_env.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    with pytest.raises(SystemExit) as exited:
        deploy.main(["--stage", "dev", "--bucket", "artifacts"])
    # Then it stops before any work with what is missing and how to provide it
    message = str(exited.value.code)
    assert "no AWS credentials" in message
    assert "AWS_PROFILE" in message
    assert "AWS_ACCESS_KEY_ID" in message
    assert "aws sso login" in message


def test_deploy_without_a_region_says_how_to_give_one(aws_env: pytest.MonkeyPatch) -> None:
    # Given credentials but no region (region_name None made `https://B.s3.None.amazonaws.com`)
    aws_env.setenv("AWS_ACCESS_KEY_ID", "testing")
    aws_env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    aws_env.delenv("AWS_DEFAULT_REGION", raising=False)
    aws_env.delenv("AWS_REGION", raising=False)
    with pytest.raises(SystemExit) as exited:
        deploy.main(["--stage", "dev", "--bucket", "artifacts"])
    message = str(exited.value.code)
    assert "no AWS region" in message
    assert "--region" in message
    assert "AWS_REGION" in message


def test_the_region_comes_from_the_option(aws_env: pytest.MonkeyPatch) -> None:
    aws_env.setenv("AWS_ACCESS_KEY_ID", "testing")
    aws_env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    aws_env.delenv("AWS_DEFAULT_REGION", raising=False)
    aws_env.delenv("AWS_REGION", raising=False)
    assert deploy.aws_session("eu-central-1").region_name == "eu-central-1"


class FakeCloudFormation:
    """The few CloudFormation calls the stack checks make, with a stack in a given state."""

    def __init__(self, status: str | None, failed: list[tuple[str, str]] | None = None) -> None:
        self.status = status
        self.failed = failed or [("GrantsTable", "Resource handler returned message: ...")]
        self.deleted: list[str] = []

    def describe_stacks(self, StackName: str) -> dict[str, object]:  # noqa: N803
        if self.status is None:
            error = {"Error": {"Code": "ValidationError", "Message": "does not exist"}}
            raise ClientError(error, "DescribeStacks")  # type: ignore[arg-type]
        return {"Stacks": [{"StackName": StackName, "StackStatus": self.status}]}

    def describe_stack_events(self, StackName: str) -> dict[str, object]:  # noqa: N803
        return {
            "StackEvents": [
                {
                    "LogicalResourceId": rid,
                    "ResourceStatus": "CREATE_FAILED",
                    "ResourceStatusReason": reason,
                }
                for rid, reason in self.failed
            ]
        }

    def delete_stack(self, StackName: str) -> None:  # noqa: N803
        self.deleted.append(StackName)
        self.status = None

    def get_waiter(self, name: str) -> object:
        assert name == "stack_delete_complete"
        return type("Waiter", (), {"wait": lambda self, **kwargs: None})()


TEMPLATE_BODY = {
    "Resources": {
        "GrantsTable": {
            "Type": "AWS::DynamoDB::Table",
            "Properties": {"TableName": "helpdesk-access-trap-grants"},
        },
        "APIHandlerLogGroup": {
            "Type": "AWS::Logs::LogGroup",
            "Properties": {"LogGroupName": "/aws/lambda/helpdesk-access-trap"},
        },
    }
}


def test_a_rolled_back_first_create_is_explained(
    stack: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a stack whose first create failed and rolled back (CloudFormation can only delete it)
    cloudformation = FakeCloudFormation("ROLLBACK_COMPLETE")
    # When deploying again without asking to replace it
    with pytest.raises(SystemExit) as exited:
        deploy.prepare_stack(cloudformation, "helpdesk-access-trap", TEMPLATE_BODY, boto3.Session())
    # Then the reason of the failure and the way out are printed, and nothing is deleted
    message = str(exited.value.code)
    assert "ROLLBACK_COMPLETE" in message
    assert "--replace-failed-stack" in message
    assert "GrantsTable: Resource handler returned message" in capsys.readouterr().err
    assert cloudformation.deleted == []


def test_a_rolled_back_first_create_is_replaced_on_request(stack: LocalStack) -> None:
    # Given a failed first create that left its (empty, deletion-protected) table behind
    dynamodb = boto3.client("dynamodb")
    dynamodb.create_table(
        TableName="helpdesk-access-trap-grants",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        DeletionProtectionEnabled=True,
    )
    cloudformation = FakeCloudFormation("ROLLBACK_FAILED")
    # When deploying with --replace-failed-stack
    updating = deploy.prepare_stack(
        cloudformation,
        "helpdesk-access-trap",
        TEMPLATE_BODY,
        boto3.Session(),
        replace_failed=True,
    )
    # Then the stack is deleted, the empty table too, and the deploy goes on as a create
    assert cloudformation.deleted == ["helpdesk-access-trap"]
    assert "helpdesk-access-trap-grants" not in dynamodb.list_tables()["TableNames"]
    assert updating is False


def test_a_failed_stack_with_data_is_never_replaced(stack: LocalStack) -> None:
    # Given the failed stack's table holds data (someone used it)
    dynamodb = boto3.client("dynamodb")
    dynamodb.create_table(
        TableName="helpdesk-access-trap-grants",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.put_item(TableName="helpdesk-access-trap-grants", Item={"id": {"S": "x"}})
    cloudformation = FakeCloudFormation("ROLLBACK_COMPLETE")
    try:
        # When asked to replace it / Then it refuses and names the table
        with pytest.raises(SystemExit, match="helpdesk-access-trap-grants"):
            deploy.prepare_stack(
                cloudformation,
                "helpdesk-access-trap",
                TEMPLATE_BODY,
                boto3.Session(),
                replace_failed=True,
            )
        assert cloudformation.deleted == []
    finally:
        dynamodb.delete_table(TableName="helpdesk-access-trap-grants")


def test_a_new_stack_whose_names_are_taken_is_stopped_before_creating(stack: LocalStack) -> None:
    # Given a log group kept from an earlier stack with the same names
    logs = boto3.client("logs")
    logs.create_log_group(logGroupName="/aws/lambda/helpdesk-access-trap")
    try:
        with pytest.raises(SystemExit, match="/aws/lambda/helpdesk-access-trap"):
            deploy.prepare_stack(
                FakeCloudFormation(None), "helpdesk-access-trap", TEMPLATE_BODY, boto3.Session()
            )
    finally:
        logs.delete_log_group(logGroupName="/aws/lambda/helpdesk-access-trap")


@pytest.mark.parametrize(
    ("status", "hint"),
    [
        ("UPDATE_ROLLBACK_FAILED", "continue-update-rollback"),
        ("UPDATE_IN_PROGRESS", "wait"),
        ("DELETE_FAILED", "delete-stack"),
    ],
)
def test_other_stuck_stacks_are_explained(status: str, hint: str) -> None:
    with pytest.raises(SystemExit) as exited:
        deploy.prepare_stack(
            FakeCloudFormation(status), "helpdesk-access-trap", TEMPLATE_BODY, boto3.Session()
        )
    assert status in str(exited.value.code)
    assert hint in str(exited.value.code)


def test_a_healthy_stack_is_updated() -> None:
    updating = deploy.prepare_stack(
        FakeCloudFormation("UPDATE_ROLLBACK_COMPLETE"), "x", TEMPLATE_BODY, boto3.Session()
    )
    assert updating is True


def test_access_logs_need_the_accounts_api_gateway_logs_role(stack: LocalStack) -> None:
    # Given an account (region) where API Gateway has no CloudWatch Logs role yet
    apigateway = boto3.client("apigateway")
    apigateway.update_account(
        patchOperations=[{"op": "replace", "path": "/cloudwatchRoleArn", "value": ""}]
    )
    # When checked / Then the deploy says how to set it (one command per step)
    with pytest.raises(SystemExit) as exited:
        deploy.check_api_gateway_logging(apigateway)
    assert "update-account" in str(exited.value.code)
    assert "AmazonAPIGatewayPushToCloudWatchLogs" in str(exited.value.code)
    # And once set, it passes
    role = "arn:aws:iam::123456789012:role/apigateway-logs"
    apigateway.update_account(
        patchOperations=[{"op": "replace", "path": "/cloudwatchRoleArn", "value": role}]
    )
    deploy.check_api_gateway_logging(apigateway)
