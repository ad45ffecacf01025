"""The HTTP app: the API routers (:mod:`creditops.serving.api`) over one
:class:`DecisionService`, with its middleware, error handlers and lifespan.

Bodies are read as bytes and parsed strictly (no NaN, no infinity, no repeated keys), then
validated against the request model generated from the served version's spec; every error
names the field and never echoes the input.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from creditops import __version__
from creditops.config import Settings, get_settings
from creditops.exceptions import CreditOpsError, KeyStoreError, RegistryUnavailableError
from creditops.jobs.runner import dispatch
from creditops.registry.client import is_not_found, unavailable
from creditops.serving.access import Authenticator
from creditops.serving.admission import AdmissionControl, WorkerState
from creditops.serving.api import add_routes
from creditops.serving.api.docs import ASSETS, assets
from creditops.serving.api.errors import error_response, install_error_handlers
from creditops.serving.api.openapi import served_openapi
from creditops.serving.middleware import install_http_policy
from creditops.serving.prometheus import ServiceMetrics
from creditops.serving.ratelimit import RateLimiter
from creditops.serving.schemas import Decision
from creditops.serving.service import DecisionService
from creditops.serving.ui import DASHBOARD, STATIC, add_ui
from creditops.store.predlog import PredictionLog

logger = logging.getLogger(__name__)

# Threads that decide: each holds its request while the decision log commits, so this many
# requests per worker can share one group commit (fsync).
_DECISION_THREADS = 32
# How often the in-flight gauge is sampled.
_IN_FLIGHT_SAMPLE_S = 1.0


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


def next_check_in(wait: float, every_s: float, max_s: float, *, failed: bool) -> float:
    """The wait before the next check of the registry: ``every_s`` after one that answered;
    after a failure twice the last wait, capped at ``max_s`` (never below ``every_s``)."""
    return min(wait * 2, max(max_s, every_s)) if failed else every_s


async def _follow_champion(app: FastAPI, every_s: float, max_s: float) -> None:
    """Keep this worker on the version the champion alias names (see
    ``DecisionService.follow_champion``); a worker that started without a model gets one.

    While the registry is unreachable the served version keeps serving, the worker checks
    again with exponential backoff (:func:`next_check_in`), so a registry that is down is not
    polled by every worker at full rate, and ``creditops_registry_up`` says so; one warning per
    outage, not one per check."""
    service: DecisionService = app.state.service
    metrics: ServiceMetrics = app.state.metrics
    wait, down_since = every_s, None
    while True:
        await asyncio.sleep(wait)
        failed = False
        try:
            if await run_in_threadpool(service.follow_champion) is not None:
                app.state.load_error = None
            # The shadow and the canary wait with it, the answers do not.
            await run_in_threadpool(service.follow_challenger)
        except RegistryUnavailableError as error:
            failed = True
            metrics.registry_up.set(0)
            if down_since is None:
                down_since = time.monotonic()
                logger.warning(
                    "%s; still serving %s, checking again with backoff up to every %g s",
                    error,
                    f"version {service.served.version}" if service.ready else "no model",
                    max(max_s, every_s),
                )
        except Exception:  # not the registry's absence: logged, and checked again later
            failed = True
            logger.exception("could not follow the champion alias")
        else:
            metrics.registry_up.set(1)
            if down_since is not None:
                logger.warning(
                    "the model registry answers again after %.0f s",
                    time.monotonic() - down_since,
                )
                down_since = None
        if service.canary is not None:  # the audit, not the registry: on every tick
            try:
                await run_in_threadpool(service.refresh_canary)
            except Exception:
                logger.exception("could not read the canary's state from the audit")
        wait = next_check_in(wait, every_s, max_s, failed=failed)


async def _registry_failed(request: Request, exc: Exception) -> JSONResponse:
    """A route that read the registry while it is unreachable or failing: 503 naming it, not
    a 500. An MLflow answer "no such model, version or alias" escaping a route is a bug, and
    stays a 500."""
    if not isinstance(exc, RegistryUnavailableError):
        if is_not_found(exc):
            raise exc
        exc = unavailable(request.app.state.settings, exc)
    return error_response(503, str(exc))


async def _key_store_failed(_: Request, exc: Exception) -> JSONResponse:
    """A stored key looked up while its database is down (the service reads the key store
    only to look keys up): 503, nothing done, not a 500."""
    return error_response(503, f"the key cannot be checked now ({exc})")


async def _sample_in_flight(worker: WorkerState, metrics: ServiceMetrics) -> None:
    """Publish the requests in flight once a second, off the request path."""
    while True:
        metrics.in_flight.set(worker.in_flight)
        await asyncio.sleep(_IN_FLIGHT_SAMPLE_S)


def create_app(
    settings: Settings | None = None,
    *,
    load_model: bool = True,
    worker: WorkerState | None = None,
) -> FastAPI:
    """The service for ``settings``; the lifespan loads the champion and opens the log.
    ``worker`` is shared with the server process that runs the app, which marks it draining
    on SIGTERM (``app.state.worker``)."""
    settings = settings or get_settings()
    metrics = ServiceMetrics()
    worker = worker or WorkerState()

    def count(decision: Decision) -> None:
        metrics.predictions.labels(decision.decision, decision.model_version).inc()
        metrics.probability.observe(decision.probability_of_default)
        for feature in decision.out_of_range:
            metrics.out_of_range.labels(feature).inc()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.ensure_home()
        log = PredictionLog.from_settings(settings)
        service = DecisionService(
            settings,
            log,
            on_decision=count,
            on_swap=lambda served: metrics.serving(served.name, served.version),
            on_feedback=lambda result, n: metrics.feedback.labels(result).inc(n),
            on_shadow=lambda result, n: metrics.shadow.labels(result).inc(n),
            on_canary=lambda result, n: metrics.canary.labels(result).inc(n),
            on_canary_change=lambda active: metrics.canary_active.set(int(active)),
        )
        app.state.service = service
        app.state.load_error = None
        app.state.decision_threads = ThreadPoolExecutor(
            _DECISION_THREADS, thread_name_prefix="decide"
        )
        watcher = None
        sampler = asyncio.create_task(_sample_in_flight(worker, metrics))
        if load_model:
            registry_up = 1
            try:
                service.load()
            except RegistryUnavailableError as error:  # the follower loads it once it answers
                app.state.load_error, registry_up = str(error), 0
            except CreditOpsError as error:
                app.state.load_error = str(error)
            metrics.registry_up.set(registry_up)
            if service.ready:
                try:
                    service.follow_challenger()
                    service.refresh_canary()
                except CreditOpsError as error:  # answers never wait for the challenger
                    logger.warning("challenger not followed yet: %s", error)
            if settings.champion_poll_seconds > 0:
                watcher = asyncio.create_task(
                    _follow_champion(
                        app, settings.champion_poll_seconds, settings.champion_poll_max_seconds
                    )
                )
        try:
            # A job whose process died with the last server is marked failed now, with the
            # reason, not left "running"; queued jobs start while there is a free slot.
            await run_in_threadpool(dispatch, settings)
        except CreditOpsError as error:  # the service decides without the job store
            logger.warning("could not check the background jobs: %s", error)
        yield
        for task in (watcher, sampler):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        app.state.decision_threads.shutdown(wait=True)  # decisions in flight finish logging
        service.close()  # and the shadow decisions offered so far are stored
        log.close()
        app.state.auth.close()

    app = FastAPI(
        title="creditops decision service",
        version=__version__,
        description="Credit decisions from the registered champion model, with reasons, "
        "an audit log of every decision, and Prometheus metrics.",
        lifespan=lifespan,
        docs_url=None,  # served from local files by the docs router
        redoc_url=None,
        openapi_url=None,  # served by the docs router, to those who may read it
    )
    app.state.settings = settings
    app.state.auth = Authenticator(settings)
    app.state.metrics = metrics
    app.state.worker = worker
    app.state.rate_limiter = (
        RateLimiter(settings.rate_limit_per_second, settings.rate_limit_burst)
        if settings.rate_limit_per_second > 0
        else None
    )
    app.add_middleware(_Instrument, metrics=metrics)
    # Outside the instrumentation (a refusal is no request handled: it is counted as shed) and
    # inside the request-id policy (a refusal names its request and carries the headers).
    app.add_middleware(
        AdmissionControl,
        limit=settings.max_in_flight,
        state=worker,
        on_shed=metrics.shed.labels("overload").inc,
    )
    install_error_handlers(app)
    from mlflow.exceptions import MlflowException  # loaded here, not when the module is

    for registry_error in (RegistryUnavailableError, MlflowException):
        app.add_exception_handler(registry_error, _registry_failed)
    app.add_exception_handler(KeyStoreError, _key_store_failed)
    add_routes(app)
    app.mount(ASSETS, assets(), name="docs-assets")
    add_ui(app)
    install_http_policy(app, settings, dashboard=DASHBOARD, static=(STATIC, ASSETS))
    app.openapi = lambda: served_openapi(app)  # type: ignore[method-assign]
    return app
