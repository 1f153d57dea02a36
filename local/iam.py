"""Each function's IAM in the local stack, as in AWS: its role's statements from the template.

The local stack runs every Lambda function in one process against moto, whose dummy credentials
may do anything. Here:

- every botocore call made while a function runs (the API, a workflow task, a schedule) is
  turned into the IAM action(s) and resource ARN(s) AWS authorizes it as, and checked against
  the statements the template gives that function's role (`infra.template.build`, with the
  local resource names, references resolved to the local resources). A call no statement allows
  raises the `AccessDenied` error AWS would answer, and is recorded in `denials`;
- each function gets its own caches (the app's `lru_cache`s, Powertools' parameter providers),
  as separate Lambda containers have: a client, service or secret one function built never
  hides another function's missing permission;
- the secrets exist in moto under the template's names, and the functions' `*_SECRET_ARN`
  settings are what the template sets them to (`{"Ref": <secret>}`, i.e. their ARNs).

Calls made outside any function (test set-up, the stack's own provisioning, moto's Step
Functions interpreter) are not checked. Why an in-process check rather than moto's IAM
enforcement: docs/infra.md.
"""

from __future__ import annotations

import fnmatch
import functools
import importlib
import pkgutil
import re
import sys
import threading
from collections.abc import Callable, Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.utils import parseaddr
from typing import Any, NoReturn

from botocore.client import BaseClient
from botocore.exceptions import ClientError

Json = dict[str, Any]
API_FUNCTION = "api_handler"
TEMPLATE_STAGE = "dev"  # the policies of every stage are the same but for names


# --- which function is running ------------------------------------------------------------------

_running = threading.local()


def current_function() -> str | None:
    """The function whose code runs on this thread, if any."""
    return getattr(_running, "function", None)


@contextmanager
def running_as(function: str) -> Iterator[None]:
    previous = current_function()
    _running.function = function
    try:
        yield
    finally:
        _running.function = previous


# --- the template's statements, resolved to local resources -----------------------------------


class Unresolvable(ValueError):
    """A reference the local stack has no value for: a policy it cannot evaluate."""


@dataclass
class Resolver:
    """Evaluates the intrinsic functions IAM statements use, against local values."""

    refs: dict[str, str]  # logical id or parameter → value of `Ref`
    attributes: dict[tuple[str, str], str]  # (logical id, attribute) → value of `Fn::GetAtt`

    def resolve(self, node: Any) -> Any:
        if isinstance(node, list):
            return [self.resolve(item) for item in node]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, value),) = node.items()
            intrinsics: dict[str, Callable[[Any], Any]] = {
                "Ref": self._ref,
                "Fn::GetAtt": lambda v: self._attribute(v[0], v[1]),
                "Fn::Sub": self._sub,
                "Fn::Join": lambda v: v[0].join(self.resolve(v[1])),
            }
            intrinsic = intrinsics.get(key)
            if intrinsic is not None:
                return intrinsic(value)
            if key.startswith("Fn::"):
                raise Unresolvable(f"{key} is not evaluated by the local IAM check")
        return {key: self.resolve(value) for key, value in node.items()}

    def _ref(self, name: str) -> str:
        try:
            return self.refs[name]
        except KeyError:
            raise Unresolvable(f"no local value for Ref {name}") from None

    def _attribute(self, logical_id: str, attribute: str) -> str:
        try:
            return self.attributes[(logical_id, attribute)]
        except KeyError:
            raise Unresolvable(f"no local value for {logical_id}.{attribute}") from None

    def _sub(self, value: Any) -> str:
        text, variables = (value, {}) if isinstance(value, str) else value
        extra = {name: self.resolve(v) for name, v in variables.items()}

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in extra:
                return str(extra[name])
            if "." in name:
                logical_id, attribute = name.split(".", 1)
                return self._attribute(logical_id, attribute)
            return self._ref(name)

        return re.sub(r"\$\{([^}]+)\}", replace, text)


@dataclass
class FunctionPolicies:
    """What each function's role allows (its statements), and the resources' own policies."""

    statements: dict[str, list[Json]]  # Chalice function name → resolved statements
    resource_policies: dict[str, list[Json]] = field(default_factory=dict)  # ARN → statements
    environment: dict[str, str] = field(default_factory=dict)  # secret settings as set in AWS


def function_policies(
    template: Json, functions: list[Any], base_policy: Json, resolver: Resolver
) -> FunctionPolicies:
    """Each function's role statements (inline base policy + its own policy resource)."""
    resources = template["Resources"]
    statements: dict[str, list[Json]] = {}
    for function in functions:
        policy = resources[function.policy_id]["Properties"]["PolicyDocument"]
        statements[function.name] = [
            *resolver.resolve(_as_list(base_policy["Statement"])),
            *resolver.resolve(_as_list(policy["Statement"])),
        ]
    resource_policies: dict[str, list[Json]] = {}
    for logical_id, body in resources.items():
        document = body.get("Properties", {}).get("ResourcePolicy", {}).get("PolicyDocument")
        if document and body["Type"] == "AWS::DynamoDB::Table":
            arn = resolver.resolve({"Fn::GetAtt": [logical_id, "Arn"]})
            resource_policies[arn] = resolver.resolve(_as_list(document["Statement"]))
    return FunctionPolicies(statements, resource_policies)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


# --- botocore calls as IAM requests -----------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """One authorization AWS makes for a call: action, resource and the condition keys known."""

    action: str
    resource: str
    context: tuple[tuple[str, str], ...] = ()


class UnknownCall(LookupError):
    """A call whose IAM action and resource this module does not know: refused, not guessed."""


def _dynamodb_table_arn(name: str, region: str, account: str) -> str:
    return name if name.startswith("arn:") else f"arn:aws:dynamodb:{region}:{account}:table/{name}"


_TRANSACT_ACTIONS = {
    "Put": "dynamodb:PutItem",
    "Update": "dynamodb:UpdateItem",
    "Delete": "dynamodb:DeleteItem",
    "ConditionCheck": "dynamodb:ConditionCheckItem",
    "Get": "dynamodb:GetItem",
}
_DYNAMODB_SINGLE_TABLE = {
    "GetItem",
    "PutItem",
    "UpdateItem",
    "DeleteItem",
    "Query",
    "Scan",
    "DescribeTable",
}
_SQS_QUEUE_URL = re.compile(r"/(?P<account>\d{12})/(?P<name>[^/?]+)$")


def _dynamodb(operation: str, params: Json, region: str, account: str) -> list[Request]:
    if operation in _DYNAMODB_SINGLE_TABLE:
        arn = _dynamodb_table_arn(params["TableName"], region, account)
        if params.get("IndexName") and operation in ("Query", "Scan"):
            arn = f"{arn}/index/{params['IndexName']}"
        return [Request(f"dynamodb:{operation}", arn)]
    if operation in ("TransactWriteItems", "TransactGetItems"):
        found = []
        for item in params["TransactItems"]:
            ((kind, body),) = item.items()
            arn = _dynamodb_table_arn(body["TableName"], region, account)
            found.append(Request(_TRANSACT_ACTIONS[kind], arn))
        return found
    if operation in ("BatchGetItem", "BatchWriteItem"):
        return [
            Request(f"dynamodb:{operation}", _dynamodb_table_arn(table, region, account))
            for table in params["RequestItems"]
        ]
    raise UnknownCall(f"dynamodb.{operation}")


def _states(operation: str, params: Json, region: str, account: str) -> list[Request]:
    arn_parameter = {"StartExecution": "stateMachineArn", "DescribeExecution": "executionArn"}
    if operation not in arn_parameter:
        raise UnknownCall(f"stepfunctions.{operation}")
    return [Request(f"states:{operation}", params[arn_parameter[operation]])]


def _secrets(operation: str, params: Json, region: str, account: str) -> list[Request]:
    if operation != "GetSecretValue":
        raise UnknownCall(f"secretsmanager.{operation}")
    secret = str(params["SecretId"])
    if not secret.startswith("arn:"):
        secret = f"arn:aws:secretsmanager:{region}:{account}:secret:{secret}"
    return [Request("secretsmanager:GetSecretValue", secret)]


def _events(operation: str, params: Json, region: str, account: str) -> list[Request]:
    if operation != "PutEvents":
        raise UnknownCall(f"events.{operation}")
    buses = {str(entry.get("EventBusName") or "default") for entry in params["Entries"]}
    prefix = f"arn:aws:events:{region}:{account}:event-bus/"
    return [
        Request("events:PutEvents", bus if bus.startswith("arn:") else prefix + bus)
        for bus in sorted(buses)
    ]


def _ses(operation: str, params: Json, region: str, account: str) -> list[Request]:
    if operation not in ("SendEmail", "SendRawEmail"):
        raise UnknownCall(f"ses.{operation}")
    # Authorized on the sending identity (its domain here), with the From address as a key.
    sender = parseaddr(str(params.get("Source") or ""))[1]
    identity = f"arn:aws:ses:{region}:{account}:identity/{sender.rsplit('@', 1)[-1]}"
    return [Request(f"ses:{operation}", identity, (("ses:FromAddress", sender),))]


def _sqs(operation: str, params: Json, region: str, account: str) -> list[Request]:
    match = _SQS_QUEUE_URL.search(str(params.get("QueueUrl", "")))
    if not match:
        raise UnknownCall(f"sqs.{operation}")
    return [Request(f"sqs:{operation}", f"arn:aws:sqs:{region}:{match['account']}:{match['name']}")]


def _sts(operation: str, params: Json, region: str, account: str) -> list[Request]:
    if operation != "GetCallerIdentity":
        raise UnknownCall(f"sts.{operation}")
    return []  # needs no permission


_BY_SERVICE: dict[str, Callable[[str, Json, str, str], list[Request]]] = {
    "dynamodb": _dynamodb,
    "stepfunctions": _states,
    "secretsmanager": _secrets,
    "events": _events,
    "ses": _ses,
    "sqs": _sqs,
    "sts": _sts,
}


def requests_for(
    service: str, operation: str, params: Json, region: str, account: str
) -> list[Request]:
    """The authorizations AWS makes for `service.operation(**params)` (as its docs list them)."""
    try:
        authorize = _BY_SERVICE[service]
    except KeyError:
        raise UnknownCall(f"{service}.{operation}") from None
    return authorize(operation, params, region, account)


# --- policy evaluation ------------------------------------------------------------------------


class UnsupportedCondition(ValueError):
    """A condition the local check cannot evaluate: refused rather than assumed true."""


def _matches(patterns: Any, value: str, *, case_sensitive: bool) -> bool:
    for pattern in _as_list(patterns):
        if pattern == "*":
            return True
        if case_sensitive and fnmatch.fnmatchcase(value, pattern):
            return True
        if not case_sensitive and fnmatch.fnmatchcase(value.lower(), str(pattern).lower()):
            return True
    return False


def _condition_holds(condition: Json, context: dict[str, str]) -> bool:
    for operator, tests in condition.items():
        for key, expected in tests.items():
            actual = context.get(key)
            if actual is None:
                return False
            if operator == "StringEquals":
                ok = actual in [str(e) for e in _as_list(expected)]
            elif operator == "StringLike":
                ok = _matches(expected, actual, case_sensitive=True)
            elif operator == "StringEqualsIgnoreCase":
                ok = actual.lower() in [str(e).lower() for e in _as_list(expected)]
            else:
                raise UnsupportedCondition(f"{operator} on {key}")
            if not ok:
                return False
    return True


def _applies(statement: Json, request: Request) -> bool:
    if "Action" in statement:
        if not _matches(statement["Action"], request.action, case_sensitive=False):
            return False
    elif _matches(statement.get("NotAction", []), request.action, case_sensitive=False):
        return False
    if "Resource" in statement:
        if not _matches(statement["Resource"], request.resource, case_sensitive=True):
            return False
    elif _matches(statement.get("NotResource", []), request.resource, case_sensitive=True):
        return False
    return _condition_holds(statement.get("Condition", {}), dict(request.context))


def is_allowed(
    statements: list[Json], request: Request, resource_policy: list[Json] | None = None
) -> bool:
    """IAM's rule for one account: an explicit Deny anywhere wins, else some Allow is needed."""
    for statement in [*statements, *(resource_policy or [])]:
        if statement["Effect"] == "Deny" and _applies(statement, request):
            return False
    return any(s["Effect"] == "Allow" and _applies(s, request) for s in statements)


# --- one cache per function -----------------------------------------------------------------


def _load_every_module(package: str) -> None:
    # Lazily imported modules would miss the patch: load them all now (local stack only).
    root = importlib.import_module(package)
    for info in pkgutil.walk_packages(root.__path__, package + "."):
        importlib.import_module(info.name)


class FunctionCaches:
    """Gives every function its own copy of the app's `lru_cache`s and Powertools providers.

    The module-level cached factories of `chalicelib` (settings, services, the JSM client, the
    workflow steps...) are rebound to dispatchers that keep one cache per running function;
    outside a function the original cache serves. `cache_clear()` on either clears every copy.
    The boto3 client factory stays shared: a client holds no permission and no fetched data
    (each of its calls is checked as the calling function's), and tests patch its methods.
    """

    SHARED = frozenset({"chalicelib.aws.client"})

    def __init__(self, packages: tuple[str, ...] = ("chalicelib",)) -> None:
        self._packages = packages
        self._undo: list[Callable[[], None]] = []
        self._forget: list[Callable[[str], None]] = []

    def cold_start(self, function: str) -> None:
        """Forget what `function` cached, as a new container of it would start with nothing."""
        for forget in self._forget:
            forget(function)

    def _modules(self) -> list[Any]:
        return [
            module
            for name, module in list(sys.modules.items())
            if module is not None
            and (
                name == "app" or any(name == p or name.startswith(p + ".") for p in self._packages)
            )
        ]

    def install(self) -> None:
        for package in self._packages:
            _load_every_module(package)
        modules = self._modules()
        originals: dict[int, Any] = {}
        for module in modules:
            for value in vars(module).values():
                module_name = getattr(value, "__module__", "") or ""
                qualified = f"{module_name}.{getattr(value, '__qualname__', '')}"
                if (
                    isinstance(value, functools._lru_cache_wrapper)
                    and module_name.startswith(self._packages)
                    and qualified not in self.SHARED
                ):
                    originals[id(value)] = value
        dispatchers = {key: self._scoped(original) for key, original in originals.items()}
        for module in modules:
            for name, value in list(vars(module).items()):
                dispatcher = dispatchers.get(id(value))
                if dispatcher is not None and value is originals[id(value)]:
                    setattr(module, name, dispatcher)
                    self._undo.append(functools.partial(setattr, module, name, value))
        self._install_parameter_providers()

    def _scoped(self, original: Any) -> Any:
        caches: dict[str, Any] = {}
        lock = threading.Lock()
        parameters = original.cache_parameters()
        clear_original = original.cache_clear

        @functools.wraps(original)
        def dispatch(*args: Any, **kwargs: Any) -> Any:
            function = current_function()
            if function is None:
                return original(*args, **kwargs)
            with lock:
                cached = caches.get(function)
                if cached is None:
                    cached = functools.lru_cache(
                        maxsize=parameters["maxsize"], typed=parameters["typed"]
                    )(original.__wrapped__)
                    caches[function] = cached
            return cached(*args, **kwargs)

        def clear_every_copy() -> None:
            with lock:
                for cached in caches.values():
                    cached.cache_clear()
            clear_original()

        def forget(function: str) -> None:
            with lock:
                caches.pop(function, None)

        self._forget.append(forget)
        dispatch.cache_clear = clear_every_copy  # type: ignore[attr-defined]
        # Tests that imported the factory before the stack started hold the original.
        original.cache_clear = clear_every_copy
        self._undo.append(lambda: delattr(original, "cache_clear"))
        return dispatch

    def _install_parameter_providers(self) -> None:
        # Every module of Powertools' parameters holds the one DEFAULT_PROVIDERS dict by name.
        from aws_lambda_powertools.utilities import parameters  # noqa: PLC0415
        from aws_lambda_powertools.utilities.parameters import constants  # noqa: PLC0415

        shared = constants.DEFAULT_PROVIDERS
        scoped = _ProvidersPerFunction(shared)
        self._forget.append(scoped.forget)
        for name, module in list(sys.modules.items()):
            if (
                name.startswith(parameters.__name__)
                and getattr(module, "DEFAULT_PROVIDERS", None) is shared
            ):
                setattr(module, "DEFAULT_PROVIDERS", scoped)  # noqa: B010
                self._undo.append(functools.partial(setattr, module, "DEFAULT_PROVIDERS", shared))

    def uninstall(self) -> None:
        while self._undo:
            self._undo.pop()()


class _ProvidersPerFunction(MutableMapping[str, Any]):
    """Powertools' `DEFAULT_PROVIDERS` (and so its secret cache), one dict per function."""

    def __init__(self, shared: dict[str, Any]) -> None:
        self._shared = shared
        self._per_function: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def forget(self, function: str) -> None:
        with self._lock:
            self._per_function.pop(function, None)

    def _providers(self) -> dict[str, Any]:
        function = current_function()
        if function is None:
            return self._shared
        with self._lock:
            return self._per_function.setdefault(function, {})

    def __getitem__(self, key: str) -> Any:
        return self._providers()[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._providers()[key] = value

    def __delitem__(self, key: str) -> None:
        del self._providers()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._providers())

    def __len__(self) -> int:
        return len(self._providers())

    def clear(self) -> None:
        with self._lock:
            self._per_function.clear()
        self._shared.clear()


# --- enforcement ------------------------------------------------------------------------------

# How each service says "not authorized" (error code, HTTP status).
_ACCESS_DENIED = {
    "dynamodb": ("AccessDeniedException", 400),
    "ses": ("AccessDenied", 403),
    "sqs": ("AccessDenied", 403),
}


@dataclass(frozen=True)
class Denial:
    function: str
    action: str
    resource: str
    reason: str = "no identity-based policy allows it"


class IamEnforcer:
    """Checks every AWS call a function makes against its role; see the module docstring."""

    def __init__(self, policies: FunctionPolicies, region: str, account: str) -> None:
        self.policies = policies
        self.region = region
        self.account = account
        self.denials: list[Denial] = []
        self._lock = threading.Lock()
        self._undo: list[Callable[[], None]] = []
        self.caches = FunctionCaches()

    # --- reading and changing the policies (tests) ---------------------------------------------

    def take_denials(self) -> list[Denial]:
        """The denials recorded since the last call (and forget them)."""
        with self._lock:
            found, self.denials = self.denials, []
        return found

    @contextmanager
    def withdrawn(self, function: str, action: str) -> Iterator[None]:
        """Within the block, `function`'s role no longer allows `action` (on any resource).

        The function starts cold (nothing cached), so what it fetched before is fetched again.
        """
        self.caches.cold_start(function)
        saved = self.policies.statements[function]
        kept = []
        for statement in saved:
            if action not in _as_list(statement.get("Action", [])):
                kept.append(statement)
                continue
            actions = [a for a in _as_list(statement["Action"]) if a != action]
            if actions:
                kept.append({**statement, "Action": actions})
        if len(kept) == len(saved) and all(a is b for a, b in zip(kept, saved, strict=True)):
            raise ValueError(f"{function}'s role does not allow {action}: nothing to withdraw")
        self.policies.statements[function] = kept
        try:
            yield
        finally:
            self.policies.statements[function] = saved

    # --- the check ------------------------------------------------------------------------------

    def check(self, function: str, service: str, operation: str, params: Json) -> None:
        """Raise AWS's AccessDenied error if `function` may not make this call."""
        statements = self.policies.statements.get(function)
        if statements is None:
            self._deny(
                function,
                f"{service}:{operation}",
                "*",
                service,
                operation,
                "the function has no role in the template",
            )
        try:
            requests = requests_for(service, operation, params, self.region, self.account)
        except UnknownCall:
            self._deny(
                function,
                f"{service}:{operation}",
                "*",
                service,
                operation,
                "local/iam.py does not know how AWS authorizes this call: add it there",
            )
        for request in requests:
            resource_policy = self._resource_policy(request.resource)
            try:
                allowed = is_allowed(statements or [], request, resource_policy)
            except UnsupportedCondition as exc:
                self._deny(
                    function,
                    request.action,
                    request.resource,
                    service,
                    operation,
                    f"condition not evaluated locally: {exc}",
                )
            if not allowed:
                self._deny(function, request.action, request.resource, service, operation)

    def _resource_policy(self, resource: str) -> list[Json] | None:
        for arn, statements in self.policies.resource_policies.items():
            if resource == arn or resource.startswith(arn + "/"):
                return statements
        return None

    def _deny(
        self,
        function: str,
        action: str,
        resource: str,
        service: str,
        operation: str,
        reason: str = "no identity-based policy allows it",
    ) -> NoReturn:
        denial = Denial(function, action, resource, reason)
        with self._lock:
            self.denials.append(denial)
        code, status = _ACCESS_DENIED.get(service, ("AccessDeniedException", 400))
        message = (
            f"User: arn:aws:sts::{self.account}:assumed-role/{function}-role/{function} is not "
            f"authorized to perform: {action} on resource: {resource} because {reason}"
        )
        raise ClientError(
            {
                "Error": {"Code": code, "Message": message},
                "ResponseMetadata": {"HTTPStatusCode": status},
            },
            operation,
        )

    # --- wiring -----------------------------------------------------------------------------

    def install(self, app: Any) -> None:
        """Attribute every handler of `app` to its function, check its calls, split its caches."""
        from chalice.app import Chalice  # noqa: PLC0415

        self.caches.install()
        self._undo.append(self.caches.uninstall)

        enforcer = self
        original_call = BaseClient._make_api_call

        def make_api_call(client: BaseClient, operation: str, params: Json) -> Any:
            function = current_function()
            if function is not None:
                service = client.meta.service_model.service_name
                enforcer.check(function, service, operation, params)
            return original_call(client, operation, params)

        BaseClient._make_api_call = make_api_call  # type: ignore[method-assign]
        self._undo.append(functools.partial(setattr, BaseClient, "_make_api_call", original_call))

        original_app_call = Chalice.__call__

        def api_call(chalice_app: Chalice, event: Any, context: Any) -> Any:
            if chalice_app is not app:
                return original_app_call(chalice_app, event, context)
            with running_as(API_FUNCTION):
                return original_app_call(chalice_app, event, context)

        Chalice.__call__ = api_call  # type: ignore[method-assign, assignment]
        self._undo.append(functools.partial(setattr, Chalice, "__call__", original_app_call))

        handlers = dict(app.handler_map)
        for name, handler in handlers.items():
            if name in self.policies.statements and name != API_FUNCTION:
                app.handler_map[name] = _as_function(name, handler)
        self._undo.append(lambda: app.handler_map.update(handlers))

    def uninstall(self) -> None:
        while self._undo:
            self._undo.pop()()


def _as_function(name: str, handler: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(handler)
    def run(*args: Any, **kwargs: Any) -> Any:
        with running_as(name):
            return handler(*args, **kwargs)

    return run


# --- building it for the local stack --------------------------------------------------------


def local_template() -> tuple[Json, list[Any]]:
    """The template (`infra.template.build`) with the local stack's names, and its functions."""
    from infra import template  # noqa: PLC0415
    from infra.functions import app_functions  # noqa: PLC0415
    from local.aws import resource_prefix  # noqa: PLC0415

    functions = app_functions(TEMPLATE_STAGE)
    return template.build(TEMPLATE_STAGE, functions, prefix=resource_prefix()), functions


def local_policies(
    built: Json,
    functions: list[Any],
    settings: Any,
    provisioned: Any,
    secrets: dict[str, str],
    account: str,
) -> FunctionPolicies:
    """Each function's policies in `built`, resolved to the local resources.

    `secrets` maps each secret's key (`jira_token`, ...) to its ARN in moto.
    """
    from infra import access, resources, template  # noqa: PLC0415

    region = settings.region
    refs: dict[str, str] = {
        "AWS::Partition": "aws",
        "AWS::Region": region,
        "AWS::AccountId": account,
        "AWS::URLSuffix": "amazonaws.com",
        "MailSender": settings.mail_sender,
        "SupportTeamEmail": settings.support_team_email,
        template.EVENT_BUS_ID: provisioned.event_bus_name,
        template.HR_QUEUE_ID: provisioned.hr_queue_url,
    }
    attributes: dict[tuple[str, str], str] = {
        (template.EVENT_BUS_ID, "Arn"): (
            f"arn:aws:events:{region}:{account}:event-bus/{provisioned.event_bus_name}"
        ),
        (template.HR_QUEUE_ID, "Arn"): provisioned.hr_queue_arn,
    }
    for key, table_id in resources.TABLE_IDS.items():
        name = provisioned.tables[key]
        refs[table_id] = name
        attributes[(table_id, "Arn")] = _dynamodb_table_arn(name, region, account)
    for key, secret_id in template.SECRET_IDS.items():
        refs[secret_id] = secrets[key]
    resolver = Resolver(refs, attributes)
    policies = function_policies(built, functions, access.base_role_policy(), resolver)
    api = next(f for f in functions if f.name == API_FUNCTION)
    variables = built["Resources"][api.logical_id]["Properties"]["Environment"]["Variables"]
    policies.environment = {
        variable: resolver.resolve(variables[variable]) for variable in template.SECRET_ENV.values()
    }
    return policies


def secret_names(built: Json) -> dict[str, str]:
    """`{"jira_token": "<prefix>/jira-api-token", ...}`: the names the template gives them."""
    from infra import template  # noqa: PLC0415

    return {
        key: str(built["Resources"][secret_id]["Properties"]["Name"])
        for key, secret_id in template.SECRET_IDS.items()
    }
