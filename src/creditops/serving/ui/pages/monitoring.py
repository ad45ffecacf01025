"""The live model's health, from the last monitor run's stored timeline: drift per feature and
window (click a cell for the distributions), prediction drift and out-of-range inputs, realised
performance beside the estimate, approval by group over time, and the alerts, which a person
acknowledges with a note; "run the monitor now" starts a monitor job (admin)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from creditops.exceptions import AlertStoreError, CreditOpsError
from creditops.jobs.runner import submit_job
from creditops.monitoring.alerts import acknowledge_alert
from creditops.serving.ui import monitoring_charts as charts
from creditops.serving.ui.deps import Admin, Viewer, is_htmx
from creditops.serving.ui.templating import render
from creditops.store.alerts import LEVELS, AlertStore

router = APIRouter(prefix="/ui/monitoring")

AlertId = Annotated[str, Path(pattern=r"^[0-9a-f-]{36}$", description="an alert id")]
LevelFilter = Annotated[str | None, Query(pattern="^(info|warning|critical)?$")]
MetricFilter = Annotated[str | None, Query(max_length=100)]
_ALERTS_SHOWN = 100


def _report(request: Request, store: AlertStore) -> tuple[dict[str, Any] | None, str | None]:
    """The last report on the served version (or on any, said so)."""
    service = request.app.state.service
    if service.ready:
        served = service.served
        found = store.latest_report(model_name=served.name, model_version=served.version)
        if found is not None:
            return found, None
    found = store.latest_report()
    note = None
    if found is not None and service.ready:
        note = (
            f"No monitor run has looked at the served version {service.served.version} yet; "
            f"this is the last run, on version {found.get('model_version')}."
        )
    return found, note


def _timeline(request: Request) -> dict[str, Any] | None:
    with AlertStore.from_settings(request.app.state.settings) as store:
        report, _ = _report(request, store)
    return (report or {}).get("timeline")


def _alert_filters(level: str | None, metric: str | None, open_only: bool) -> dict[str, Any]:
    return {"level": level or "", "metric": metric or "", "open_only": open_only}


def _alerts(store: AlertStore, filters: dict[str, Any]) -> list[Any]:
    return store.recent(
        _ALERTS_SHOWN,
        level=filters["level"] or None,
        metric=filters["metric"] or None,
        acknowledged=False if filters["open_only"] else None,
    )


def _page(request: Request, filters: dict[str, Any], **extra: Any) -> dict[str, Any]:
    with AlertStore.from_settings(request.app.state.settings) as store:
        report, note = _report(request, store)
        alerts = _alerts(store, filters)
    timeline = (report or {}).get("timeline")
    context: dict[str, Any] = {
        "report": report,
        "note": note,
        "timeline": timeline,
        "alerts": alerts,
        "filters": filters,
        "levels": list(LEVELS),
        "heatmap": None,
        "drift_chart": None,
        "performance_chart": None,
        "fairness_charts": [],
        "windows": [],
        "features": [],
        "selected": None,
        "ack_error": None,
    }
    if timeline and timeline.get("windows"):
        windows = timeline["windows"]
        context.update(
            heatmap=charts.drift_heatmap(timeline),
            drift_chart=charts.prediction_drift(timeline),
            performance_chart=charts.performance(timeline),
            fairness_charts=charts.fairness(timeline),
            windows=windows,
            features=[f["feature"] for f in timeline["features"]],
        )
    context.update(extra)
    return context


def _distribution(timeline: dict[str, Any] | None, feature: str, index: int) -> dict[str, Any]:
    """The chosen cell: its feature's reference and window distributions side by side."""
    if not timeline or not timeline.get("windows"):
        return {"problem": "There is no timeline yet: run the monitor."}
    references = {f["feature"]: f for f in timeline["features"]}
    windows = timeline["windows"]
    if feature not in references:
        return {"problem": f"{feature!r} is not a monitored feature."}
    if not 0 <= index < len(windows):
        return {"problem": f"window {index} is not one of the {len(windows)} windows."}
    window = windows[index]
    cell = window["features"].get(feature) or {
        "level": "insufficient",
        "statistic": None,
        "n": 0,
        "missing_rate": None,
        "shares": None,
    }
    return {
        "problem": None,
        "feature": feature,
        "window": window,
        "index": index,
        "cell": cell,
        "reference": references[feature],
        "figure": charts.distribution(references[feature], cell, window["label"]),
    }


@router.get("")
@router.get("/alerts")
async def monitoring_page(
    request: Request,
    _: Viewer,
    level: LevelFilter = None,
    metric: MetricFilter = None,
    open_only: Annotated[bool, Query(alias="open")] = False,
) -> Response:
    """The page; ``/alerts`` from htmx: only its alerts table, filtered."""
    filters = _alert_filters(level, metric, open_only)
    context = await run_in_threadpool(_page, request, filters)
    block = "alerts" if is_htmx(request) and request.url.path.endswith("/alerts") else None
    return render(request, "monitoring.html", context, block=block)


@router.get("/distribution")
async def distribution(
    request: Request,
    _: Viewer,
    feature: Annotated[str, Query(min_length=1, max_length=300)],
    window: Annotated[int, Query(ge=0, le=10_000)],
) -> Response:
    if is_htmx(request):  # the fragment needs the timeline only, not the page's figures
        context = {
            "selected": _distribution(await run_in_threadpool(_timeline, request), feature, window)
        }
        block: str | None = "distribution"
    else:
        context = await run_in_threadpool(_page, request, _alert_filters(None, None, False))
        context["selected"] = _distribution(context["timeline"], feature, window)
        block = None
    status = 200 if context["selected"]["problem"] is None else 422
    return render(request, "monitoring.html", context, block=block, status_code=status)


@router.post("/alerts/{alert_id}/acknowledge")
async def acknowledge(
    request: Request,
    alert_id: AlertId,
    session: Admin,
    note: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    settings = request.app.state.settings
    problem = None
    try:
        await run_in_threadpool(acknowledge_alert, settings, alert_id, by=session.actor, note=note)
    except AlertStoreError as error:
        unknown = str(error).startswith("no alert")
        problem = {"alert_id": alert_id, "message": str(error), "status": 404 if unknown else 409}
    except ValueError as error:
        problem = {"alert_id": alert_id, "message": str(error), "status": 422}
    if not is_htmx(request) and problem is None:
        return RedirectResponse("/ui/monitoring#alerts", status_code=303)
    filters = _alert_filters(None, None, False)
    context = await run_in_threadpool(_page, request, filters, ack_error=problem)
    status = 200 if problem is None else problem["status"]
    block = "alerts" if is_htmx(request) else None
    return render(request, "monitoring.html", context, block=block, status_code=status)


@router.post("/run")
async def run_monitor_now(request: Request, session: Admin) -> Response:
    settings = request.app.state.settings
    try:
        job = await run_in_threadpool(
            submit_job, settings, "monitor", {}, requested_by=session.actor
        )
    except CreditOpsError as error:
        filters = _alert_filters(None, None, False)
        context = await run_in_threadpool(_page, request, filters)
        context["note"] = f"The monitor job could not be started: {error}"
        return render(request, "monitoring.html", context, status_code=503)
    return RedirectResponse(f"/ui/jobs/{job.id}", status_code=303)
