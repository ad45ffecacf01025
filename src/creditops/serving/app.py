"""The HTTP app: routes a few lines long over :class:`DecisionService`.

Bodies are read as bytes and parsed strictly (no NaN, no infinity, no repeated keys), then
validated against the request model generated from the served version's spec; every error
names the field and never echoes the input.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import secrets
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Annotated, Any, TypeVar

from fastapi import Depends, FastAPI, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from creditops import __version__
from creditops.config import Settings, get_settings
from creditops.exceptions import AuditLogError, CreditOpsError, ModelNotFoundError
from creditops.retraining import promote_challenger
from creditops.retraining import rollback as rollback_champion
from creditops.serving.prometheus import ServiceMetrics, exposition
from creditops.serving.schemas import (
    BatchDecision,
    Decision,
    ErrorBody,
    FeedbackBatch,
    FeedbackRequest,
    JSONBodyError,
    build_batch_model,
    parse_csv_applications,
    parse_json_strict,
    split_application,
    validation_errors,
)
from creditops.serving.service import DecisionService, registry_versions
from creditops.store.audit import AuditEntry
from creditops.store.predlog import (
    OutcomeConflictError,
    PredictionLog,
    PredictionLogError,
    UnknownPredictionError,
)

ADMIN_TAG = "admin"

logger = logging.getLogger(__name__)


def _error(status: int, detail: str, errors: list[dict[str, str]] | None = None) -> JSONResponse:
    body = ErrorBody(detail=detail, errors=errors or [])
    return JSONResponse(status_code=status, content=body.model_dump())


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"request body larger than {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            raise HTTPException(413, f"request body larger than {limit} bytes")
    return bytes(body)


class _Instrument:
    """Request count and latency per route and status, as plain ASGI: Starlette's
    ``BaseHTTPMiddleware`` costs a task and memory streams per request, about as much as
    scoring."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            endpoint = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.requests.labels(scope["method"], endpoint, str(status)).inc()
            self.metrics.latency.labels(endpoint).observe(time.perf_counter() - started)


async def _follow_champion(app: FastAPI, every_s: float) -> None:
    """Keep this worker on the version the champion alias names (see
    ``DecisionService.follow_champion``); a worker that started without a model gets one."""
    service: DecisionService = app.state.service
    while True:
        await asyncio.sleep(every_s)
        try:
            if await run_in_threadpool(service.follow_champion) is not None:
                app.state.load_error = None
        except Exception:  # the registry may be briefly unreachable: keep serving, try again
            logger.exception("could not check the champion alias")


_T = TypeVar("_T")
# Threads that decide: each holds its request while the decision log commits, so this many
# requests per worker can share one group commit (fsync).
_DECISION_THREADS = 32


async def _decide_in_thread(request: Request, work: Callable[..., _T], *args: Any) -> _T:
    """Run a decision in the app's decision threads, so the event loop keeps parsing other
    requests while this one waits for its fsync and concurrent decisions share one group
    commit. A plain executor: anyio's ``run_in_threadpool`` costs about as much event-loop time
    per call as the rest of the request's routing."""
    loop = asyncio.get_running_loop()
    executor: ThreadPoolExecutor = request.app.state.decision_threads
    return await loop.run_in_executor(executor, functools.partial(work, *args))


def _json(model: Decision | BatchDecision) -> Response:
    # Already validated: skip FastAPI's second validation of the response model.
    return Response(model.model_dump_json(), media_type="application/json")


def service_of(request: Request) -> DecisionService:
    """The decision service, or 503 while no model is loaded."""
    service: DecisionService = request.app.state.service
    if not service.ready:
        reason = request.app.state.load_error or "no model loaded"
        raise HTTPException(503, f"not ready: {reason}")
    return service


def require_api_key(request: Request) -> None:
    """Admin endpoints: the X-API-Key header must match CREDITOPS_API_KEY."""
    expected = request.app.state.settings.api_key
    if expected is None:
        raise HTTPException(403, "admin endpoints are disabled: set CREDITOPS_API_KEY")
    given = request.headers.get("x-api-key", "")
    if not secrets.compare_digest(given.encode(), expected.encode()):
        raise HTTPException(401, "missing or wrong X-API-Key")


Service = Annotated[DecisionService, Depends(service_of)]
Admin = Depends(require_api_key)


def create_app(settings: Settings | None = None, *, load_model: bool = True) -> FastAPI:
    """The service for ``settings``; the lifespan loads the champion and opens the log."""
    settings = settings or get_settings()
    metrics = ServiceMetrics()

    def count(decision: Decision) -> None:
        metrics.predictions.labels(decision.decision, decision.model_version).inc()
        metrics.probability.observe(decision.probability_of_default)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.ensure_home()
        log = PredictionLog(settings.resolved_database_url)
        service = DecisionService(
            settings,
            log,
            on_decision=count,
            on_swap=lambda served: metrics.serving(served.name, served.version),
        )
        app.state.service = service
        app.state.load_error = None
        app.state.decision_threads = ThreadPoolExecutor(
            _DECISION_THREADS, thread_name_prefix="decide"
        )
        watcher = None
        if load_model:
            try:
                service.load()
            except CreditOpsError as error:
                app.state.load_error = str(error)
            if settings.champion_poll_seconds > 0:
                watcher = asyncio.create_task(_follow_champion(app, settings.champion_poll_seconds))
        yield
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        app.state.decision_threads.shutdown(wait=True)  # decisions in flight finish logging
        log.close()

    app = FastAPI(
        title="creditops decision service",
        version=__version__,
        description="Credit decisions from the registered champion model, with reasons, "
        "an audit log of every decision, and Prometheus metrics.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = metrics

    app.add_middleware(_Instrument, metrics=metrics)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def request_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": ".".join(str(p) for p in e["loc"][1:]) or "body", "problem": e["msg"]}
            for e in exc.errors()
        ]
        return _error(422, "invalid request", errors)

    async def parsed(request: Request, limit: int) -> Any:
        body = await _read_body(request, limit)
        try:
            return parse_json_strict(body)
        except JSONBodyError as error:
            raise HTTPException(422, f"invalid JSON body: {error}") from None

    @app.get("/health", tags=["ops"])
    def health() -> dict[str, Any]:
        """Liveness: the process answers (``pid``: which worker process did)."""
        return {"status": "ok", "pid": os.getpid()}

    @app.get("/ready", tags=["ops"], responses={503: {"model": ErrorBody}})
    def ready(request: Request) -> Any:
        """Readiness: a model is loaded and the decision log is writable."""
        service: DecisionService = request.app.state.service
        if not service.ready:
            return _error(503, f"not ready: {request.app.state.load_error or 'no model loaded'}")
        writable, reason = service.log.is_writable()
        if not writable:
            return _error(503, f"not ready: decision log not writable ({reason})")
        served = service.served
        return {"status": "ready", "model_name": served.name, "model_version": served.version}

    @app.post(
        "/predict",
        response_model=Decision,
        tags=["decisions"],
        responses={413: {"model": ErrorBody}, 422: {"model": ErrorBody}, 503: {"model": ErrorBody}},
    )
    async def predict(request: Request) -> Any:
        """Decide one application: probability of default, points, grade, decision, reasons."""
        service = service_of(request)  # not a dependency: FastAPI's resolution costs per request
        payload = await parsed(request, settings.max_body_bytes)
        served = service.served
        try:
            application = served.application_model.model_validate(payload)
        except ValidationError as error:
            return _error(422, "invalid application", validation_errors(error))
        try:
            return _json(await _decide_in_thread(request, service.decide, application, served))
        except PredictionLogError as error:
            metrics.log_failures.inc()
            return _error(503, f"decision not made: the decision log failed ({error})")

    @app.post(
        "/predict/batch",
        response_model=BatchDecision,
        tags=["decisions"],
        responses={413: {"model": ErrorBody}, 422: {"model": ErrorBody}, 503: {"model": ErrorBody}},
    )
    async def predict_batch(request: Request, service: Service) -> Any:
        """Decide up to `max_batch` applications atomically: one bad row rejects the batch.

        Send JSON `{"applications": [...]}`, or a CSV file with `Content-Type: text/csv`."""
        served = service.served
        if request.headers.get("content-type", "").split(";")[0].strip() == "text/csv":
            body = await _read_body(request, settings.max_batch_body_bytes)
            try:
                payload = parse_csv_applications(body, served.spec, max_rows=settings.max_batch)
            except JSONBodyError as error:
                return _error(422, f"invalid CSV: {error}")
        else:
            payload = await parsed(request, settings.max_batch_body_bytes)
        batch_model = build_batch_model(served.application_model, settings.max_batch)
        try:
            batch = batch_model.model_validate(payload)
        except ValidationError as error:
            return _error(422, "invalid batch", validation_errors(error))
        started = time.perf_counter()
        try:
            decisions = await _decide_in_thread(
                request, service.decide_batch, list(batch.applications), served
            )
        except PredictionLogError as error:
            metrics.log_failures.inc()
            return _error(503, f"batch not decided: the decision log failed ({error})")
        return _json(
            BatchDecision(
                decisions=decisions,
                count=len(decisions),
                latency_ms=(time.perf_counter() - started) * 1000.0,
            )
        )

    @app.post(
        "/explain",
        tags=["decisions"],
        responses={404: {"model": ErrorBody}, 422: {"model": ErrorBody}},
    )
    async def explain(request: Request, service: Service) -> Any:
        """SHAP, LIME and a counterfactual hint for one application, or for a logged decision
        (`{"prediction_id": "..."}`, explained with the version serving now)."""
        payload = await parsed(request, settings.max_body_bytes)
        served = service.served
        if isinstance(payload, dict) and set(payload) == {"prediction_id"}:
            try:
                record = service.log.get(str(payload["prediction_id"]))
            except ValueError:
                problem = {"field": "prediction_id", "problem": "must be a UUID"}
                return _error(422, "invalid prediction_id", [problem])
            if record is None:
                return _error(404, f"unknown prediction_id {payload['prediction_id']}")
            features = {f: record.features.get(f) for f in served.spec.features}
        else:
            try:
                application = served.application_model.model_validate(payload)
            except ValidationError as error:
                return _error(422, "invalid application", validation_errors(error))
            features, _, _ = split_application(application)
        return await run_in_threadpool(service.explain, features, served)

    @app.post(
        "/feedback",
        tags=["decisions"],
        responses={404: {"model": ErrorBody}, 409: {"model": ErrorBody}},
    )
    def feedback(body: FeedbackRequest, service: Service) -> Any:
        """Record the observed outcome of a decision (idempotent for the same outcome)."""
        try:
            result = service.log.record_outcome(
                body.prediction_id, body.defaulted, observed_at=body.observed_at
            )
        except UnknownPredictionError:
            metrics.feedback.labels("unknown").inc()
            return _error(404, f"unknown prediction_id {body.prediction_id}")
        except OutcomeConflictError:
            metrics.feedback.labels("conflict").inc()
            return _error(409, f"a different outcome is already recorded for {body.prediction_id}")
        metrics.feedback.labels(result).inc()
        return {"prediction_id": str(body.prediction_id), "result": result}

    @app.post(
        "/feedback/batch",
        tags=["decisions"],
        responses={404: {"model": ErrorBody}, 409: {"model": ErrorBody}},
    )
    def feedback_batch(body: FeedbackBatch, service: Service) -> Any:
        """Record many outcomes in one transaction: all of them, or none when one id is unknown
        (404) or contradicts an outcome already recorded (409). Repeats are idempotent."""
        items = [(o.prediction_id, o.defaulted, o.observed_at) for o in body.outcomes]
        try:
            statuses = service.log.record_outcomes(items)
        except UnknownPredictionError as error:
            metrics.feedback.labels("unknown").inc(len(items))
            return _error(404, f"nothing recorded: {error}")
        except OutcomeConflictError as error:
            metrics.feedback.labels("conflict").inc(len(items))
            return _error(409, f"nothing recorded: {error}")
        counts = {status: statuses.count(status) for status in ("recorded", "unchanged")}
        for status, n in counts.items():
            if n:
                metrics.feedback.labels(status).inc(n)
        return {"count": len(statuses), **counts}

    @app.get("/model", tags=["models"])
    def model(service: Service) -> dict[str, Any]:
        """The serving version: its tags and metrics, decision policy and dataset spec."""
        served = service.served
        return {
            "model_name": served.name,
            "model_version": served.version,
            "loaded_at": served.loaded_at,
            "fast_path": served.scorer is not None,
            "tags": served.loaded.tags,
            "policy": served.policy.model_dump(mode="json"),
            "spec": served.spec.model_dump(mode="json", by_alias=True),
        }

    @app.get("/models", tags=["models"])
    def models() -> list[dict[str, Any]]:
        """Registered versions and their aliases."""
        return registry_versions(settings)

    def _champion_change(change: Callable[[], AuditEntry]) -> Any:
        """Run an audited promotion or rollback; map its refusal to the status that says why."""
        try:
            entry = change()
        except ModelNotFoundError as error:
            return _error(404, str(error))
        except AuditLogError as error:
            return _error(503, str(error))
        except CreditOpsError as error:  # not cleared, already champion, failed its check
            return _error(409, str(error))
        if entry.action == "rollback":  # its entry names the version left as the challenger
            previous, champion = entry.challenger_version, entry.champion_version
        else:
            previous, champion = entry.champion_version, entry.challenger_version
        answer = {"previous": previous, "champion": champion, "audit_id": entry.id}
        if "audit_error" in entry.details:  # changed, but no audit row holds that id
            answer.update(audit_id=None, audit_error=entry.details["audit_error"])
        return answer

    @app.post("/models/{version}/promote", tags=[ADMIN_TAG], dependencies=[Admin])
    def promote(version: str, service: Service, force: bool = False) -> Any:
        """Make `version` the champion, under the same rules as `creditops promote`: it must
        come from a retrain whose gates passed and must not have been rolled back, unless
        `force=true`. It is loaded and checked first, then swapped in. Audited, refusals
        included."""
        if not version.isdigit():
            return _error(422, "version must be a number")
        return _champion_change(
            lambda: promote_challenger(
                settings,
                version=version,
                force=force,
                move=lambda ref, rollback: service.promote(ref, rollback=rollback),
                via="api",
            )
        )

    @app.post("/models/rollback", tags=[ADMIN_TAG], dependencies=[Admin])
    def rollback(service: Service) -> Any:
        """Return to the previous champion (checked before the swap). Audited."""
        return _champion_change(
            lambda: rollback_champion(
                settings,
                move=lambda ref, rollback: service.promote(ref, rollback=rollback),
                via="api",
            )
        )

    @app.get("/metrics", tags=["ops"], include_in_schema=False)
    def prometheus() -> Response:
        body, content_type = exposition(metrics)
        return Response(content=body, media_type=content_type)

    return app
