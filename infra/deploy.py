"""`make deploy STAGE=dev`: synth, upload, and create or update the stack through a change set.

What `aws cloudformation package` + `aws cloudformation deploy` do, with boto3 (no AWS CLI
needed) and a change set you can stop at (`--no-execute`) to review:

1. `infra.synth` builds `infra/out/template.json` and `infra/out/deployment.zip`;
2. the zip and the template are uploaded to `--bucket` under `helpdesk-access/<stage>/`
   (content-addressed: an unchanged zip is not uploaded twice); every `CodeUri` of the
   template is pointed at the uploaded zip;
3. a change set is created for stack `helpdesk-access-<stage>` (CREATE or UPDATE), printed,
   executed, and waited for. Parameters not given on an update keep their previous values.

Credentials and region come from the usual AWS environment (profile, SSO, role...).
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
from botocore.exceptions import ClientError, WaiterError

from . import template
from .synth import OUT, synth

Json = dict[str, Any]
REQUIRED_ON_CREATE = [name for name, spec in template.PARAMETERS.items() if "Default" not in spec]
CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"]  # roles; the SAM transform
WAITER = {"Delay": 10, "MaxAttempts": 360}  # up to an hour


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


def stack_exists(cloudformation: Any, stack_name: str) -> bool:
    try:
        stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as exc:
        if "does not exist" in str(exc):
            return False
        raise
    # A stack left in REVIEW_IN_PROGRESS by a never-executed CREATE change set is still new.
    return bool(stacks) and stacks[0]["StackStatus"] != "REVIEW_IN_PROGRESS"


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
) -> str:
    """Deploy `stage`; returns the change set's name."""
    result = synth(stage, out=out)
    assert result.package is not None
    stack_name = stack_name or f"{template.APP_NAME}-{stage}"
    session = boto3.session.Session()
    s3 = session.client("s3")
    cloudformation = session.client("cloudformation")
    region = session.region_name

    zip_path = Path(result.package)
    zip_key = f"{template.APP_NAME}/{stage}/{_sha256(zip_path)}.zip"
    upload(s3, bucket, zip_key, zip_path)
    body = point_code_at(json.loads(Path(result.template).read_text()), bucket, zip_key)
    packaged = out / f"packaged-{stage}.json"
    packaged.write_text(json.dumps(body, indent=2))
    template_key = f"{template.APP_NAME}/{stage}/template-{_sha256(packaged)}.json"
    upload(s3, bucket, template_key, packaged)  # > 51,200 bytes: must go through S3

    updating = stack_exists(cloudformation, stack_name)
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
        "--no-execute", action="store_true", help="create and print the change set only"
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
    )


if __name__ == "__main__":
    main()
