"""The served API against the contract: SPEC §2 (paths, methods, resources) and `openapi.json`."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import app  # registers every operation
from chalicelib.api.openapi import document

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT.parent / "shared" / "SPEC.md"
if not SPEC.exists():  # CI clones the repo with shared/ beside it
    SPEC = ROOT / ".." / "shared" / "SPEC.md"


def spec_text() -> str:
    if not SPEC.exists():
        pytest.skip("../shared/SPEC.md is not beside this checkout")
    return SPEC.read_text()


# Rows SPEC §2 still marks (next) that this code delivers: checked like the unmarked ones until
# the mark goes.
DELIVERED_NEXT = {
    ("PATCH", "/projects/{project_id}/grants/{contact_id}"),
    ("POST", "/projects/{project_id}/grant-batches"),
    ("POST", "/projects/{project_id}/reconcile"),
    ("GET", "/projects/{project_id}/reviews"),
    ("POST", "/projects/{project_id}/reviews"),
    ("PUT", "/projects/{project_id}/reviews/{review_id}/items/{contact_id}"),
    ("POST", "/projects/{project_id}/access-requests"),
    ("GET", "/projects/{project_id}/access-requests"),
    ("POST", "/hr/events"),
    ("POST", "/companies/{company_id}/scim-tokens"),
    ("GET", "/companies/{company_id}/scim-tokens"),
}


def spec_rows() -> dict[tuple[str, str], str]:
    """`(METHOD, path)` → the rest of its row, for every row of the SPEC §2 table."""
    rows = {}
    for line in spec_text().splitlines():
        match = re.match(r"\| `([A-Z/ ]+) (/[^`]*)`(.*)", line)
        if not match:
            continue
        methods, path = match.group(1), match.group(2).split("?")[0]
        for method in methods.split("/"):
            rows[(method.strip(), path)] = match.group(3)
    return rows


def spec_operations() -> set[tuple[str, str]]:
    """`(METHOD, path)` of every row of the SPEC §2 table not marked (next), or delivered."""
    return {
        operation
        for operation, rest in spec_rows().items()
        if "(next)" not in rest.split("|", 1)[0] or operation in DELIVERED_NEXT
    }


def spec_resource_fields(name: str) -> set[str]:
    match = re.search(rf"^- {name}: `\{{(.*?)\}}`", spec_text(), flags=re.M | re.S)
    assert match, f"SPEC lists no {name} resource"
    return {f.strip() for f in match.group(1).replace("\n", " ").split(",")}


def test_every_spec_operation_is_served() -> None:
    # Given the operations of SPEC §2 / When the OpenAPI document is generated
    paths = document()["paths"]
    served = {(m.upper(), p) for p, ops in paths.items() for m in ops}
    # Then each one is served
    missing = spec_operations() - served
    assert not missing, f"not served: {sorted(missing)}"
    assert len(spec_operations()) >= 16  # the table as of SPEC v1


def test_the_scim_row_is_served_by_the_app() -> None:
    # Given the SPEC rows of the SCIM tokens and `/scim/v2/...` (SCIM documents itself at
    # ServiceProviderConfig, ResourceTypes and Schemas: it is not in openapi.json)
    assert "| `/scim/v2/...`" in spec_text()
    paths = document()["paths"]
    assert set(paths["/companies/{company_id}/scim-tokens"]) == {"get", "post"}
    assert set(paths["/companies/{company_id}/scim-tokens/{token_id}"]) == {"delete"}
    # Then SPEC §4's SCIM endpoints are routes of the app
    routes = {(m, p) for p, entries in app.app.routes.items() for m in entries}
    for endpoint in ("/ServiceProviderConfig", "/Schemas", "/ResourceTypes", "/Users"):
        assert ("GET", f"/scim/v2{endpoint}") in routes
    for method in ("GET", "PUT", "PATCH", "DELETE"):
        assert (method, "/scim/v2/Users/{user_id}") in routes
    assert ("POST", "/scim/v2/Users") in routes


def test_openapi_json_in_the_repo_matches_the_code() -> None:
    committed = json.loads((ROOT / "openapi.json").read_text())
    assert committed == document(), "openapi.json drifted: run `make openapi` and commit it"


@pytest.mark.parametrize(
    ("resource", "schema"),
    [("project", "ProjectResponse"), ("contact", "ContactResponse"), ("grant", "GrantResponse")],
)
def test_resources_carry_every_spec_field(resource: str, schema: str) -> None:
    properties = set(document()["components"]["schemas"][schema]["properties"])
    assert spec_resource_fields(resource) <= properties


def test_problem_schema_is_rfc9457_with_validation_errors() -> None:
    problem = document()["components"]["schemas"]["Problem"]
    assert {"type", "title", "status", "detail", "errors"} <= set(problem["properties"])


def test_delivered_next_rows_are_rows_of_the_spec() -> None:
    assert set(spec_rows()) >= DELIVERED_NEXT


def test_grant_batch_results_carry_the_spec_fields() -> None:
    # Given the SPEC row's result object `{"index", "op", ..., "problem"?: problem}`
    row = spec_rows()[("POST", "/projects/{project_id}/grant-batches")]
    match = re.search(r'`\{"results": \[\{(.*?)\}\]\}`', row)
    assert match, row
    fields = set(re.findall(r'"(\w+)"\??:?', match.group(1))) - {"add", "remove"}
    # When / Then the 207 answers a list of results with those fields, and status 207
    schemas = document()["components"]["schemas"]
    assert fields == set(schemas["GrantBatchResult"]["properties"])
    operation = document()["paths"]["/projects/{project_id}/grant-batches"]["post"]
    assert "207" in operation["responses"]
