"""Feedback: the observed outcomes of decisions, one at a time or many in one transaction.

Bodies are read like the decision routes' (a size limit, strict JSON, the one 422 body), so an
outcome that feeds every performance figure is never accepted from a NaN, a repeated key or an
unbounded upload. FastAPI does not parse them, so the routes declare their bodies by reference
(:mod:`creditops.serving.api.openapi`) with a static example.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from creditops.exceptions import OutcomeConflictError, UnknownPredictionError
from creditops.serving.api.deps import DecidePrincipal, ServiceDep, SettingsDep, parsed_json
from creditops.serving.api.errors import error_response, errors
from creditops.serving.api.openapi import FEEDBACK, FEEDBACK_BATCH, request_body
from creditops.serving.parsing import validation_errors
from creditops.serving.schemas import (
    FeedbackBatch,
    FeedbackBatchResult,
    FeedbackRequest,
    FeedbackResult,
)

router = APIRouter(tags=["feedback"])

_EXAMPLE = {
    "prediction_id": "6f1c2a9e-4b7d-4e0a-9c3b-2d5e8f7a1b40",
    "outcome": "repaid",
    "observed_at": "2026-05-31T00:00:00Z",
}
_BATCH_EXAMPLE = {
    "outcomes": [
        _EXAMPLE,
        {"prediction_id": "0b8e5d3c-7a21-4f96-8e4d-9c1a2b3f4e5d", "outcome": "default"},
    ]
}


@router.post(
    "/feedback",
    response_model=FeedbackResult,
    responses=errors(401, 403, 404, 409, 413, 422, 503),
    openapi_extra=request_body({"application/json": FEEDBACK}, example=_EXAMPLE),
)
async def feedback(
    request: Request, service: ServiceDep, settings: SettingsDep, principal: DecidePrincipal
) -> Any:
    """Record the observed outcome of a decision (idempotent for the same outcome).

    Bodies over `CREDITOPS_MAX_BODY_BYTES` (64 KiB by default) are refused (413)."""
    payload = await parsed_json(request, settings.max_body_bytes)
    try:
        body = FeedbackRequest.model_validate(payload)
    except ValidationError as error:
        return error_response(422, "invalid feedback", validation_errors(error))
    try:
        return await run_in_threadpool(service.record_outcome, body, principal.name)
    except UnknownPredictionError:
        return error_response(404, f"unknown prediction_id {body.prediction_id}")
    except OutcomeConflictError:
        detail = f"a different outcome is already recorded for {body.prediction_id}"
        return error_response(409, detail)


@router.post(
    "/feedback/batch",
    response_model=FeedbackBatchResult,
    responses=errors(401, 403, 404, 409, 413, 422, 503),
    openapi_extra=request_body({"application/json": FEEDBACK_BATCH}, example=_BATCH_EXAMPLE),
)
async def feedback_batch(
    request: Request, service: ServiceDep, settings: SettingsDep, principal: DecidePrincipal
) -> Any:
    """Record many outcomes in one transaction: all of them, or none when one is invalid (422),
    an id is unknown (404) or contradicts an outcome already recorded or sent earlier in the
    batch (409). Repeats are idempotent. Bodies over `CREDITOPS_MAX_BATCH_BODY_BYTES` (32 MiB by
    default) are refused (413)."""
    payload = await parsed_json(request, settings.max_batch_body_bytes)
    try:
        body = FeedbackBatch.model_validate(payload)
    except ValidationError as error:
        return error_response(422, "invalid feedback batch", validation_errors(error))
    try:
        return await run_in_threadpool(service.record_outcomes, body, principal.name)
    except UnknownPredictionError as error:
        return error_response(404, f"nothing recorded: {error}")
    except OutcomeConflictError as error:
        return error_response(409, f"nothing recorded: {error}")
