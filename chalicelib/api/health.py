"""`/health` and `/openapi.json`: the two public routes."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint, Response

from .models import HealthResponse
from .openapi import document
from .routing import Call, Result, operation

bp = Blueprint(__name__)


@operation(bp, "GET", "/health", summary="Liveness", who="anyone", response=HealthResponse,
           public=True)
def health(call: Call) -> Result:
    return Result(HealthResponse(status="ok"))


_document: dict[str, Any] | None = None


@bp.route("/openapi.json", methods=["GET"])
def openapi() -> Response:
    global _document
    if _document is None:
        _document = document()
    return Response(body=_document, status_code=200,
                    headers={"Content-Type": "application/json"})
