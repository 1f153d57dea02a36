"""The AWS resources the app needs besides its Lambdas, as CloudFormation, from one source.

`infra/template.py` merges these into `chalice package`'s template for AWS, and the local stack
(`local/aws.py`) provisions moto from the very same definitions, so tables, queues, the bus and
the state machines cannot drift between the two.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from pynamodb.models import Model

from chalicelib.store.tables import ALL_TABLES, TTL_ATTRIBUTES

ROOT = Path(__file__).resolve().parent.parent
STATE_MACHINES_DIR = ROOT / "statemachines"

# Logical ids (and ${...} placeholders) of the Lambda tasks each state machine calls; Chalice
# names the logical id of `@app.lambda_function(name="ensure_customer")` "EnsureCustomer".
TASK_FUNCTIONS = {
    "grant-activation": [
        "EnsureCustomer",
        "AddToServiceDesk",
        "AddToOrganization",
        "CompleteActivation",
        "UndoActivation",
        "RecordFailure",
    ],
    "grant-removal": ["LeaveOrganization", "LeaveServiceDesk", "CompleteRemoval", "RecordFailure"],
}
STATE_MACHINE_IDS = {
    "grant-activation": "GrantActivationStateMachine",
    "grant-removal": "GrantRemovalStateMachine",
}
TABLE_IDS = {
    "projects": "ProjectsTable",
    "contacts": "ContactsTable",
    "grants": "GrantsTable",
    "activity": "ActivityTable",
    "idempotency": "IdempotencyTable",
    "governance": "GovernanceTable",
}


def logical_id(snake: str) -> str:
    """`ensure_customer` → `EnsureCustomer`, as Chalice names a function's resource."""
    return "".join(part.capitalize() for part in snake.split("_"))


def table_key(model: type[Model]) -> str:
    """`helpdesk-local-grants` → `grants`: the table's role, independent of stage prefixes."""
    return str(model.Meta.table_name).rsplit("-", 1)[-1]


def table_properties(model: type[Model]) -> dict[str, Any]:
    """A PynamoDB model as `AWS::DynamoDB::Table` properties (without name and protection)."""
    schema = model._get_schema()  # the same schema PynamoDB's own create_table sends
    props: dict[str, Any] = {
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": sorted(
            schema["attribute_definitions"], key=lambda a: a["AttributeName"]
        ),
        "KeySchema": _hash_first(schema["key_schema"]),
    }
    indexes = schema.get("global_secondary_indexes") or []
    if indexes:
        props["GlobalSecondaryIndexes"] = [
            {
                "IndexName": i["index_name"],
                "KeySchema": _hash_first(i["key_schema"]),
                "Projection": i["projection"],
            }
            for i in indexes
        ]
    ttl = TTL_ATTRIBUTES.get(model)
    if ttl:
        props["TimeToLiveSpecification"] = {"AttributeName": ttl, "Enabled": True}
    return props


def _hash_first(keys: list[Any]) -> list[Any]:
    return sorted(keys, key=lambda k: k["KeyType"] != "HASH")


def tables() -> dict[str, dict[str, Any]]:
    """`{table key: table properties}` for every table of the app."""
    return {table_key(model): table_properties(model) for model in ALL_TABLES}


def state_machine_definition(name: str) -> dict[str, Any]:
    definition: dict[str, Any] = json.loads((STATE_MACHINES_DIR / f"{name}.asl.json").read_text())
    return definition


def placeholders(definition: dict[str, Any]) -> set[str]:
    return set(re.findall(r"\$\{([A-Za-z0-9]+)\}", json.dumps(definition)))


def render_definition(name: str, function_arns: dict[str, str]) -> str:
    """The ASL with `${XFunctionArn}` filled from `{logical id: arn}` (the local stack's path)."""
    text = json.dumps(state_machine_definition(name))
    for function_id in TASK_FUNCTIONS[name]:
        text = text.replace(f"${{{function_id}FunctionArn}}", function_arns[function_id])
    if "${" in text:
        raise ValueError(f"unfilled placeholder in {name}: {placeholders(json.loads(text))}")
    return text


HR_QUEUE_MAX_RECEIVES = 3
