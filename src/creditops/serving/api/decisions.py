"""Decisions: one application (``/predict``) or a batch (``/predict/batch``, JSON or CSV).

The hot path: ``/predict`` resolves the service without a FastAPI dependency and decides on
the app's own decision threads, each costing per request about as much as scoring.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import ValidationError

from creditops.config import Settings
from creditops.exceptions import JSONBodyError, PredictionLogError
from creditops.serving.access import Role
from creditops.serving.api.deps import (
    DecidePrincipal,
    ServiceDep,
    SettingsDep,
    authorize_async,
    parsed_json,
    read_body,
    service_of,
)
from creditops.serving.api.errors import error_response, errors
from creditops.serving.api.openapi import APPLICATION, BATCH, CSV, request_body
from creditops.serving.parsing import parse_csv_applications, validation_errors
from creditops.serving.schemas import BatchDecision, Decision, build_batch_model
from creditops.serving.served import ServedModel

router = APIRouter(tags=["decisions"])

_T = TypeVar("_T")


async def decide_in_thread(request: Request, work: Callable[..., _T], *args: Any) -> _T:
    """Run a decision in the app's decision threads, so the event loop keeps parsing other
    requests while this one waits for its fsync and concurrent decisions share one group
    commit. A plain executor: anyio's ``run_in_threadpool`` costs about as much event-loop time
    per call as the rest of the request's routing. The request's context goes along, so what
    the decision logs names its request id."""
    loop = asyncio.get_running_loop()
    executor: ThreadPoolExecutor = request.app.state.decision_threads
    run = contextvars.copy_context().run
    return await loop.run_in_executor(executor, functools.partial(run, work, *args))


def _json(model: Decision | BatchDecision) -> Response:
    # Already validated: skip FastAPI's second validation of the response model.
    return Response(model.model_dump_json(), media_type="application/json")


@router.post(
    "/predict",
    response_model=Decision,
    responses=errors(401, 403, 413, 422, 503),
    openapi_extra={
        **request_body({"application/json": APPLICATION}),
        "security": [{"APIKeyHeader": []}, {"HTTPBearer": []}],
    },
)
async def predict(request: Request) -> Any:
    """Decide one application: probability of default, points, grade, decision, reasons."""
    # Not dependencies: FastAPI's resolution costs per request on the hottest route.
    principal = await authorize_async(request, Role.decide)
    service = service_of(request)
    payload = await parsed_json(request, request.app.state.settings.max_body_bytes)
    served = service.served
    try:
        application = served.application_model.model_validate(payload)
    except ValidationError as error:
        return error_response(422, "invalid application", validation_errors(error))
    try:
        return _json(
            await decide_in_thread(request, service.decide, application, served, principal.name)
        )
    except PredictionLogError as error:
        request.app.state.metrics.log_failures.inc()
        return error_response(503, f"decision not made: the decision log failed ({error})")


@router.post(
    "/predict/batch",
    response_model=BatchDecision,
    responses=errors(401, 403, 413, 422, 503),
    openapi_extra=request_body(
        {
            "application/json": BATCH,
            CSV: {
                "type": "string",
                "description": "a header row of field names, then one application per row; "
                "an empty cell is missing",
            },
        }
    ),
)
async def predict_batch(
    request: Request, service: ServiceDep, settings: SettingsDep, principal: DecidePrincipal
) -> Any:
    """Decide up to `max_batch` applications atomically: one bad row rejects the batch.

    Send JSON `{"applications": [...]}`, or a CSV file with `Content-Type: text/csv`."""
    served = service.served
    payload = await _batch_payload(request, served, settings)
    try:
        batch = build_batch_model(served.application_model, settings.max_batch).model_validate(
            payload
        )
    except ValidationError as error:
        return error_response(422, "invalid batch", validation_errors(error))
    started = time.perf_counter()
    try:
        decide = functools.partial(service.decide_batch, actor=principal.name)
        decisions = await decide_in_thread(request, decide, list(batch.applications), served)
    except PredictionLogError as error:
        request.app.state.metrics.log_failures.inc()
        return error_response(503, f"batch not decided: the decision log failed ({error})")
    latency_ms = (time.perf_counter() - started) * 1000.0
    return _json(BatchDecision(decisions=decisions, count=len(decisions), latency_ms=latency_ms))


async def _batch_payload(request: Request, served: ServedModel, settings: Settings) -> Any:
    """The batch body as JSON, a CSV upload read as its JSON equivalent."""
    if request.headers.get("content-type", "").split(";")[0].strip() != CSV:
        return await parsed_json(request, settings.max_batch_body_bytes)
    body = await read_body(request, settings.max_batch_body_bytes)
    try:
        return parse_csv_applications(body, served.spec, max_rows=settings.max_batch)
    except JSONBodyError as error:
        raise HTTPException(422, f"invalid CSV: {error}") from None
