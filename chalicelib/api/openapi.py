"""The OpenAPI 3.1 document, generated from the declared operations and their pydantic models."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from .models import Problem
from .problems import PROBLEM_JSON
from .routing import OPERATIONS, Operation

TITLE = "Helpdesk access service"
VERSION = "1.0.0"
REF = "#/components/schemas/{model}"


def _schemas() -> dict[str, Any]:
    requests = {op.request for op in OPERATIONS if op.request is not None}
    responses = {op.response for op in OPERATIONS if op.response is not None} | {Problem}
    modes: list[tuple[type[BaseModel], Any]] = [(m, "validation") for m in _by_name(requests)]
    modes += [(m, "serialization") for m in _by_name(responses - requests)]
    _, schema = models_json_schema(modes, ref_template=REF)
    defs: dict[str, Any] = schema.get("$defs", {})
    return defs


def _by_name(models: set[type[BaseModel]]) -> list[type[BaseModel]]:
    return sorted(models, key=lambda m: m.__name__)


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF.format(model=model.__name__)}


def _parameters(op: Operation) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,64}$"},
        }
        for name in re.findall(r"{(\w+)}", op.path)
    ]
    for name in op.query:
        schema: dict[str, Any] = {"type": "string"}
        param: dict[str, Any] = {}
        if name in {"since", "until"}:
            schema = {"type": "string", "format": "date-time"}
        if name == "action":
            schema = {"type": "array", "items": {"type": "string"}, "maxItems": 20}
            param = {"style": "form", "explode": True}
        if name == "limit":
            schema = {"type": "integer", "minimum": 1, "maximum": 100, "default": 50}
        params.append(
            {"name": name, "in": "query", "required": name == "email", "schema": schema, **param}
        )
    params += [
        {
            "name": h,
            "in": "header",
            "required": False,
            "schema": {"type": "string", "maxLength": 200},
        }
        for h in op.headers
    ]
    return params


def _operation(op: Operation) -> dict[str, Any]:
    problem = {"content": {PROBLEM_JSON: {"schema": _ref(Problem)}}}
    ok: dict[str, Any] = {
        "description": "No Content" if op.status == 204 else "OK" if op.status < 300 else "Accepted"
    }
    if op.response is not None:
        ok["content"] = {"application/json": {"schema": _ref(op.response)}}
    if op.alternative is not None:
        ok.setdefault("content", {})[op.alternative] = {"schema": {"type": "string"}}
    responses: dict[str, Any] = {str(op.status): ok}
    if op.status == 200 and op.method == "PUT":
        responses["201"] = {**ok, "description": "Created"}
    for status in op.errors:
        responses[str(status)] = {"description": "Problem", **problem}
    body: dict[str, Any] = {
        "operationId": op.summary and re.sub(r"\W+", "_", f"{op.method}_{op.path}").strip("_"),
        "summary": op.summary,
        "description": f"Who: {op.who}.",
        "parameters": _parameters(op),
        "responses": responses,
    }
    if op.request is not None:
        body["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(op.request)}},
        }
    if not op.public:
        body["security"] = [{"bearer": []}]
    return body


def document() -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": TITLE,
            "version": VERSION,
            "description": "Who may open requests on a project's helpdesk (JSM).",
        },
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
    }
