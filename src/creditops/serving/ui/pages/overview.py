"""The overview: the champion, the service's health, the last day of decisions, open alerts and
the last monitor run."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from creditops.registry.catalog import version_summary
from creditops.serving.ui import charts
from creditops.serving.ui.deps import Viewer
from creditops.serving.ui.stores import alert_store
from creditops.serving.ui.templating import render
from creditops.store.decision_stats import hourly_decisions, log_totals

router = APIRouter(prefix="/ui")


def _overview(request: Request) -> dict[str, object]:
    state = request.app.state
    settings, service = state.settings, state.service
    champion = None
    if service.ready:
        champion = version_summary(settings, service.served.version)
    writable, log_reason = service.log.is_writable()
    hours = hourly_decisions(service.log, hours=24)
    alerts = alert_store(request).recent(
        20, level=("warning", "critical"), since=datetime.now(UTC) - timedelta(days=7)
    )
    runs = alert_store(request).runs(limit=1)
    return {
        "champion": champion,
        "served": service.served if service.ready else None,
        "load_error": state.load_error,
        "ready": service.ready and writable,
        "log_writable": writable,
        "log_reason": log_reason,
        "log": service.log.describe(),
        "totals": log_totals(service.log),
        "workers": os.environ.get("CREDITOPS_SERVE_WORKERS", "1"),
        "day": {
            "decisions": sum(h.total for h in hours),
            "approve": sum(h.approve for h in hours),
            "refer": sum(h.refer for h in hours),
            "decline": sum(h.decline for h in hours),
        },
        "hourly_chart": charts.hourly_decisions(hours),
        "alerts": alerts,
        "last_run": runs[-1] if runs else None,
    }


@router.get("")
async def overview(request: Request, _: Viewer) -> Response:
    context = await run_in_threadpool(_overview, request)
    return render(request, "overview.html", context)
