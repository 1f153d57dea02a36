"""The whole service in one process: Chalice API, moto (real ASL), JSM emulator and mailbox.

    with LocalStack(api_port=0, aws_port=0, jira_port=0, mail_port=0, fast_clock_scale=0.001) as s:
        requests.get(f"{s.api_url}/health")

Ports default to SPEC §5 (API 8000, AWS 5000, JSM 8081, mailbox 8025), overridable with
`HELPDESK_API_PORT`, `HELPDESK_AWS_PORT`, `HELPDESK_JIRA_PORT`, `HELPDESK_MAIL_PORT`; 0 picks a
free port. The app reads its settings once, at import, from the environment this module sets up:
`start()` therefore configures the environment first and clears the app's caches, so a stack can
also be started in a process that imported the app earlier (the test suite).
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import requests

from local.aws import (
    ACCOUNT_ID,
    FastClock,
    LambdaContext,
    MotoServer,
    Provisioned,
    Undo,
    aws_client,
    create_secrets,
    free_port,
    install_asl_parse_cache,
    install_backend_list_cache,
    install_boto_client_cache,
    install_dynamodb_lock,
    install_lambda_bridge,
    install_shared_botocore_loader,
    invoke_handler,
    provision,
    reset_aws,
)
from local.http_server import LocalHttpServer
from local.iam import IamEnforcer, local_policies, local_template, secret_names
from local.jsm_emulator import JsmEmulator
from local.mailbox import Mailbox

PROJECT_DIR = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
STAGE = "local"
DEFAULT_PORTS = {"api": 8000, "aws": 5000, "jira": 8081, "mail": 8025}
PORT_ENV = {
    "api": "HELPDESK_API_PORT",
    "aws": "HELPDESK_AWS_PORT",
    "jira": "HELPDESK_JIRA_PORT",
    "mail": "HELPDESK_MAIL_PORT",
}
SQS_WAIT_SECONDS = 1  # long poll: HR events reach their handler within ~1 s (SPEC §5)
# The secrets' values in moto: what the app reads locally without one (chalicelib/config.py).
LOCAL_SECRETS = {
    "jira_token": ("HELPDESK_JIRA_TOKEN", "local-token"),
    "jwt": ("HELPDESK_JWT_SECRET", "local-dev-secret"),
    "hr_webhook": ("HELPDESK_HR_WEBHOOK_SECRET", "local-hr-secret"),
}

log = logging.getLogger("local.stack")


def _port(name: str, given: int | None) -> int:
    if given is None:
        given = int(os.environ.get(PORT_ENV[name], DEFAULT_PORTS[name]))
    return given or free_port(HOST)


def clear_app_caches() -> None:
    """Forget the app's cached settings, clients and services (they captured the environment)."""
    for name, module in list(sys.modules.items()):
        if not (name == "chalicelib" or name.startswith("chalicelib.")) or module is None:
            continue
        for value in list(vars(module).values()):
            cache_clear = getattr(value, "cache_clear", None)
            if callable(cache_clear) and getattr(value, "__module__", None) == name:
                cache_clear()
    tables = sys.modules.get("chalicelib.store.tables")
    for model in getattr(tables, "ALL_MODELS", ()):
        model._connection = None  # PynamoDB keeps its botocore client per model


class SqsPoller:
    """Delivers SQS messages to the app's `@app.on_sqs_message` handlers, as Lambda's poller does.

    Messages a handler reports in `batchItemFailures`, or all of a batch whose handler raised,
    stay on the queue and come back after the visibility timeout; SQS moves them to the DLQ after
    `maxReceiveCount` receives.
    """

    def __init__(self, app: Any, endpoint_url: str, region: str) -> None:
        self._app = app
        self._sqs = aws_client("sqs", endpoint_url, region)
        self._region = region
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def handlers(self) -> list[Any]:
        from chalice.app import SQSEventConfig  # noqa: PLC0415

        return [s for s in self._app.event_sources if isinstance(s, SQSEventConfig)]

    def start(self) -> None:
        for config in self.handlers():
            queue = config.queue or str(config.queue_arn).rsplit(":", 1)[-1]
            try:
                queue_url = self._sqs.get_queue_url(QueueName=queue)["QueueUrl"]
            except self._sqs.exceptions.QueueDoesNotExist:
                log.warning("no queue %s for SQS handler %s: not polled", queue, config.name)
                continue
            thread = threading.Thread(
                target=self._poll,
                args=(config, queue, queue_url),
                name=f"sqs-{config.name}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=SQS_WAIT_SECONDS + 5)
        self._threads.clear()

    def _poll(self, config: Any, queue: str, queue_url: str) -> None:
        while not self._stop.is_set():
            try:
                received = self._sqs.receive_message(
                    QueueUrl=queue_url,
                    MaxNumberOfMessages=max(1, min(10, config.batch_size)),
                    WaitTimeSeconds=SQS_WAIT_SECONDS,
                    AttributeNames=["All"],
                    MessageAttributeNames=["All"],
                )
                messages = received.get("Messages", [])
                if messages:
                    self._deliver(config, queue, queue_url, messages)
            except Exception:  # the poller must outlive any one bad batch or a moto hiccup
                if self._stop.is_set():
                    return
                log.exception("SQS poller for %s failed; retrying", config.name)
                self._stop.wait(1)

    def _deliver(self, config: Any, queue: str, queue_url: str, messages: list[Any]) -> None:
        event = {"Records": [self._record(queue, message) for message in messages]}
        context = LambdaContext(
            function_name=config.name,
            invoked_function_arn=f"arn:aws:lambda:{self._region}:{ACCOUNT_ID}:function:{config.name}",
        )
        try:
            result = self._app.handler_map[config.name](event, context)
        except Exception:
            log.exception("SQS handler %s raised: the batch will be redelivered", config.name)
            return
        failed = (
            {
                str(item.get("itemIdentifier"))
                for item in (result or {}).get("batchItemFailures", [])
                if isinstance(item, dict)
            }
            if isinstance(result, dict)
            else set()
        )
        done = [m for m in messages if m["MessageId"] not in failed]
        if done:
            self._sqs.delete_message_batch(
                QueueUrl=queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)
                ],
            )

    def _record(self, queue: str, message: dict[str, Any]) -> dict[str, Any]:
        attributes = {
            name: {
                "stringValue": value.get("StringValue"),
                "binaryValue": value.get("BinaryValue"),
                "stringListValues": [],
                "binaryListValues": [],
                "dataType": value.get("DataType"),
            }
            for name, value in (message.get("MessageAttributes") or {}).items()
        }
        return {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": message.get("Attributes", {}),
            "messageAttributes": attributes,
            "md5OfBody": message.get("MD5OfBody")
            or hashlib.md5(  # noqa: S324 - SQS's checksum
                message["Body"].encode()
            ).hexdigest(),
            "eventSource": "aws:sqs",
            "eventSourceARN": f"arn:aws:sqs:{self._region}:{ACCOUNT_ID}:{queue}",
            "awsRegion": self._region,
        }


def _local_handler(handler_cls: type, quiet: bool) -> type:
    """chalice.local's request handler, answering every HTTP method as API Gateway would.

    chalice.local only defines the methods API Gateway can route (GET, POST, …); any other
    (TRACE, CONNECT, made-up ones) got http.server's HTML 501. Those go to the app as well, whose
    router refuses them with a problem+json 405, as the deployed API refuses them with a 4xx.
    A route the app does not have got chalice.local's 403 `{"message": "Missing Authentication
    Token"}`: it gets the problem+json 404 the template's gateway responses give in AWS.
    """
    from chalice.local import ForbiddenError  # noqa: PLC0415

    class LocalHandler(handler_cls):  # type: ignore[misc, valid-type]
        def __getattr__(self, name: str) -> Any:
            if name.startswith("do_"):
                return self._generic_handle
            raise AttributeError(name)

        def _send_error_response(self, error: Any) -> None:
            # The app has no authorizer: chalice.local's only 403 is "no such route".
            if not isinstance(error, ForbiddenError):
                super()._send_error_response(error)
                return
            from chalicelib.api.problems import problem  # noqa: PLC0415
            from infra.template import GATEWAY_RESPONSES  # noqa: PLC0415

            status, detail = GATEWAY_RESPONSES["MISSING_AUTHENTICATION_TOKEN"]
            answer = problem(status, detail or "There is no such resource.")
            self._send_http_response(status, dict(answer.headers), answer.body)

        def log_message(self, format: str, *args: Any) -> None:
            if not quiet:
                super().log_message(format, *args)

    return LocalHandler


def _api_http_server(app: Any, config: Any, port: int, access_log: bool) -> Any:
    """What `chalice.local.create_local_server` builds, with our request handler and a server
    that takes 100+ clients connecting at once (local/http_server.py): chalice's listens with a
    backlog of 5 and reset part of 30 concurrent clients."""
    from chalice import local as chalice_local  # noqa: PLC0415

    # As create_local_server does: the app's class becomes chalice.local's, whose
    # `current_request` is per thread (one thread per connection). stop() swaps it back.
    chalice_local.CustomLocalChalice.__bases__ = (chalice_local.LocalChalice, type(app))
    app.__class__ = chalice_local.CustomLocalChalice
    handler = _local_handler(chalice_local.ChaliceRequestHandler, quiet=not access_log)
    return chalice_local.LocalDevServer(
        app, config, HOST, port, handler_cls=handler, server_cls=LocalHttpServer
    )


class Scheduler:
    """Runs every `@app.schedule` handler (stalled-grant sweep, expiry, drift check) every
    `seconds`, one after the other, as EventBridge would invoke their functions (SPEC §5)."""

    def __init__(self, app: Any, region: str, seconds: float) -> None:
        self._app = app
        self._region = region
        self._seconds = seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def jobs(self) -> list[str]:
        from chalice.app import ScheduledEventConfig  # noqa: PLC0415

        return [s.name for s in self._app.event_sources if isinstance(s, ScheduledEventConfig)]

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def invoke(self, name: str) -> tuple[bytes, bool]:
        """Run one job as EventBridge would: `(payload, failed)`."""
        event = {
            "version": "0",
            "id": f"local-{name}-{time.time_ns()}",
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": ACCOUNT_ID,
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "region": self._region,
            "resources": [],
            "detail": {},
        }
        return invoke_handler(self._app, name, event, name, self._region)

    def run_once(self) -> dict[str, bytes]:
        """Every job once, now: `{job: payload}` (a failed job is logged, as Lambda would)."""
        results = {}
        for name in self.jobs():
            payload, failed = self.invoke(name)
            if failed:
                log.error("scheduled job %s failed: %s", name, payload.decode()[:2000])
            results[name] = payload
        return results

    def _run(self) -> None:
        while not self._stop.wait(self._seconds):
            try:
                self.run_once()
            except Exception:  # the scheduler must outlive any one failed run
                log.exception("scheduled jobs failed; running them again in %s s", self._seconds)


class LocalStack:
    """Starts and stops the local stack; its parts are attributes once `start()` returned."""

    def __init__(
        self,
        api_port: int | None = None,
        aws_port: int | None = None,
        jira_port: int | None = None,
        mail_port: int | None = None,
        fast_clock_scale: float | None = None,
        access_log: bool = False,
        enforce_iam: bool = True,
        schedule_seconds: float | None = None,
    ) -> None:
        self._requested = {"api": api_port, "aws": aws_port, "jira": jira_port, "mail": mail_port}
        self._fast_clock_scale = fast_clock_scale
        self._access_log = access_log
        self._enforce_iam = enforce_iam
        # None: the scheduled jobs run only when a test calls them (`make run` sets 10 s).
        self._schedule_seconds = schedule_seconds
        self.scheduler: Scheduler | None = None
        self.iam: IamEnforcer | None = None
        self.ports: dict[str, int] = {}
        self.jira: JsmEmulator | None = None
        self.mailbox: Mailbox | None = None
        self.moto: MotoServer | None = None
        self.fast_clock: FastClock | None = None
        self.provisioned: Provisioned | None = None
        self.app: Any = None
        self.startup_seconds: float | None = None
        self._saved_env: dict[str, str | None] = {}
        self._undo: list[Undo] = []
        self._api_server: Any = None
        self._api_thread: threading.Thread | None = None
        self._app_class: type | None = None
        self._poller: SqsPoller | None = None

    # --- urls ----------------------------------------------------------------------------------

    @property
    def api_url(self) -> str:
        return f"http://{HOST}:{self.ports['api']}"

    @property
    def aws_url(self) -> str:
        return f"http://{HOST}:{self.ports['aws']}"

    @property
    def jira_url(self) -> str:
        return f"http://{HOST}:{self.ports['jira']}"

    @property
    def mail_url(self) -> str:
        return f"http://{HOST}:{self.ports['mail']}"

    # --- lifecycle -----------------------------------------------------------------------------

    def __enter__(self) -> LocalStack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        started = time.perf_counter()
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.perf_counter() - started

    def _start(self) -> None:
        self.ports = {name: _port(name, given) for name, given in self._requested.items()}
        self._configure_environment()
        clear_app_caches()

        self.jira = JsmEmulator(HOST, self.ports["jira"])
        self.jira.start()
        self.moto = MotoServer(self.ports["aws"])
        self.moto.start()
        self._undo.append(install_backend_list_cache())
        self._undo.append(install_boto_client_cache())
        self._undo.append(install_shared_botocore_loader())
        self._undo.append(install_asl_parse_cache())
        self._undo.append(install_dynamodb_lock())

        from chalice.cli.factory import CLIFactory  # noqa: PLC0415

        # Loading the app (first access to config.chalice_app) imports `app` into sys.modules,
        # after the stage's environment variables are applied: one app for API and tasks.
        config = CLIFactory(str(PROJECT_DIR), environ=os.environ).create_config_obj(
            chalice_stage_name=STAGE
        )
        for name, value in config.environment_variables.items():
            self._set_env(name, value)  # so that stop() restores them too
        self.app = config.chalice_app
        if self.app is not sys.modules["app"].app:
            raise RuntimeError("Chalice loaded a second copy of the app")

        from chalicelib.config import get_settings  # noqa: PLC0415

        settings = get_settings()
        self.provisioned = provision(settings, self.app, self.aws_url)
        self._set_env("HELPDESK_HR_QUEUE_URL", self.provisioned.hr_queue_url)
        # The secrets under the template's names, their ARNs in the settings as the template
        # sets them, and each function's role from the same template (local/iam.py).
        built, functions = local_template()
        values = {
            key: os.environ.get(env, default) for key, (env, default) in LOCAL_SECRETS.items()
        }
        secrets = create_secrets(
            self.aws_url,
            settings.region,
            {key: (name, values[key]) for key, name in secret_names(built).items()},
        )
        policies = local_policies(built, functions, settings, self.provisioned, secrets, ACCOUNT_ID)
        for name, value in policies.environment.items():
            self._set_env(name, value)
        clear_app_caches()

        self._undo.append(install_lambda_bridge(self.app))
        if self._enforce_iam:
            self.iam = IamEnforcer(policies, settings.region, ACCOUNT_ID)
            self.iam.install(self.app)
            self._undo.append(self.iam.uninstall)
        if self._fast_clock_scale is not None:
            self.fast_clock = FastClock(self._fast_clock_scale)
            self.fast_clock.start()
            self._undo.append(self.fast_clock.stop)

        self.mailbox = Mailbox(HOST, self.ports["mail"], region=settings.region)
        self.mailbox.start()

        self._app_class = type(self.app)
        self._api_server = _api_http_server(self.app, config, self.ports["api"], self._access_log)
        server = self._api_server
        self._api_thread = threading.Thread(
            target=server.server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="chalice-local",
            daemon=True,
        )
        self._api_thread.start()

        self._start_runners(settings.region)
        self._wait_until_healthy()

    def _start_runners(self, region: str) -> None:
        """What invokes the non-HTTP functions: the SQS poller and the scheduler."""
        self._poller = SqsPoller(self.app, self.aws_url, region)
        self._poller.start()
        self.scheduler = Scheduler(self.app, region, self._schedule_seconds or 0)
        if self._schedule_seconds:
            self.scheduler.start()

    def _wait_until_healthy(self, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if requests.get(f"{self.api_url}/health", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the API at {self.api_url} did not become healthy")
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop everything started, undo every patch and restore the environment."""
        if self.scheduler is not None:
            self.scheduler.stop()
            self.scheduler = None
        if self._poller is not None:
            self._poller.stop()
            self._poller = None
        if self._api_server is not None:
            self._api_server.server.shutdown()
            self._api_server.server.server_close()
            if self._api_thread is not None:
                self._api_thread.join()
            self._api_server = None
            self._api_thread = None
        if self.app is not None and self._app_class is not None:
            # chalice.local swapped the app's class for its local subclass: swap it back.
            self.app.__class__ = self._app_class
            self._app_class = None
        if self.mailbox is not None:
            self.mailbox.stop()
        while self._undo:
            self._undo.pop()()
        self.iam = None
        if self.moto is not None:
            self.moto.stop()
            self.moto = None
        if self.jira is not None:
            self.jira.stop()
        self._restore_environment()
        clear_app_caches()

    def reset(self) -> None:
        """Between tests: empty tables, queues, outbox and JSM site; forget recorded waits."""
        from chalicelib.config import get_settings  # noqa: PLC0415

        assert self.jira is not None
        assert self.provisioned is not None
        if self.iam is not None:
            self.iam.take_denials()
        self.jira.reset()
        reset_aws(self.provisioned, get_settings(), self.aws_url)
        if self.mailbox is not None:
            self.mailbox.clear()
        if self.fast_clock is not None:
            self.fast_clock.clear()

    # --- environment ---------------------------------------------------------------------------

    def _set_env(self, name: str, value: str) -> None:
        if name not in self._saved_env:
            self._saved_env[name] = os.environ.get(name)
        os.environ[name] = value

    def _default_env(self, name: str, value: str) -> None:
        if name not in os.environ:
            self._set_env(name, value)

    def _configure_environment(self) -> None:
        # Chalice sets AWS_EXECUTION_ENV on its first request: stop() restores it too.
        self._saved_env.setdefault("AWS_EXECUTION_ENV", os.environ.get("AWS_EXECUTION_ENV"))
        self._set_env("AWS_ENDPOINT_URL", self.aws_url)
        self._set_env("AWS_ACCESS_KEY_ID", "testing")
        self._set_env("AWS_SECRET_ACCESS_KEY", "testing")  # moto's dummy credentials
        self._default_env("AWS_DEFAULT_REGION", os.environ.get("AWS_REGION", "eu-west-1"))
        self._default_env("AWS_REGION", os.environ["AWS_DEFAULT_REGION"])
        self._set_env("HELPDESK_JIRA_URL", self.jira_url)
        self._set_env("HELPDESK_JIRA_PORT", str(self.ports["jira"]))
        for name, port in self.ports.items():
            self._set_env(PORT_ENV[name], str(port))
        self._default_env("HELPDESK_STAGE", STAGE)
        self._default_env("POWERTOOLS_METRICS_DISABLED", "true")
        self._default_env("POWERTOOLS_TRACE_DISABLED", "true")
        self._default_env("POWERTOOLS_LOG_LEVEL", "WARNING")

    def _restore_environment(self) -> None:
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_env.clear()
