"""`make deploy STAGE=dev`: synth, upload, and create or update the stack through a change set.

What `aws cloudformation package` + `aws cloudformation deploy` do, with boto3 (no AWS CLI
needed) and a change set you can stop at (`--no-execute`) to review:

1. `infra.synth` builds `infra/out/template.json` and `infra/out/deployment.zip`;
2. the zip and the template are uploaded to `--bucket` under `helpdesk-access/<stage>/`
   (content-addressed: an unchanged zip is not uploaded twice); every `CodeUri` of the
   template is pointed at the uploaded zip;
3. a change set is created for stack `helpdesk-access-<stage>` (CREATE or UPDATE), printed,
   executed, and waited for. Parameters not given on an update keep their previous values.

Credentials and region come from the usual AWS environment (profile, SSO, role...) or
`--region`; without them it stops at once and says how to provide them. Before creating
anything it checks what would make CloudFormation fail half-way (docs/operations.md): a stack
left `ROLLBACK_COMPLETE` by a failed first create (`--replace-failed-stack` deletes it, and its
empty tables), fixed names already taken, the artifacts bucket in another region, and API
Gateway's account-wide CloudWatch Logs role that access logging needs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    ProfileNotFound,
    WaiterError,
)

from . import template
from .synth import OUT, synth

Json = dict[str, Any]
REQUIRED_ON_CREATE = [name for name, spec in template.PARAMETERS.items() if "Default" not in spec]
CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"]  # roles; the SAM transform
WAITER = {"Delay": 10, "MaxAttempts": 360}  # up to an hour


NO_CREDENTIALS = """no AWS credentials found. `make deploy` uses the standard AWS chain; give
it one of:
  - a profile: AWS_PROFILE=<name> make deploy ... (made with `aws configure`, or
    `aws configure sso` and then `aws sso login --profile <name>`);
  - keys: export AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... (and AWS_SESSION_TOKEN for
    temporary ones);
  - a role of the machine it runs on (CI with OIDC, an EC2 instance profile, ECS task role)."""
NO_REGION = """no AWS region: pass --region (make deploy ARGS="--region eu-west-1 ..."), or set
AWS_REGION / AWS_DEFAULT_REGION, or `region` in your profile (`aws configure set region ...`)."""
API_GATEWAY_LOGS_ROLE = """API Gateway has no CloudWatch Logs role in this account and region,
and the API's access logs need one (an account-wide setting, so the stack does not own it).
Set it once:
  aws iam create-role --role-name apigateway-cloudwatch-logs --assume-role-policy-document \
    '{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"Service":"apigateway.amazonaws.com"}},"Action":"sts:AssumeRole"}}]}}'
  aws iam attach-role-policy --role-name apigateway-cloudwatch-logs --policy-arn \
    arn:aws:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs
  aws apigateway update-account --region {region} --patch-operations \
    op=replace,path=/cloudwatchRoleArn,value=arn:aws:iam::{account}:role/apigateway-cloudwatch-logs"""


def aws_session(region: str | None = None) -> boto3.session.Session:
    """The session to deploy with, or SystemExit saying what is missing and how to give it."""
    try:
        session = boto3.session.Session(region_name=region)
        credentials = session.get_credentials()
    except ProfileNotFound as exc:
        raise SystemExit(f"{exc}: check AWS_PROFILE (`aws configure list-profiles`)") from None
    if credentials is None:
        raise SystemExit(NO_CREDENTIALS)
    if not session.region_name:
        raise SystemExit(NO_REGION)
    return session


def caller_account(session: boto3.session.Session) -> str:
    """The account the credentials belong to (the first call: expired ones fail here, clearly)."""
    try:
        identity = session.client("sts").get_caller_identity()
    except (NoCredentialsError, BotoCoreError, ClientError) as exc:
        raise SystemExit(f"the AWS credentials do not work ({exc}).\n{NO_CREDENTIALS}") from None
    print(f"deploying as {identity['Arn']} to account {identity['Account']}, {session.region_name}")
    return str(identity["Account"])


def check_bucket_region(s3: Any, bucket: str, region: str) -> None:
    """Lambda reads its code from a bucket in the function's own region."""
    location = s3.get_bucket_location(Bucket=bucket).get("LocationConstraint") or "us-east-1"
    if location != region:
        raise SystemExit(
            f"bucket {bucket} is in {location} but the stack deploys to {region}: use a bucket "
            f"in {region} (Lambda reads its code from its own region), or --region {location}"
        )


def check_api_gateway_logging(apigateway: Any, region: str = "<region>", account: str = "") -> None:
    """The stage's access logs need API Gateway's (account-wide) CloudWatch Logs role."""
    if not apigateway.get_account().get("cloudwatchRoleArn"):
        raise SystemExit(
            API_GATEWAY_LOGS_ROLE.format(region=region, account=account or "<account>")
        )


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def upload(s3: Any, bucket: str, key: str, path: Path) -> None:
    try:
        s3.head_object(Bucket=bucket, Key=key)
        return  # content-addressed: already there
    except ClientError as exc:
        if exc.response["Error"]["Code"] not in ("404", "NoSuchKey", "NotFound"):
            raise
    s3.upload_file(str(path), bucket, key)


def point_code_at(body: Json, bucket: str, key: str) -> Json:
    """Every SAM function's `CodeUri` → the uploaded zip (what `cloudformation package` does)."""
    for resource in body["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            resource["Properties"]["CodeUri"] = f"s3://{bucket}/{key}"
    return body


def parameters(given: dict[str, str], updating: bool) -> list[Json]:
    unknown = set(given) - set(template.PARAMETERS)
    if unknown:
        raise SystemExit(f"unknown parameters: {sorted(unknown)}")
    if not updating:
        missing = [name for name in REQUIRED_ON_CREATE if name not in given]
        if missing:
            raise SystemExit(f"a new stack needs --parameter for {missing}")
    found: list[Json] = []
    for name in template.PARAMETERS:
        if name in given:
            found.append({"ParameterKey": name, "ParameterValue": given[name]})
        elif updating:
            found.append({"ParameterKey": name, "UsePreviousValue": True})
    return found


def stack_status(cloudformation: Any, stack_name: str) -> str | None:
    """The stack's status, or None if there is no such stack."""
    try:
        stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as exc:
        if "does not exist" in str(exc):
            return None
        raise
    return str(stacks[0]["StackStatus"]) if stacks else None


def stack_exists(cloudformation: Any, stack_name: str) -> bool:
    # A stack left in REVIEW_IN_PROGRESS by a never-executed CREATE change set is still new.
    return stack_status(cloudformation, stack_name) not in (None, "REVIEW_IN_PROGRESS")


def fixed_names(body: Json) -> dict[str, list[str]]:
    """The physical names the template fixes for resources that outlive a stack."""
    found: dict[str, list[str]] = {"tables": [], "log groups": []}
    for resource in body["Resources"].values():
        properties = resource.get("Properties", {})
        if resource["Type"] == "AWS::DynamoDB::Table":
            found["tables"].append(properties["TableName"])
        elif resource["Type"] == "AWS::Logs::LogGroup":
            found["log groups"].append(properties["LogGroupName"])
    return found


def existing_tables(dynamodb: Any, names: list[str]) -> list[str]:
    found = []
    for name in names:
        try:
            dynamodb.describe_table(TableName=name)
        except dynamodb.exceptions.ResourceNotFoundException:
            continue
        found.append(name)
    return found


def existing_log_groups(logs: Any, names: list[str]) -> list[str]:
    found = []
    for name in names:
        groups = logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"]
        if any(group["logGroupName"] == name for group in groups):
            found.append(name)
    return found


def remove_empty_tables(dynamodb: Any, names: list[str]) -> None:
    """Delete tables a failed first create left; refuse if any holds an item."""
    used = [n for n in names if dynamodb.scan(TableName=n, Limit=1, Select="COUNT")["Count"]]
    if used:
        raise SystemExit(
            f"the failed stack's tables {used} hold data: nothing was deleted. Find out who wrote "
            "it; back it up or delete those tables yourself, then run the deploy again."
        )
    for name in names:
        # Deletion protection is what kept them when the create rolled back.
        dynamodb.update_table(TableName=name, DeletionProtectionEnabled=False)
        dynamodb.delete_table(TableName=name)
        dynamodb.get_waiter("table_not_exists").wait(TableName=name)
        print(f"  deleted the empty table {name}")


FAILED_FIRST_CREATE = ("ROLLBACK_COMPLETE", "ROLLBACK_FAILED")


def prepare_stack(
    cloudformation: Any,
    stack_name: str,
    body: Json,
    session: boto3.session.Session,
    *,
    replace_failed: bool = False,
) -> bool:
    """Whether the deploy updates the stack (else it creates it), once nothing stands in its way.

    A stack CloudFormation cannot change is explained (or, with `replace_failed`, a failed first
    create deleted); a new stack whose fixed names are already taken is stopped before it fails.
    """
    status = stack_status(cloudformation, stack_name)
    if status in FAILED_FIRST_CREATE:
        print_failures(cloudformation, stack_name)
        if not replace_failed:
            raise SystemExit(
                f"{stack_name} is {status}: its first create failed (reasons above) and "
                "CloudFormation can only delete it. Fix the cause, then deploy again with "
                "--replace-failed-stack: it deletes that stack and the empty tables it left "
                "(a stack that never finished creating served nothing)."
            )
        dynamodb = session.client("dynamodb")
        names = fixed_names(body)
        remove_empty_tables(dynamodb, existing_tables(dynamodb, names["tables"]))
        cloudformation.delete_stack(StackName=stack_name)
        try:
            cloudformation.get_waiter("stack_delete_complete").wait(
                StackName=stack_name, WaiterConfig=WAITER
            )
        except WaiterError:
            print_failures(cloudformation, stack_name)
            raise SystemExit(f"{stack_name}: could not be deleted (events above)") from None
        print(f"{stack_name}: deleted the failed stack")
        status = None
    elif status is not None and status.endswith("_IN_PROGRESS") and status != "REVIEW_IN_PROGRESS":
        raise SystemExit(f"{stack_name} is {status}: wait for it to finish, then deploy again")
    elif status == "UPDATE_ROLLBACK_FAILED":
        print_failures(cloudformation, stack_name)
        raise SystemExit(
            f"{stack_name} is UPDATE_ROLLBACK_FAILED: fix what the events above name, then "
            f"`aws cloudformation continue-update-rollback --stack-name {stack_name}` (add "
            "--resources-to-skip for resources that cannot go back) and deploy again"
        )
    elif status == "DELETE_FAILED":
        print_failures(cloudformation, stack_name)
        raise SystemExit(
            f"{stack_name} is DELETE_FAILED: remove what the events above name, or run "
            f"`aws cloudformation delete-stack --stack-name {stack_name} --retain-resources ...`"
        )
    if status not in (None, "REVIEW_IN_PROGRESS"):
        return True
    names = fixed_names(body)
    taken = existing_tables(session.client("dynamodb"), names["tables"])
    taken += existing_log_groups(session.client("logs"), names["log groups"])
    if taken:
        raise SystemExit(
            f"{stack_name} does not exist, but these names it needs are taken (kept from an "
            f"earlier stack of the same stage?): {taken}. Delete them if they are not needed "
            "(tables: turn off deletion protection first), or import them into the stack "
            "(a CloudFormation IMPORT change set), then deploy again."
        )
    return False


def print_changes(cloudformation: Any, stack_name: str, change_set: str) -> None:
    pages = cloudformation.get_paginator("describe_change_set").paginate(
        StackName=stack_name, ChangeSetName=change_set
    )
    for page in pages:
        for change in page["Changes"]:
            detail = change["ResourceChange"]
            replacement = detail.get("Replacement")
            suffix = " (REPLACEMENT)" if replacement == "True" else ""
            print(f"  {detail['Action']:8} {detail['LogicalResourceId']}{suffix}")


def print_failures(cloudformation: Any, stack_name: str) -> None:
    events = cloudformation.describe_stack_events(StackName=stack_name)["StackEvents"][:50]
    for event in reversed(events):
        if event["ResourceStatus"].endswith("FAILED"):
            reason = event.get("ResourceStatusReason", "")
            print(f"  {event['LogicalResourceId']}: {reason}", file=sys.stderr)


def deploy(
    stage: str,
    bucket: str,
    given: dict[str, str],
    *,
    stack_name: str | None = None,
    execute: bool = True,
    out: Path = OUT,
    region: str | None = None,
    replace_failed: bool = False,
) -> str:
    """Deploy `stage`; returns the change set's name."""
    # Everything that needs no build first: a missing credential should not cost a synth.
    session = aws_session(region)
    region = str(session.region_name)
    account = caller_account(session)
    s3 = session.client("s3")
    cloudformation = session.client("cloudformation")
    check_bucket_region(s3, bucket, region)
    check_api_gateway_logging(session.client("apigateway"), region, account)

    result = synth(stage, out=out)
    assert result.package is not None
    stack_name = stack_name or f"{template.APP_NAME}-{stage}"
    zip_path = Path(result.package)
    zip_key = f"{template.APP_NAME}/{stage}/{_sha256(zip_path)}.zip"
    body = point_code_at(json.loads(Path(result.template).read_text()), bucket, zip_key)
    updating = prepare_stack(
        cloudformation, stack_name, body, session, replace_failed=replace_failed
    )

    upload(s3, bucket, zip_key, zip_path)
    packaged = out / f"packaged-{stage}.json"
    packaged.write_text(json.dumps(body, indent=2))
    template_key = f"{template.APP_NAME}/{stage}/template-{_sha256(packaged)}.json"
    upload(s3, bucket, template_key, packaged)  # > 51,200 bytes: must go through S3
    change_set = f"deploy-{time.strftime('%Y%m%d-%H%M%S')}"
    cloudformation.create_change_set(
        StackName=stack_name,
        ChangeSetName=change_set,
        ChangeSetType="UPDATE" if updating else "CREATE",
        TemplateURL=f"https://{bucket}.s3.{region}.amazonaws.com/{template_key}",
        Parameters=parameters(given, updating),
        Capabilities=CAPABILITIES,
        Tags=[{"Key": "app", "Value": template.APP_NAME}, {"Key": "stage", "Value": stage}],
    )
    try:
        cloudformation.get_waiter("change_set_create_complete").wait(
            StackName=stack_name, ChangeSetName=change_set, WaiterConfig={"Delay": 5}
        )
    except WaiterError:
        described = cloudformation.describe_change_set(
            StackName=stack_name, ChangeSetName=change_set
        )
        reason = described.get("StatusReason", "")
        if "didn't contain changes" in reason or "No updates" in reason:
            cloudformation.delete_change_set(StackName=stack_name, ChangeSetName=change_set)
            print(f"{stack_name}: no changes")
            return change_set
        raise SystemExit(f"change set failed: {reason}") from None

    print(f"{stack_name}: change set {change_set}")
    print_changes(cloudformation, stack_name, change_set)
    if not execute:
        print("not executed (--no-execute): review it in the console or run it there")
        return change_set
    cloudformation.execute_change_set(StackName=stack_name, ChangeSetName=change_set)
    waiter = "stack_update_complete" if updating else "stack_create_complete"
    try:
        cloudformation.get_waiter(waiter).wait(StackName=stack_name, WaiterConfig=WAITER)
    except WaiterError:
        print_failures(cloudformation, stack_name)
        raise SystemExit(f"{stack_name}: deployment failed (events above)") from None
    outputs = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0].get("Outputs", [])
    for output in sorted(outputs, key=lambda o: o["OutputKey"]):
        print(f"  {output['OutputKey']:32} {output['OutputValue']}")
    return change_set


def _pairs(values: list[str]) -> dict[str, str]:
    found = {}
    for value in values:
        key, sep, rest = value.partition("=")
        if not sep:
            raise SystemExit(f"--parameter takes Key=Value, not {value!r}")
        found[key] = rest
    return found


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", default="dev", choices=sorted(template.STAGES))
    parser.add_argument(
        "--bucket",
        default=os.environ.get("HELPDESK_ARTIFACT_BUCKET"),
        help="an S3 bucket in the stack's region for the zip and the template "
        "(default: $HELPDESK_ARTIFACT_BUCKET)",
    )
    parser.add_argument(
        "--parameter",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"a stack parameter ({', '.join(template.PARAMETERS)}); repeatable",
    )
    parser.add_argument("--stack-name", help="default: helpdesk-access-<stage>")
    parser.add_argument(
        "--region", help="default: AWS_REGION / AWS_DEFAULT_REGION / the profile's region"
    )
    parser.add_argument(
        "--no-execute", action="store_true", help="create and print the change set only"
    )
    parser.add_argument(
        "--replace-failed-stack",
        action="store_true",
        help="if the stack's first create failed (ROLLBACK_COMPLETE), delete it and the empty "
        "tables it left, then create it again",
    )
    args = parser.parse_args(argv)
    if not args.bucket:
        parser.error("--bucket (or HELPDESK_ARTIFACT_BUCKET) is required")
    deploy(
        args.stage,
        args.bucket,
        _pairs(args.parameter),
        stack_name=args.stack_name,
        execute=not args.no_execute,
        region=args.region,
        replace_failed=args.replace_failed_stack,
    )


if __name__ == "__main__":
    main()
