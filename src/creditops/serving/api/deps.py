"""Shared dependencies as ``Annotated`` aliases (the service, settings, metrics, the admin key)
and the strict reading of request bodies."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import APIKeyHeader

from creditops.config import Settings
from creditops.exceptions import JSONBodyError
from creditops.serving.access import Role, admin_key_configured, role_of
from creditops.serving.parsing import parse_json_strict
from creditops.serving.prometheus import ServiceMetrics
from creditops.serving.service import DecisionService

ADMIN_TAG = "admin"

_api_key = APIKeyHeader(
    name="X-API-Key",
    auto_error=False,
    description="the admin key: CREDITOPS_API_KEY, or the one `creditops serve` printed",
)


def service_of(request: Request) -> DecisionService:
    """The decision service, or 503 while no model is loaded."""
    service: DecisionService = request.app.state.service
    if not service.ready:
        reason = request.app.state.load_error or "no model loaded"
        raise HTTPException(503, f"not ready: {reason}")
    return service


def settings_of(request: Request) -> Settings:
    return request.app.state.settings


def metrics_of(request: Request) -> ServiceMetrics:
    return request.app.state.metrics


ServiceDep = Annotated[DecisionService, Depends(service_of)]
SettingsDep = Annotated[Settings, Depends(settings_of)]
MetricsDep = Annotated[ServiceMetrics, Depends(metrics_of)]


def require_api_key(
    settings: SettingsDep, given: Annotated[str | None, Security(_api_key)]
) -> None:
    """Admin endpoints: the X-API-Key header must be an admin key (see serving.access)."""
    if not admin_key_configured(settings):
        raise HTTPException(403, "admin endpoints are disabled: set CREDITOPS_API_KEY")
    if role_of(settings, given) is not Role.admin:
        raise HTTPException(401, "missing or wrong X-API-Key")


AdminKey = Depends(require_api_key)


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it passes ``limit`` bytes (declared or sent)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"request body larger than {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            raise HTTPException(413, f"request body larger than {limit} bytes")
    return bytes(body)


async def parsed_json(request: Request, limit: int) -> Any:
    """The body as strict JSON (:func:`parse_json_strict`), or 422 naming the problem."""
    body = await read_body(request, limit)
    try:
        return parse_json_strict(body)
    except JSONBodyError as error:
        raise HTTPException(422, f"invalid JSON body: {error}") from None
