"""Operations: liveness, readiness and the Prometheus metrics."""

from __future__ import annotations

import os
from typing import Any

from fastapi import APIRouter, Request, Response

from creditops.serving.access import Role
from creditops.serving.api.deps import MetricsDep, open_or, service_of
from creditops.serving.api.errors import error_response, errors
from creditops.serving.prometheus import exposition
from creditops.serving.schemas import Health, Readiness

# Open to probes and scrapers by default (CREDITOPS_OPEN_PATHS); otherwise analysts only.
router = APIRouter(tags=["ops"], dependencies=[open_or(Role.analyst)])


@router.get("/health", response_model=Health)
def health() -> Health:
    """Liveness: the process answers (``pid``: which worker process did)."""
    return Health(status="ok", pid=os.getpid())


@router.get("/ready", response_model=Readiness, responses=errors(503))
def ready(request: Request) -> Any:
    """Readiness: a model is loaded, the decision log is writable and the worker is not
    draining (``pid``: which worker answered, so a rollout can tell that every worker serves
    the new version)."""
    if request.app.state.worker.draining:  # first: a stopping worker is out, whatever else
        return error_response(503, "not ready: draining (this worker is stopping)")
    service = service_of(request)
    writable, reason = service.log.is_writable()
    if not writable:
        return error_response(503, f"not ready: decision log not writable ({reason})")
    served = service.served
    return Readiness(
        status="ready", model_name=served.name, model_version=served.version, pid=os.getpid()
    )


@router.get("/metrics", include_in_schema=False)
def prometheus(metrics: MetricsDep) -> Response:
    body, content_type = exposition(metrics)
    return Response(content=body, media_type=content_type)
