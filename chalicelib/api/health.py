"""`/health` and `/openapi.json`: the two public routes."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from chalice.app import Blueprint, Response

from .models import HealthResponse
from .openapi import document
from .routing import Call, Result, operation

bp = Blueprint(__name__)


@operation(
    bp, "GET", "/health", summary="Liveness", who="anyone", response=HealthResponse, public=True
)
def health(call: Call) -> Result:
    return Result(HealthResponse(status="ok"))


@lru_cache(maxsize=1)
def _document() -> dict[str, Any]:
    return document()


@bp.route("/openapi.json", methods=["GET"])
def openapi() -> Response:
    return Response(body=_document(), status_code=200, headers={"Content-Type": "application/json"})
