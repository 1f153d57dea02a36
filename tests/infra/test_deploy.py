"""`infra.deploy` against moto: uploads, `CodeUri` rewriting and the change set it creates.

moto does not run the SAM transform, so the change set is created but never executed here.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import boto3
import pytest

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
    # Given a new stage / When deployed without executing
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
