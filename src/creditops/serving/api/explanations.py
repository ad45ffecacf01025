"""Explanations: SHAP, LIME and a counterfactual hint for an application or a logged decision."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from creditops.exceptions import UnknownPredictionError
from creditops.serving.access import Role
from creditops.serving.api.deps import (
    DecideOrAnalystPrincipal,
    ServiceDep,
    SettingsDep,
    parsed_json,
)
from creditops.serving.api.errors import error_response, errors
from creditops.serving.api.openapi import APPLICATION, LOGGED, request_body
from creditops.serving.parsing import validation_errors
from creditops.serving.schemas import Explanation, LoggedDecision, split_application

router = APIRouter(tags=["explanations"])


@router.post(
    "/explain",
    response_model=Explanation,
    responses=errors(401, 403, 404, 413, 422, 503),
    openapi_extra=request_body({"application/json": {"anyOf": [APPLICATION, LOGGED]}}),
)
async def explain(
    request: Request,
    service: ServiceDep,
    settings: SettingsDep,
    principal: DecideOrAnalystPrincipal,
) -> Any:
    """SHAP, LIME and a counterfactual hint for one application, or for a logged decision
    (`{"prediction_id": "..."}`, explained with the version serving now). A key with the
    `decide` role alone may explain only the decisions it asked for; `analyst`, any."""
    payload = await parsed_json(request, settings.max_body_bytes)
    served = service.served
    if isinstance(payload, dict) and set(payload) == {"prediction_id"}:
        try:
            logged = LoggedDecision.model_validate(payload)
        except ValidationError as error:
            return error_response(422, "invalid prediction_id", validation_errors(error))
        own = None if principal.has(Role.analyst) else principal.name
        try:
            return await run_in_threadpool(
                service.explain_logged, logged.prediction_id, served, own, principal.name
            )
        except UnknownPredictionError:  # also another key's decision: its existence not shown
            return error_response(404, f"unknown prediction_id {logged.prediction_id}")
    try:
        application = served.application_model.model_validate(payload)
    except ValidationError as error:
        return error_response(422, "invalid application", validation_errors(error))
    features, _, _ = split_application(application)
    return await run_in_threadpool(service.explain, features, served, principal.name)
