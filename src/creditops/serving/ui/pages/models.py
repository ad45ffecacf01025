"""Models: every registered version, two side by side on their shared test split, and promoting
or rolling back the champion (admin, confirmed with a reason that the audit keeps).

A change takes two steps, both server-rendered: the first POST (a button in the list) answers
the confirmation, saying what will change; the second, with a reason, calls the same library
function as the API and the CLI. "Force" is offered only after the library refused a version
that no retrain cleared, and still needs the reason."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from creditops.exceptions import CreditOpsError, ModelNotFoundError, NotClearedError
from creditops.registry import CHAMPION, previous_champion
from creditops.registry.catalog import VersionSummary, version_summaries
from creditops.registry.compare import compare_versions
from creditops.retraining import promote_challenger, rollback
from creditops.serving.ui import evaluation_charts as charts
from creditops.serving.ui.deps import Admin, Viewer, is_htmx
from creditops.serving.ui.stores import audit_log
from creditops.serving.ui.templating import render

router = APIRouter(prefix="/ui/models")

Reason = Annotated[str, Form(max_length=1000)]
Confirmed = Annotated[bool, Form()]
Number = Annotated[str | None, Query(max_length=20)]
NO_REASON = "Give a reason: it is kept in the audit trail."


def _listing(request: Request) -> dict[str, Any]:
    settings = request.app.state.settings
    versions = version_summaries(settings)
    previous = previous_champion(settings)
    return {
        "versions": versions,
        "champion": next((v for v in versions if CHAMPION in v.aliases), None),
        "previous": next((v for v in versions if v.version == previous), None),
        "retrains": audit_log(request).recent(1, action="retrain"),
        "message": None,
        "confirm": None,
    }


@router.get("")
async def models_page(request: Request, _: Viewer) -> Response:
    context = await run_in_threadpool(_listing, request)
    return render(request, "models.html", context)


def _comparison(request: Request, a: str, b: str) -> dict[str, Any]:
    try:
        comparison = compare_versions(request.app.state.settings, a, b)
    except CreditOpsError as error:
        return {"problem": str(error)}
    return {
        "comparison": comparison,
        "figures": {
            "roc": charts.roc(comparison.versions),
            "calibration": charts.calibration(comparison.versions),
            "gains": charts.gains(comparison.versions),
            "scores": [charts.score_distribution(v) for v in comparison.versions],
        },
    }


@router.get("/compare")
async def compare_page(request: Request, _: Viewer, a: Number = None, b: Number = None) -> Response:
    listing = await run_in_threadpool(_listing, request)
    versions: list[VersionSummary] = listing["versions"]
    a = a or (versions[1].version if len(versions) > 1 else None)
    b = b or (versions[0].version if versions else None)
    context: dict[str, Any] = {"a": a, "b": b, "problem": None, "comparison": None, **listing}
    if a is None or b is None:
        context["problem"] = "Two registered versions are needed to compare."
    else:
        context.update(await run_in_threadpool(_comparison, request, a, b))
    block = "comparison" if is_htmx(request) else None
    return render(request, "compare.html", context, block=block)


def _move(request: Request):  # type: ignore[no-untyped-def]
    service = request.app.state.service
    return lambda ref, is_rollback: service.promote(ref, rollback=is_rollback)


def _refusal(request: Request, context: dict[str, Any], message: str, status: int) -> Response:
    return render(request, "models.html", {**context, "message": message}, status_code=status)


def _confirm_step(
    request: Request,
    context: dict[str, Any],
    confirm: dict[str, Any],
    *,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    values = {**context, "confirm": {"error": error, "offer_force": False, **confirm}}
    return render(request, "models.html", values, status_code=status_code)


@router.post("/{version}/promote")
async def promote(
    request: Request,
    version: str,
    session: Admin,
    reason: Reason = "",
    confirmed: Confirmed = False,
    force: Confirmed = False,
) -> Response:
    """First the confirmation (what will change), then, confirmed with a reason, the change."""
    context = await run_in_threadpool(_listing, request)
    target = next((v for v in context["versions"] if v.version == version), None)
    if target is None:
        return _refusal(request, context, f"Version {version} is not registered.", 404)
    confirm = {"action": "promote", "target": target, "reason": reason, "force": force}
    if not confirmed or not reason.strip():
        return _confirm_step(request, context, confirm, error=NO_REASON if confirmed else None)
    try:
        await run_in_threadpool(
            lambda: promote_challenger(
                request.app.state.settings,
                version=version,
                force=force,
                move=_move(request),
                via=session.actor,
                reason=reason.strip(),
            )
        )
    except NotClearedError as error:  # the gates did not clear it: offer force, reason kept
        confirm["offer_force"] = True
        return _confirm_step(request, context, confirm, error=str(error), status_code=409)
    except CreditOpsError as error:
        status = 404 if isinstance(error, ModelNotFoundError) else 409
        return _refusal(request, context, str(error), status)
    return RedirectResponse("/ui/models?changed=promote", status_code=303)


@router.post("/rollback")
async def roll_back(
    request: Request,
    session: Admin,
    reason: Reason = "",
    confirmed: Confirmed = False,
) -> Response:
    context = await run_in_threadpool(_listing, request)
    confirm = {"action": "rollback", "target": context["previous"], "reason": reason}
    if context["previous"] is None:
        return _refusal(request, context, "There is no previous champion to roll back to.", 409)
    if not confirmed or not reason.strip():
        return _confirm_step(request, context, confirm, error=NO_REASON if confirmed else None)
    try:
        await run_in_threadpool(
            lambda: rollback(
                request.app.state.settings,
                move=_move(request),
                via=session.actor,
                reason=reason.strip(),
            )
        )
    except CreditOpsError as error:
        return _refusal(request, context, str(error), 409)
    return RedirectResponse("/ui/models?changed=rollback", status_code=303)
