"""Feedback: the observed outcomes of decisions, one at a time or many in one transaction."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from creditops.exceptions import OutcomeConflictError, UnknownPredictionError
from creditops.serving.api.deps import ServiceDep
from creditops.serving.api.errors import error_response, errors
from creditops.serving.schemas import (
    FeedbackBatch,
    FeedbackBatchResult,
    FeedbackRequest,
    FeedbackResult,
)

router = APIRouter(tags=["feedback"])


@router.post("/feedback", response_model=FeedbackResult, responses=errors(400, 404, 409, 422, 503))
def feedback(body: FeedbackRequest, service: ServiceDep) -> Any:
    """Record the observed outcome of a decision (idempotent for the same outcome)."""
    try:
        return service.record_outcome(body)
    except UnknownPredictionError:
        return error_response(404, f"unknown prediction_id {body.prediction_id}")
    except OutcomeConflictError:
        detail = f"a different outcome is already recorded for {body.prediction_id}"
        return error_response(409, detail)


@router.post(
    "/feedback/batch",
    response_model=FeedbackBatchResult,
    responses=errors(400, 404, 409, 422, 503),
)
def feedback_batch(body: FeedbackBatch, service: ServiceDep) -> Any:
    """Record many outcomes in one transaction: all of them, or none when one id is unknown
    (404) or contradicts an outcome already recorded (409). Repeats are idempotent."""
    try:
        return service.record_outcomes(body)
    except UnknownPredictionError as error:
        return error_response(404, f"nothing recorded: {error}")
    except OutcomeConflictError as error:
        return error_response(409, f"nothing recorded: {error}")
