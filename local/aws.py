"""AWS without an account: a moto server in this process, provisioned from `infra.resources`.

The state machines execute their real ASL inside moto; their Lambda tasks are bridged to the
Chalice handlers in this same process (`install_lambda_bridge`), so a grant's whole lifecycle runs
here: API → Step Functions → task → JSM emulator → DynamoDB/SES/EventBridge in moto.
Everything here patches moto, never the app: production code does not know it runs locally.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import io
import json
import logging
import os
import socket
import threading
import time
import traceback
import types
import uuid
import zipfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from typing import Any, TypeVar

import boto3
import requests
from botocore.config import Config
from moto.core.config import default_user_config
from moto.server import ThreadedMotoServer

from chalicelib.config import Settings

ACCOUNT_ID = "123456789012"
_T = TypeVar("_T")
MOTO_CONFIG = {"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}
LAMBDA_ROLE = "helpdesk-local-lambda"
SFN_ROLE = "helpdesk-local-states"
LAMBDA_MEMORY_MB = 512
LAMBDA_TIMEOUT_S = 30

Undo = Callable[[], None]


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (the OS's pick for port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def ensure_port_free(port: int, host: str = "127.0.0.1") -> None:
    """Raise OSError if `port` is taken (moto's server thread would otherwise hang start())."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise OSError(exc.errno, f"port {port} on {host} is in use ({exc.strerror})") from exc


def resource_prefix() -> str:
    return os.environ.get("HELPDESK_RESOURCE_PREFIX", "helpdesk-local")


def aws_client(service: str, endpoint_url: str, region: str) -> Any:
    """A boto3 client for the moto server (dummy credentials, no retries: moto is local)."""
    return boto3.client(
        service,
        endpoint_url=endpoint_url,
        region_name=region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106 - moto's dummy credentials
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )


# --- the moto server -----------------------------------------------------------------------


class MotoServer:
    """`ThreadedMotoServer` on 127.0.0.1, configured to execute ASL and run Lambdas in-process.

    moto's backends and config are process globals: `stop()` resets the backends and restores
    the config so a later `mock_aws` test in the same process starts from a clean slate.
    """

    def __init__(self, port: int = 5000) -> None:
        self.port = port or free_port()
        self._server: ThreadedMotoServer | None = None
        self._saved_config: dict[str, Any] | None = None
        self._saved_port: str | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        # ThreadedMotoServer binds on its own thread and, if that fails, waits forever.
        ensure_port_free(self.port)
        self._saved_config = copy.deepcopy(dict(default_user_config))
        self._saved_port = os.environ.get("MOTO_PORT")
        # Step Functions calls Lambda on localhost:$MOTO_PORT, whatever AWS_ENDPOINT_URL says.
        os.environ["MOTO_PORT"] = str(self.port)
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()
        # Before any create_function: with use_docker false functions live in lambda_simple.
        response = requests.post(f"{self.url}/moto-api/config", json=MOTO_CONFIG, timeout=5)
        response.raise_for_status()

    def stop(self) -> None:
        if self._server is None:
            return
        with contextlib.suppress(requests.RequestException):
            requests.post(f"{self.url}/moto-api/reset", timeout=5)
        self._server.stop()
        self._server = None
        if self._saved_config is not None:
            config: dict[str, Any] = default_user_config  # type: ignore[assignment]
            config.clear()
            config.update(self._saved_config)
        if self._saved_port is None:
            os.environ.pop("MOTO_PORT", None)
        else:
            os.environ["MOTO_PORT"] = self._saved_port


def start_moto(port: int = 5000) -> MotoServer:
    """Start moto on 127.0.0.1:`port` (0 = a free port) with `MOTO_PORT` set to match."""
    server = MotoServer(port)
    server.start()
    return server


# --- Lambda tasks run in-process --------------------------------------------------------------


@dataclass
class LambdaContext:
    """The parts of the Lambda context object handlers and Powertools read."""

    function_name: str
    invoked_function_arn: str
    memory_limit_in_mb: int = LAMBDA_MEMORY_MB
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = ""
    log_stream_name: str = "local"
    timeout_seconds: int = LAMBDA_TIMEOUT_S
    _started: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.log_group_name = f"/aws/lambda/{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        elapsed = time.monotonic() - self._started
        return max(0, int((self.timeout_seconds - elapsed) * 1000))


def lambda_handler_names(app: Any) -> list[str]:
    """The `@app.lambda_function` names of a Chalice app (its Step Functions tasks)."""
    return [function.name for function in app.pure_lambda_functions]


def _function_name(name_or_arn: str) -> str:
    # arn:aws:lambda:region:account:function:NAME[:qualifier] or a plain NAME
    if name_or_arn.startswith("arn:"):
        return name_or_arn.split(":")[6]
    return name_or_arn.split(":", 1)[0]


def invoke_handler(
    app: Any, handler_name: str, event: Any, function_name: str, region: str
) -> tuple[bytes, bool]:
    """Run one handler as Lambda would: `(payload, failed)`, failed payloads in Lambda's shape."""
    handler = app.handler_map[handler_name]
    context = LambdaContext(
        function_name=function_name,
        invoked_function_arn=f"arn:aws:lambda:{region}:{ACCOUNT_ID}:function:{function_name}",
    )
    try:
        result = handler(event, context)
    except Exception as exc:  # every failure becomes a Lambda function error, as in Lambda
        error = {
            "errorType": type(exc).__name__,
            "errorMessage": str(exc),
            "stackTrace": traceback.format_exception(exc)[-10:],
        }
        return json.dumps(error).encode(), True
    return json.dumps(result, default=str).encode(), False


class WarmContainers:
    """Each function's invocations run on threads that outlive them, as Lambda reuses a warm
    container: what a container keeps between calls (PynamoDB's botocore session, which is
    per thread) is built once, not per call. moto calls Lambda from a new server thread per
    request, and a new session loads botocore's JSON models again: ~0.3 s of CPU per task call,
    60% of the stack's CPU when 40 grants ran at once."""

    CONCURRENCY = 32  # per function; more concurrent calls wait for a container to be free

    def __init__(self) -> None:
        self._pools: dict[str, ThreadPoolExecutor] = {}
        self._lock = threading.Lock()

    def run(self, function: str, call: Callable[[], _T]) -> _T:
        with self._lock:
            pool = self._pools.get(function)
            if pool is None:
                pool = ThreadPoolExecutor(self.CONCURRENCY, thread_name_prefix=f"λ-{function}")
                self._pools[function] = pool
        return pool.submit(call).result()

    def shutdown(self) -> None:
        with self._lock:
            pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.shutdown(wait=False, cancel_futures=True)


def install_lambda_bridge(app: Any, prefix: str | None = None) -> Undo:
    """Make moto's Lambda invoke call `app.handler_map[...]` in-process; returns the undo.

    Functions are named `{prefix}-{handler}`. The handler is called directly, not through
    `chalice.test.Client`, which swaps `os.environ` and is not safe from moto's threads.
    """
    from moto.awslambda_simple.models import LambdaSimpleBackend  # noqa: PLC0415

    prefix = resource_prefix() if prefix is None else prefix
    original = LambdaSimpleBackend.invoke

    def invoke(
        self: Any,
        function_name: str,
        qualifier: str | None,
        body: Any,
        headers: Any,
        response_headers: dict[str, str],
    ) -> bytes:
        name = _function_name(function_name)
        handler_name = name.removeprefix(f"{prefix}-")
        if handler_name not in app.handler_map:
            error = {
                "errorType": "ResourceNotFoundException",
                "errorMessage": f"no handler for function {name}",
            }
            response_headers["x-amz-function-error"] = "Unhandled"
            return json.dumps(error).encode()
        raw = body.decode() if isinstance(body, bytes) else (body or "")
        event = json.loads(raw) if raw.strip() else {}
        payload, failed = containers.run(
            name, lambda: invoke_handler(app, handler_name, event, name, self.region_name)
        )
        if failed:
            response_headers["x-amz-function-error"] = "Unhandled"
        return payload

    containers = WarmContainers()
    setattr(LambdaSimpleBackend, "invoke", invoke)  # noqa: B010

    def undo() -> None:
        setattr(LambdaSimpleBackend, "invoke", original)  # noqa: B010
        containers.shutdown()

    return undo


# --- Step Functions speed-ups ------------------------------------------------------------------

_BOTO_CLIENT_MODULE = "moto.stepfunctions.parser.asl.utils.boto_client"


def _modules_importing_boto_client_for() -> list[types.ModuleType]:
    import importlib  # noqa: PLC0415
    import pkgutil  # noqa: PLC0415
    import sys  # noqa: PLC0415

    # The task modules import `boto_client_for` by name: make sure they are loaded, then patch
    # each one's binding (the Lambda one matters most; services are loaded on demand by moto).
    package = importlib.import_module("moto.stepfunctions.parser.asl.component.state.exec")
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        if "state_task" in info.name:
            with contextlib.suppress(ImportError):  # a service whose extra is not installed
                importlib.import_module(info.name)
    return [
        module
        for name, module in list(sys.modules.items())
        if name.startswith("moto.stepfunctions.") and hasattr(module, "boto_client_for")
    ]


def install_shared_botocore_loader() -> Undo:
    """One botocore data loader for every session in the process, as one Lambda container's
    session keeps its own: a new session (PynamoDB makes one per thread, Powertools one per
    parameter provider) would otherwise parse botocore's endpoint and service JSON again,
    ~0.3 s of CPU each and 40% of the stack's CPU when 40 grants ran at once."""
    import botocore.session  # noqa: PLC0415

    original = botocore.session.create_loader
    shared = cache(original)
    botocore.session.create_loader = shared  # type: ignore[assignment]

    def undo() -> None:
        botocore.session.create_loader = original  # type: ignore[assignment]

    return undo


def install_asl_parse_cache() -> Undo:
    """Parse each state machine definition once, not once per execution (18% of the stack's CPU
    with 40 grants: moto runs its ANTLR parser in every execution). The parsed program is
    stateless: an execution keeps its state (retry counts, ...) in its own environment."""
    from moto.stepfunctions.parser.asl.parse.asl_parser import (  # noqa: PLC0415
        AmazonStateLanguageParser,
    )

    original = AmazonStateLanguageParser.parse
    AmazonStateLanguageParser.parse = staticmethod(cache(original))  # type: ignore[method-assign]

    def undo() -> None:
        AmazonStateLanguageParser.parse = staticmethod(original)  # type: ignore[method-assign]

    return undo


def install_boto_client_cache() -> Undo:
    """Reuse the boto3 clients moto's ASL interpreter builds for every task (~30% less CPU).

    moto builds a fresh client per task call with dummy credentials (the state's credentials are
    ignored), so one client per (region, service, port) is equivalent. It also talks to
    127.0.0.1 rather than `localhost`, which may resolve to IPv6 first.
    """
    import importlib  # noqa: PLC0415

    boto_module = importlib.import_module(_BOTO_CLIENT_MODULE)
    original = boto_module.boto_client_for
    lock = threading.Lock()

    @cache
    def cached(region: str, service: str, port: str) -> Any:
        return boto3.client(
            service_name=service,
            region_name=region,
            endpoint_url=f"http://127.0.0.1:{port}",
            aws_access_key_id="ak",
            aws_secret_access_key="sk",  # noqa: S106 - moto's dummy credentials
            config=Config(
                parameter_validation=False,
                retries={"max_attempts": 0, "total_max_attempts": 1},
                connect_timeout=99999,
                read_timeout=99999,
                max_pool_connections=50,
            ),
        )

    def boto_client_for(region: str, service: str, state_credentials: Any = None) -> Any:
        from moto.core.models import botocore_stubber  # noqa: PLC0415
        from moto.settings import moto_server_port  # noqa: PLC0415

        if botocore_stubber.enabled:  # inside mock_aws: moto's own path intercepts the calls
            return original(region, service, state_credentials)
        with lock:  # boto3 client creation is not thread-safe; the clients themselves are
            return cached(region, service, moto_server_port())

    patched = _modules_importing_boto_client_for()
    for module in patched:
        setattr(module, "boto_client_for", boto_client_for)  # noqa: B010

    def undo() -> None:
        for module in patched:
            setattr(module, "boto_client_for", original)  # noqa: B010
        cached.cache_clear()

    return undo


# moto's DynamoDB operations that read or write items (batch and transactional reads call these).
_ITEM_ANSWERS = ("get_item", "update_item")  # answer the live item object
_DYNAMODB_ITEM_OPERATIONS = (
    "put_item",
    "get_item",
    "update_item",
    "delete_item",
    "query",
    "scan",
    "transact_write_items",
    "execute_statement",
    "execute_transaction",
    "batch_execute_statement",
)


def install_dynamodb_lock() -> Undo:
    """Make moto's DynamoDB atomic under concurrent requests, as DynamoDB is.

    moto checks a condition and then writes, and runs a transaction by deep-copying its tables and
    restoring that copy if any condition fails. Served from many threads, two conditional writes
    on one item could both pass, and a failing transaction could restore a snapshot that wipes
    what other threads wrote meanwhile (an activity entry, a grant). One lock around every item
    operation makes each of them happen whole, in some order — what the app relies on — and the
    item a read or an update answers is a copy taken under it (moto answers the live item,
    serialized after the lock is released).
    """
    from moto.dynamodb.models import DynamoDBBackend  # noqa: PLC0415

    lock = threading.RLock()  # a transaction calls the single-item operations
    originals = {name: getattr(DynamoDBBackend, name) for name in _DYNAMODB_ITEM_OPERATIONS}

    def serialized(operation: Callable[..., Any], *, snapshot: bool) -> Callable[..., Any]:
        @functools.wraps(operation)
        def locked(self: Any, *args: Any, **kwargs: Any) -> Any:
            with lock:
                result = operation(self, *args, **kwargs)
                # The live item is answered after the lock is released: a concurrent update
                # would show through (two `ADD`s both seeing the second's value).
                return copy.deepcopy(result) if snapshot else result

        return locked

    for name, operation in originals.items():
        setattr(DynamoDBBackend, name, serialized(operation, snapshot=name in _ITEM_ANSWERS))

    def undo() -> None:
        for name, operation in originals.items():
            setattr(DynamoDBBackend, name, operation)

    return undo


def install_backend_list_cache() -> Undo:
    """Compute moto's list of service modules once instead of on every request.

    moto's server dispatcher calls `moto.backends.list_of_moto_modules()` for each request, which
    lists moto's package directory and stats ~200 entries: about 4 ms of CPU per AWS call, 40% of
    what a grant's whole workflow costs locally. The package does not change while we run.
    """
    from moto import backends  # noqa: PLC0415

    original = backends.list_of_moto_modules
    modules = tuple(original())
    setattr(backends, "list_of_moto_modules", lambda: modules)  # noqa: B010

    def undo() -> None:
        setattr(backends, "list_of_moto_modules", original)  # noqa: B010

    return undo


class FastClock:
    """Scales Step Functions' Wait states and Retry intervals by `scale`, recording each request.

    `waits` holds `(kind, seconds)` as the state machine asked: kind `wait` for a Wait state,
    `retry` for a Retry interval — so tests can assert e.g. that a Retry-After was honoured.
    """

    def __init__(self, scale: float = 0.001) -> None:
        self.scale = scale
        self.waits: list[tuple[str, float]] = []
        self._lock = threading.Lock()
        self._undo: list[Undo] = []

    def _record(self, kind: str, seconds: float) -> float:
        with self._lock:
            self.waits.append((kind, float(seconds)))
        return max(0.0, float(seconds) * self.scale)

    def clear(self) -> None:
        with self._lock:
            self.waits.clear()

    def start(self) -> None:
        if self._undo:
            return
        from moto.stepfunctions.parser.asl.component.common.retry import (  # noqa: PLC0415
            retrier_decl,
        )
        from moto.stepfunctions.parser.asl.component.state.wait.wait_function import (  # noqa: PLC0415
            wait_function,
        )

        clock = self
        # The retrier calls `time.sleep(interval)` on its module's `time`: give it a scaled one.
        retrier: Any = retrier_decl
        real_time = retrier.time
        fake_time = types.SimpleNamespace(**{n: getattr(time, n) for n in dir(time) if n[0] != "_"})
        fake_time.sleep = lambda seconds: time.sleep(clock._record("retry", seconds))
        retrier.time = fake_time

        wait_class = wait_function.WaitFunction
        real_wait = wait_class._wait_interval

        def _wait_interval(self: Any, env: Any, wait_seconds: int) -> None:
            scaled = clock._record("wait", wait_seconds)
            if scaled > 0:
                env.program_state_event.wait(scaled)

        setattr(wait_class, "_wait_interval", _wait_interval)  # noqa: B010

        def undo() -> None:
            retrier.time = real_time
            setattr(wait_class, "_wait_interval", real_wait)  # noqa: B010

        self._undo.append(undo)

    def stop(self) -> None:
        while self._undo:
            self._undo.pop()()

    def __enter__(self) -> FastClock:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- provisioning ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Provisioned:
    """What `provision` created: enough for the runner and the tests to find it again."""

    tables: dict[str, str]
    functions: dict[str, str]
    state_machines: dict[str, str]
    hr_queue_url: str
    hr_queue_arn: str
    hr_dlq_url: str
    event_bus_name: str
    mail_sender: str


def _table_names(settings: Settings) -> dict[str, str]:
    return {
        "projects": settings.projects_table,
        "contacts": settings.contacts_table,
        "grants": settings.grants_table,
        "activity": settings.activity_table,
        "idempotency": settings.idempotency_table,
        "governance": settings.governance_table,
    }


def _lambda_zip() -> bytes:
    # moto stores the code but never runs it: the bridge calls the Chalice handler instead.
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", "# served in-process by local/aws.py\n")
    return buffer.getvalue()


@contextmanager
def _exists_ok(*codes: str) -> Iterator[None]:
    """Swallow the "already exists" error codes: provisioning twice is harmless."""
    from botocore.exceptions import ClientError  # noqa: PLC0415

    try:
        yield
    except ClientError as exc:
        if exc.response["Error"]["Code"] not in codes:
            raise


def _create_tables(endpoint: str, settings: Settings) -> dict[str, str]:
    from infra.resources import tables  # noqa: PLC0415

    dynamodb = aws_client("dynamodb", endpoint, settings.region)
    names = _table_names(settings)
    for key, props in tables().items():
        kwargs = {k: v for k, v in props.items() if k != "TimeToLiveSpecification"}
        with _exists_ok("ResourceInUseException"):
            dynamodb.create_table(TableName=names[key], **kwargs)
        ttl = props.get("TimeToLiveSpecification")
        if ttl:
            dynamodb.update_time_to_live(TableName=names[key], TimeToLiveSpecification=ttl)
    return names


def _role(endpoint: str, region: str, name: str, service: str) -> str:
    iam = aws_client("iam", endpoint, region)
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}
        ],
    }
    with _exists_ok("EntityAlreadyExists"):
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))
    return f"arn:aws:iam::{ACCOUNT_ID}:role/{name}"


def _create_functions(
    endpoint: str, settings: Settings, handler_names: list[str], prefix: str
) -> dict[str, str]:
    role = _role(endpoint, settings.region, LAMBDA_ROLE, "lambda.amazonaws.com")
    lambda_ = aws_client("lambda", endpoint, settings.region)
    code = _lambda_zip()
    arns = {}
    for handler in handler_names:
        name = f"{prefix}-{handler}"
        with _exists_ok("ResourceConflictException"):
            lambda_.create_function(
                FunctionName=name,
                Runtime="python3.11",
                Role=role,
                Handler=f"app.{handler}",
                Code={"ZipFile": code},
                MemorySize=LAMBDA_MEMORY_MB,
                Timeout=LAMBDA_TIMEOUT_S,
            )
        arns[handler] = f"arn:aws:lambda:{settings.region}:{ACCOUNT_ID}:function:{name}"
    return arns


def _create_state_machines(
    endpoint: str, settings: Settings, function_arns: dict[str, str]
) -> dict[str, str]:
    from infra.resources import TASK_FUNCTIONS, logical_id, render_definition  # noqa: PLC0415

    role = _role(endpoint, settings.region, SFN_ROLE, "states.amazonaws.com")
    sfn = aws_client("stepfunctions", endpoint, settings.region)
    by_logical_id = {logical_id(handler): arn for handler, arn in function_arns.items()}
    wanted = {
        "grant-activation": settings.activation_state_machine_arn,
        "grant-removal": settings.removal_state_machine_arn,
    }
    for name, arn in wanted.items():
        missing = set(TASK_FUNCTIONS[name]) - set(by_logical_id)
        if missing:
            raise RuntimeError(f"{name} needs Lambda functions the app lacks: {sorted(missing)}")
        definition = render_definition(name, by_logical_id)
        machine_name = arn.rsplit(":", 1)[-1]
        try:
            created = sfn.create_state_machine(
                name=machine_name, definition=definition, roleArn=role, type="STANDARD"
            )["stateMachineArn"]
        except sfn.exceptions.StateMachineAlreadyExists:
            sfn.update_state_machine(stateMachineArn=arn, definition=definition)
            created = arn
        if created != arn:
            raise RuntimeError(f"state machine ARN {created} is not the configured {arn}")
    return wanted


def _create_queues(endpoint: str, settings: Settings, prefix: str) -> tuple[str, str, str]:
    from infra.resources import HR_QUEUE_MAX_RECEIVES  # noqa: PLC0415

    sqs = aws_client("sqs", endpoint, settings.region)
    dlq_url = sqs.create_queue(QueueName=f"{prefix}-hr-events-dlq")["QueueUrl"]
    dlq_arn = f"arn:aws:sqs:{settings.region}:{ACCOUNT_ID}:{prefix}-hr-events-dlq"
    redrive = {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(HR_QUEUE_MAX_RECEIVES)}
    queue_url = sqs.create_queue(
        QueueName=f"{prefix}-hr-events",
        Attributes={"RedrivePolicy": json.dumps(redrive), "VisibilityTimeout": "30"},
    )["QueueUrl"]
    queue_arn = f"arn:aws:sqs:{settings.region}:{ACCOUNT_ID}:{prefix}-hr-events"
    return queue_url, queue_arn, dlq_url


def _create_bus(endpoint: str, settings: Settings) -> str:
    events = aws_client("events", endpoint, settings.region)
    with _exists_ok("ResourceAlreadyExistsException"):
        events.create_event_bus(Name=settings.event_bus_name)
    return settings.event_bus_name


def _verify_sender(endpoint: str, settings: Settings) -> str:
    ses = aws_client("ses", endpoint, settings.region)
    ses.verify_email_identity(EmailAddress=settings.mail_sender)
    ses.verify_domain_identity(Domain=settings.mail_sender.rsplit("@", 1)[-1])
    return settings.mail_sender


def create_secrets(
    endpoint: str, region: str, secrets: dict[str, tuple[str, str]]
) -> dict[str, str]:
    """Create (or refresh) `{key: (name, value)}` in Secrets Manager; returns `{key: ARN}`."""
    client = aws_client("secretsmanager", endpoint, region)
    arns = {}
    for key, (name, value) in secrets.items():
        try:
            arns[key] = str(client.create_secret(Name=name, SecretString=value)["ARN"])
        except client.exceptions.ResourceExistsException:
            client.put_secret_value(SecretId=name, SecretString=value)
            arns[key] = str(client.describe_secret(SecretId=name)["ARN"])
    return arns


def _check_table_models(settings: Settings) -> None:
    # PynamoDB reads table names when chalicelib is imported: a stale import would miss tables.
    from chalicelib.store.tables import ALL_TABLES  # noqa: PLC0415
    from infra.resources import table_key  # noqa: PLC0415

    names = _table_names(settings)
    for model in ALL_TABLES:
        if model.Meta.table_name != names[table_key(model)]:
            raise RuntimeError(
                f"{model.__name__} uses table {model.Meta.table_name} but the settings say "
                f"{names[table_key(model)]}: set the environment before importing the app"
            )


def provision(settings: Settings, app: Any = None, endpoint_url: str | None = None) -> Provisioned:
    """Create (or refresh) every resource the app uses in the moto server at `endpoint_url`.

    `app` is the Chalice app whose `@app.lambda_function`s become Lambda functions (default: the
    `app` module's); `endpoint_url` defaults to `AWS_ENDPOINT_URL`.
    """
    if app is None:
        import importlib  # noqa: PLC0415

        app = importlib.import_module("app").app
    endpoint = endpoint_url or os.environ["AWS_ENDPOINT_URL"]
    prefix = resource_prefix()
    _check_table_models(settings)
    tables = _create_tables(endpoint, settings)
    functions = _create_functions(endpoint, settings, lambda_handler_names(app), prefix)
    machines = _create_state_machines(endpoint, settings, functions)
    queue_url, queue_arn, dlq_url = _create_queues(endpoint, settings, prefix)
    return Provisioned(
        tables=tables,
        functions=functions,
        state_machines=machines,
        hr_queue_url=queue_url,
        hr_queue_arn=queue_arn,
        hr_dlq_url=dlq_url,
        event_bus_name=_create_bus(endpoint, settings),
        mail_sender=_verify_sender(endpoint, settings),
    )


# --- between tests -----------------------------------------------------------------------------


def _delete_all_items(dynamodb: Any, table: str) -> None:
    schema = dynamodb.describe_table(TableName=table)["Table"]["KeySchema"]
    names = {f"#k{i}": key["AttributeName"] for i, key in enumerate(schema)}
    pages = dynamodb.get_paginator("scan").paginate(
        TableName=table, ProjectionExpression=", ".join(names), ExpressionAttributeNames=names
    )
    for page in pages:
        items = page.get("Items", [])
        for start in range(0, len(items), 25):
            batch = items[start : start + 25]
            dynamodb.batch_write_item(
                RequestItems={table: [{"DeleteRequest": {"Key": item}} for item in batch]}
            )


def reset_aws(
    provisioned: Provisioned, settings: Settings, endpoint_url: str | None = None
) -> None:
    """Empty every table, queue and the SES outbox (much faster than provisioning again)."""
    from moto.ses.models import ses_backends  # noqa: PLC0415
    from moto.sqs.models import sqs_backends  # noqa: PLC0415

    endpoint = endpoint_url or os.environ["AWS_ENDPOINT_URL"]
    dynamodb = aws_client("dynamodb", endpoint, settings.region)
    for table in provisioned.tables.values():
        _delete_all_items(dynamodb, table)
    sqs = sqs_backends[ACCOUNT_ID][settings.region]
    for queue_url in (provisioned.hr_queue_url, provisioned.hr_dlq_url):
        # moto allows one PurgeQueue a minute, as SQS does: purge in-process, limit reset.
        queue_name = queue_url.rsplit("/", 1)[-1]
        sqs.get_queue(queue_name).last_purged_at = None
        sqs.purge_queue(queue_name)
    ses_backends[ACCOUNT_ID][settings.region].sent_messages.clear()
