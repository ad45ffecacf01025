"""Models: every registered version, two side by side, and promoting or rolling back the
champion (admin, confirmed, with a reason kept in the audit)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from creditops.exceptions import CreditOpsError
from creditops.registry import CHAMPION, previous_champion
from creditops.registry.catalog import version_summaries
from creditops.retraining import promote_challenger, rollback
from creditops.serving.ui import evaluation_charts as charts
from creditops.serving.ui.deps import Admin, Viewer
from creditops.serving.ui.reviews import reviews_of
from creditops.serving.ui.stores import audit_log
from creditops.serving.ui.templating import render

router = APIRouter(prefix="/ui/models")

Reason = Annotated[str, Form(max_length=1000)]


def _listing(request: Request) -> dict[str, object]:
    settings = request.app.state.settings
    versions = version_summaries(settings)
    reviews = reviews_of(request)
    verdicts = {}
    for row in versions:
        status = reviews.status(row.version, start=False)
        gate = status.result.fairness_gate if status.result is not None else None
        verdicts[row.version] = (
            "not reviewed yet"
            if status.result is None
            else "not assessed"
            if gate is None
            else ("pass" if gate.passed else "fail")
        )
    champion = next((v for v in versions if CHAMPION in v.aliases), None)
    return {
        "versions": versions,
        "verdicts": verdicts,
        "champion": champion,
        "previous": previous_champion(settings),
        "retrains": audit_log(request).recent(1, action="retrain"),
    }


@router.get("")
async def models_page(request: Request, _: Viewer) -> Response:
    context = await run_in_threadpool(_listing, request)
    return render(request, "models.html", {**context, "message": None, "confirm": None})


def _compare(request: Request, a: str, b: str) -> dict[str, object]:
    known = {v.version: v for v in version_summaries(request.app.state.settings)}
    missing = [v for v in (a, b) if v not in known]
    if missing:
        return {"problem": f"Version {missing[0]} is not registered."}
    left, right = known[a], known[b]
    if left.dataset != right.dataset:
        return {
            "problem": f"v{a} was trained on {left.dataset} and v{b} on {right.dataset}: "
            "they cannot be compared on one test split."
        }
    reviews = reviews_of(request)
    statuses = [reviews.status(a), reviews.status(b)]
    failed = [s.error for s in statuses if s.state == "failed"]
    if failed:
        return {"problem": f"A review failed: {failed[0]}"}
    if any(s.result is None for s in statuses):
        return {"waiting": True, "summaries": [left, right]}
    results = [s.result for s in statuses]
    return {
        "summaries": [left, right],
        "results": results,
        "figures": {
            "roc": charts.roc(results),
            "calibration": charts.calibration(results),
            "gains": charts.gains(results),
            "scores": [charts.score_distribution(r) for r in results],
        },
    }


@router.get("/compare")
async def compare_page(
    request: Request,
    _: Viewer,
    a: Annotated[str, Query(pattern=r"^[0-9]{1,18}$")],
    b: Annotated[str, Query(pattern=r"^[0-9]{1,18}$")],
) -> Response:
    context = await run_in_threadpool(_compare, request, a, b)
    versions = await run_in_threadpool(version_summaries, request.app.state.settings)
    values = {"a": a, "b": b, "versions": versions, "problem": None, "waiting": False, **context}
    block = "comparison" if request.headers.get("HX-Request") == "true" else None
    return render(request, "compare.html", values, block=block)


def _move(request: Request):  # type: ignore[no-untyped-def]
    service = request.app.state.service
    return lambda ref, is_rollback: service.promote(ref, rollback=is_rollback)


@router.post("/{version}/promote")
async def promote(
    request: Request,
    version: str,
    _: Admin,
    reason: Reason = "",
    confirmed: Annotated[bool, Form()] = False,
    force: Annotated[bool, Form()] = False,
) -> Response:
    """First the confirmation (what will change), then, confirmed with a reason, the change."""
    context = await run_in_threadpool(_listing, request)
    target = next((v for v in context["versions"] if v.version == version), None)  # type: ignore[attr-defined]
    if target is None:
        message = ("error", f"Version {version} is not registered.")
        return render(request, "models.html", {**context, "message": message, "confirm": None})
    confirm = {"action": "promote", "target": target, "reason": reason, "force": force}
    if not confirmed or not reason.strip():
        error = "Give a reason: it is kept in the audit trail." if confirmed else None
        values = {**context, "message": None, "confirm": {**confirm, "error": error}}
        return render(request, "models.html", values)
    try:
        await run_in_threadpool(
            lambda: promote_challenger(
                request.app.state.settings,
                version=version,
                force=force,
                move=_move(request),
                via="dashboard",
                reason=reason.strip(),
            )
        )
    except CreditOpsError as error:
        values = {**context, "message": ("error", str(error)), "confirm": None}
        return render(request, "models.html", values, status_code=409)
    return RedirectResponse("/ui/models?changed=promote", status_code=303)


@router.post("/rollback")
async def roll_back(
    request: Request,
    _: Admin,
    reason: Reason = "",
    confirmed: Annotated[bool, Form()] = False,
) -> Response:
    context = await run_in_threadpool(_listing, request)
    confirm = {"action": "rollback", "target": None, "reason": reason, "force": False}
    if not confirmed or not reason.strip():
        error = "Give a reason: it is kept in the audit trail." if confirmed else None
        values = {**context, "message": None, "confirm": {**confirm, "error": error}}
        return render(request, "models.html", values)
    try:
        await run_in_threadpool(
            lambda: rollback(
                request.app.state.settings,
                move=_move(request),
                via="dashboard",
                reason=reason.strip(),
            )
        )
    except CreditOpsError as error:
        values = {**context, "message": ("error", str(error)), "confirm": None}
        return render(request, "models.html", values, status_code=409)
    return RedirectResponse("/ui/models?changed=rollback", status_code=303)
