"""Retraining: each trigger's current value against its threshold, the challenger beside the
champion on the live applications it scored in shadow, the challenger as a canary (its
state, its audit, halt and resume for an admin), past retrains with their gates
(challenger against champion on the holdout), "retrain now" as a job (admin), and the way to
promote a challenger that cleared its gates (through the Models page's confirmation)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Path, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from creditops.exceptions import AuditLogError, CanaryStateError, CreditOpsError
from creditops.jobs.runner import RetrainRequest, submit_job
from creditops.monitoring.shadow import COMPARE_ROWS, compare_shadow, gate_failures
from creditops.registry import champion_and_challenger
from creditops.retraining import current_triggers, retrain_config
from creditops.serving.canary import CanaryLimits
from creditops.serving.ui.deps import Admin, Viewer
from creditops.serving.ui.stores import audit_log
from creditops.serving.ui.templating import render
from creditops.store.jobs import JobStore
from creditops.store.shadow import shadow_pairs

router = APIRouter(prefix="/ui/retraining")

_RETRAINS_SHOWN = 20


def _page(request: Request, **extra: Any) -> dict[str, Any]:
    settings = request.app.state.settings
    problem = None
    try:
        config = retrain_config(settings)
        triggers = current_triggers(settings, config)
    except CreditOpsError as error:
        config, triggers, problem = None, [], str(error)
    champion, challenger = champion_and_challenger(settings)
    with JobStore.from_settings(settings) as store:
        jobs = store.list(kind="retrain", limit=10)
    shadow = None
    if challenger is not None:
        service = request.app.state.service
        pairs = shadow_pairs(service.log, challenger, limit=COMPARE_ROWS)
        shadow = compare_shadow(pairs, challenger)
    return {
        "canary": request.app.state.service.canary_status(),
        "canary_limits": CanaryLimits.from_settings(settings),
        "shadow": shadow,
        "shadow_failures": None
        if shadow is None or config is None or not config.needs_shadow
        else gate_failures(shadow, config.shadow),
        "shadow_share": settings.shadow_share,
        "config": config,
        "triggers": triggers,
        "problem": problem,
        "retrains": audit_log(request).recent(_RETRAINS_SHOWN, action="retrain"),
        "champion": champion,
        "challenger": challenger,
        "jobs": jobs,
        **extra,
    }


@router.get("")
async def retraining_page(request: Request, _: Viewer) -> Response:
    return render(request, "retraining.html", await run_in_threadpool(_page, request))


@router.post("/run")
async def retrain_now(
    request: Request,
    session: Admin,
    force: Annotated[bool, Form()] = False,
) -> Response:
    params = RetrainRequest(force=force).model_dump(mode="json")
    settings = request.app.state.settings
    try:
        job = await run_in_threadpool(
            submit_job, settings, "retrain", params, requested_by=session.actor
        )
    except CreditOpsError as error:
        context = await run_in_threadpool(_page, request)
        context["problem"] = f"The retrain job could not be started: {error}"
        return render(request, "retraining.html", context, status_code=503)
    return RedirectResponse(f"/ui/jobs/{job.id}", status_code=303)


@router.post("/canary/{switch}")
async def switch_canary(
    request: Request,
    session: Admin,
    switch: Annotated[str, Path(pattern="^(halt|resume)$")],
    reason: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    """Halt the canary, or let a halted one decide again (admin; audited with the reason)."""
    service = request.app.state.service
    outcome = "halted" if switch == "halt" else "resumed"
    try:
        await run_in_threadpool(
            service.switch_canary,
            outcome,
            by=session.actor,
            reason=reason.strip() or None,
        )
    except (CanaryStateError, AuditLogError) as error:
        context = await run_in_threadpool(_page, request)
        context["problem"] = f"The canary was not {outcome}: {error}"
        status = 409 if isinstance(error, CanaryStateError) else 503
        return render(request, "retraining.html", context, status_code=status)
    return RedirectResponse(f"/ui/retraining?canary={outcome}#canary-h", status_code=303)
