"""What-if on a version's decision policy: move the cut-offs and the economics, see what the
policy would do on the version's test split, and (admin) save it as the version's policy."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from creditops.evaluation.business import amounts_from
from creditops.evaluation.policy import DecisionPolicy, Economics
from creditops.evaluation.whatif import policy_what_if, what_if_policy
from creditops.exceptions import CreditOpsError
from creditops.registry.catalog import version_summary
from creditops.registry.load import load_model
from creditops.registry.policy import stored_policy
from creditops.retraining.policy_change import change_policy
from creditops.serving.ui.deps import Admin, Viewer, is_htmx
from creditops.serving.ui.samples import scored_split
from creditops.serving.ui.templating import render

router = APIRouter(prefix="/ui/models")

VersionNumber = Annotated[str, Path(pattern=r"^[0-9]{1,18}$", description="a version number")]
Cut = Annotated[float | None, Query(ge=0.0, le=1.0)]
Money = Annotated[float | None, Query(ge=0.0)]


def _base_policy(request: Request, version: str) -> DecisionPolicy:
    settings = request.app.state.settings
    service = request.app.state.service
    if service.ready and service.served.version == version:
        return service.served.policy
    policy = stored_policy(settings, load_model(settings, version))
    if policy is None:
        raise CreditOpsError(f"version {version} has no stored policy yet: serve it once")
    return policy


def _candidate(base: DecisionPolicy, values: dict[str, Any]) -> DecisionPolicy:
    economics = Economics.model_validate(
        {
            **base.economics.model_dump(),
            **{k: values[k] for k in ("loss_given_default", "interest_margin", "review_cost")
               if values.get(k) is not None},
        }
    )  # fmt: skip
    return what_if_policy(
        base,
        values.get("approve_below", base.approve_below),
        values.get("decline_at_or_above", base.decline_at_or_above),
        economics,
    )


def _context(request: Request, version: str, values: dict[str, Any]) -> dict[str, Any] | None:
    summary = version_summary(request.app.state.settings, version)
    if summary is None:
        return None
    base = _base_policy(request, version)
    context: dict[str, Any] = {"summary": summary, "base": base, "problem": None, "result": None}
    try:
        policy = _candidate(base, {k: v for k, v in values.items() if v is not None})
    except (ValidationError, ValueError) as error:
        context["problem"] = _first_error(error)
        context["policy"] = base
        return context
    split = scored_split(request, version)
    amounts = amounts_from(split.frame, policy.economics)
    context["policy"] = policy
    context["result"] = policy_what_if(policy, split.y, split.proba, amounts, split.protected)
    return context


def _first_error(error: Exception) -> str:
    if isinstance(error, ValidationError):
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "policy"
        return f"{where}: {first['msg']}"
    return str(error)


@router.get("/{version}/policy")
async def policy_page(
    request: Request,
    version: VersionNumber,
    _: Viewer,
    approve_below: Cut = None,
    decline_at_or_above: Cut = None,
    loss_given_default: Annotated[float | None, Query(ge=0.0, le=1.0)] = None,
    interest_margin: Money = None,
    review_cost: Money = None,
) -> Response:
    values = {
        "approve_below": approve_below,
        "decline_at_or_above": decline_at_or_above,
        "loss_given_default": loss_given_default,
        "interest_margin": interest_margin,
        "review_cost": review_cost,
    }
    context = await run_in_threadpool(_context, request, version, values)
    if context is None:
        return render(
            request,
            "error.html",
            {"title": "No such version", "message": f"Version {version} is not registered."},
            status_code=404,
        )
    context["saved"] = request.query_params.get("saved") == "1"
    context["save_error"] = None
    block = "result" if is_htmx(request) else None
    return render(request, "policy.html", context, block=block)


@router.post("/{version}/policy")
async def save_policy_page(
    request: Request,
    version: VersionNumber,
    session: Admin,
    approve_below: Annotated[float, Form(ge=0.0, le=1.0)],
    decline_at_or_above: Annotated[float, Form(ge=0.0, le=1.0)],
    loss_given_default: Annotated[float, Form(ge=0.0, le=1.0)],
    interest_margin: Annotated[float, Form(ge=0.0)],
    review_cost: Annotated[float, Form(ge=0.0)],
    reason: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    values = {
        "approve_below": approve_below,
        "decline_at_or_above": decline_at_or_above,
        "loss_given_default": loss_given_default,
        "interest_margin": interest_margin,
        "review_cost": review_cost,
    }
    context = await run_in_threadpool(_context, request, version, values)
    if context is None:
        return RedirectResponse("/ui/models", status_code=303)
    error = context["problem"] or (
        None if reason.strip() else "Give a reason: it is kept in the audit trail."
    )
    if error is None:
        service = request.app.state.service

        def apply() -> None:
            if service.ready and service.served.version == version:
                service.swap_to(version)  # this worker at once; the others follow the tag

        try:
            await run_in_threadpool(
                lambda: change_policy(
                    request.app.state.settings,
                    version,
                    context["policy"],
                    before=context["base"],
                    reason=reason,
                    via=session.actor,
                    apply=apply,
                )
            )
        except CreditOpsError as failure:
            error = str(failure)
    if error is not None:
        context.update(saved=False, save_error=error, reason=reason)
        return render(request, "policy.html", context, status_code=422)
    return RedirectResponse(f"/ui/models/{version}/policy?saved=1", status_code=303)
