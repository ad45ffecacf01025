"""Audit: search the decision log, look at one decision and reproduce it with its own model
version, and the trail of promotions, rollbacks, retrains and policy changes."""

from __future__ import annotations

import threading
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from creditops.exceptions import CreditOpsError, PersonalDataError
from creditops.registry.catalog import version_summary
from creditops.serving.reproduce import reproduce_decisions
from creditops.serving.served import ServedModel
from creditops.serving.ui.deps import CsrfChecked, Viewer, is_htmx
from creditops.serving.ui.stores import audit_log
from creditops.serving.ui.templating import render
from creditops.store.access_log import record_access
from creditops.store.decision_search import DecisionFilter, search_decisions

router = APIRouter(prefix="/ui/audit")

_FILTER_FIELDS = ("since", "until", "decision", "model_version", "prediction_id", "outcome")
_MODELS_LOCK = threading.Lock()


def _search(request: Request, values: dict[str, str], after: str | None) -> dict[str, Any]:
    errors: dict[str, str] = {}
    try:
        spec = DecisionFilter.model_validate({k: v for k, v in values.items() if v})
    except ValidationError as error:
        for item in error.errors():
            field = str(item["loc"][0]) if item["loc"] else "until"
            message = item["msg"].removeprefix("Value error, ")
            errors[field if field in _FILTER_FIELDS else "until"] = message.split(": ", 1)[-1]
        return {"values": values, "errors": errors, "page": None}
    try:
        page = search_decisions(request.app.state.service.log, spec, after=after)
    except ValueError as error:
        return {"values": values, "errors": {"after": str(error)}, "page": None}
    return {"values": values, "errors": errors, "page": page}


@router.get("")
async def audit_page(
    request: Request,
    _: Viewer,
    since: Annotated[str, Query(max_length=32)] = "",
    until: Annotated[str, Query(max_length=32)] = "",
    decision: Annotated[str, Query(max_length=16)] = "",
    model_version: Annotated[str, Query(max_length=32)] = "",
    prediction_id: Annotated[str, Query(max_length=64)] = "",
    outcome: Annotated[str, Query(max_length=16)] = "",
    after: Annotated[str | None, Query(max_length=128)] = None,
) -> Response:
    values = {
        "since": since,
        "until": until,
        "decision": decision,
        "model_version": model_version,
        "prediction_id": prediction_id,
        "outcome": outcome,
    }
    context = await run_in_threadpool(_search, request, values, after)
    query = "&".join(f"{k}={v}" for k, v in values.items() if v)
    context.update(query=query, first=after is None)
    return render(request, "audit.html", context)


def _decision(request: Request, prediction_id: str, reader: str) -> dict[str, Any] | None:
    log = request.app.state.service.log
    record = log.get(prediction_id)
    if record is None:
        return None
    summary = version_summary(request.app.state.settings, record.model_version)
    # Every dashboard page needs the analyst role, the one personal data is opened for; each
    # opening is recorded before it is shown.
    personal, personal_problem = None, None
    try:
        personal = log.personal_data(prediction_id)
    except PersonalDataError as error:
        personal_problem = str(error)
    if personal is not None:
        record_access(log, reader, "open_personal_data", prediction_id=record.prediction_id)
    return {
        "record": record,
        "outcome": log.get_outcome(prediction_id),
        "summary": summary,
        "personal": personal,
        "personal_problem": personal_problem,
    }


PredictionId = Annotated[
    str, Path(pattern=r"^[0-9a-fA-F-]{36}$", description="a prediction id (UUID)")
]


@router.get("/decisions/{prediction_id}")
async def decision_page(request: Request, prediction_id: PredictionId, session: Viewer) -> Response:
    context = await run_in_threadpool(_decision, request, prediction_id, session.actor)
    if context is None:
        return render(
            request,
            "error.html",
            {"title": "No such decision", "message": f"No decision {prediction_id} is logged."},
            status_code=404,
        )
    return render(
        request, "audit_decision.html", {**context, "reproduction": None, "problem": None}
    )


def _reproduce(request: Request, prediction_id: str) -> dict[str, Any]:
    record = request.app.state.service.log.get(prediction_id)
    if record is None:
        return {"problem": f"No decision {prediction_id} is logged."}
    state = request.app.state
    with _MODELS_LOCK:
        models: dict[str, ServedModel] = getattr(state, "ui_reproduce_models", None) or {}
        state.ui_reproduce_models = models
        service = state.service
        if service.ready:  # the version being served needs no second copy
            models.setdefault(service.served.version, service.served)
        try:
            result = reproduce_decisions(state.settings, [record], models=models)[0]
        except CreditOpsError as error:
            return {"problem": f"Cannot reproduce it: {error}"}
    return {"reproduction": result, "problem": None}


@router.post("/decisions/{prediction_id}/reproduce", dependencies=[CsrfChecked])
async def reproduce(request: Request, prediction_id: PredictionId, session: Viewer) -> Response:
    context = await run_in_threadpool(_reproduce, request, prediction_id)
    decision = await run_in_threadpool(_decision, request, prediction_id, session.actor)
    values = {
        **(
            decision
            or {
                "record": None,
                "outcome": None,
                "summary": None,
                "personal": None,
                "personal_problem": None,
            }
        ),
        **context,
    }
    block = "reproduction" if is_htmx(request) else None
    return render(request, "audit_decision.html", values, block=block)


@router.get("/changes")
async def changes_page(
    request: Request, _: Viewer, limit: Annotated[int, Query(ge=1, le=500)] = 100
) -> Response:
    entries = await run_in_threadpool(lambda: audit_log(request).recent(limit))
    return render(request, "audit_changes.html", {"entries": entries, "limit": limit})
