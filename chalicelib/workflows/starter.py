"""`StepFunctionsStarter`: starts a grant's lifecycle execution under its deterministic name."""

from __future__ import annotations

import json

from botocore.exceptions import BotoCoreError, ClientError

from ..aws import client
from ..config import get_settings
from ..domain.grant_lifecycle import ExecutionName, Kind
from ..domain.grant_steps import GrantJob
from ..domain.models import Grant
from ..errors import DependencyUnavailable
from ..observability import logger


def workflow_input(grant: Grant) -> str:
    """The state-machine input: the job plus the throttle counter the ASL increments."""
    return json.dumps({**GrantJob.for_grant(grant).to_input(), "throttle": {"count": 0}})


class StepFunctionsStarter:
    def start_activation(self, grant: Grant) -> None:
        self._start(get_settings().activation_state_machine_arn, grant)

    def start_removal(self, grant: Grant) -> None:
        self._start(get_settings().removal_state_machine_arn, grant)

    def _start(self, state_machine_arn: str, grant: Grant) -> None:
        assert grant.lifecycle_id is not None
        try:
            response = client("stepfunctions").start_execution(
                stateMachineArn=state_machine_arn,
                name=grant.lifecycle_id,
                input=workflow_input(grant),
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ExecutionAlreadyExists":
                # Same lifecycle already started (a duplicate start): nothing more to do.
                logger.info("execution already exists", extra={"execution": grant.lifecycle_id})
                return
            raise DependencyUnavailable(f"Step Functions refused the start: {exc}") from exc
        except BotoCoreError as exc:
            raise DependencyUnavailable(f"Step Functions is unreachable: {exc}") from exc
        logger.info(
            "execution started",
            extra={"execution": grant.lifecycle_id, "execution_arn": response["executionArn"]},
        )

    def is_running(self, lifecycle_id: str) -> bool:
        """Whether the execution of that lifecycle run exists and has not ended yet."""
        return self._status(lifecycle_id) == "RUNNING"

    def execution_status(self, grant: Grant) -> str | None:
        """RUNNING/SUCCEEDED/FAILED/… of the grant's current execution; None if never started."""
        assert grant.lifecycle_id is not None
        return self._status(grant.lifecycle_id)

    def _status(self, lifecycle_id: str) -> str | None:
        settings = get_settings()
        machine = (
            settings.removal_state_machine_arn
            if ExecutionName.parse(lifecycle_id).kind is Kind.REMOVAL
            else settings.activation_state_machine_arn
        )
        arn = machine.replace(":stateMachine:", ":execution:") + f":{lifecycle_id}"
        try:
            return str(client("stepfunctions").describe_execution(executionArn=arn)["status"])
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ExecutionDoesNotExist":
                return None  # never started (its start failed or was lost)
            raise DependencyUnavailable(f"Step Functions refused a describe: {exc}") from exc
        except BotoCoreError as exc:
            raise DependencyUnavailable(f"Step Functions is unreachable: {exc}") from exc
