"""Decide: one application from a form generated from the served version, with its decision
card (reasons, SHAP waterfall, LIME weights, counterfactual hint), or a file of applications
decided as ``creditops predict`` decides it, its results paged and downloadable.

Every decision made here is a real one, logged like the API's. Requests that carry a
problem (a bad field, a refused file) are answered with the form and the problem; an htmx
request gets status 200 so that htmx swaps the answer in (it leaves 4xx answers unswapped),
a plain form post the 4xx status that says what happened.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from creditops.exceptions import (
    BatchValidationError,
    DataValidationError,
    PredictionLogError,
)
from creditops.serving.batch import decide_file
from creditops.serving.ui import charts
from creditops.serving.ui.application_form import FormOutcome, application_form, decide_form
from creditops.serving.ui.batches import (
    BatchResult,
    batch_csv,
    batch_parquet,
    owner_of,
    read_page,
    save_batch,
)
from creditops.serving.ui.deps import Viewer, check_csrf, is_htmx
from creditops.serving.ui.session import CSRF_FIELD, Session
from creditops.serving.ui.templating import render

router = APIRouter(prefix="/ui")

_FORM_OVERHEAD = 64 * 1024  # multipart boundaries, the CSRF token and the checkbox
_SHOWN_PROBLEMS = 50
_COLUMN_LABELS = {
    "prediction_id": "Prediction id",
    "probability_of_default": "Probability of default",
    "score_points": "Points",
    "risk_grade": "Grade",
    "decision": "Decision",
    "reasons": "Reasons",
    "imputed_fields": "Imputed",
}


def _status(request: Request, status: int) -> int:
    return 200 if is_htmx(request) else status


def _too_large(request: Request, limit: int) -> bool:
    """Whether the body is (declared) larger than ``limit``: checked before anything reads
    it. Browsers declare the length of every form they send; a body without one is refused
    too, since its size is not known until it has been read."""
    declared = request.headers.get("content-length", "")
    return not declared.isdigit() or int(declared) > limit


def _size(limit: int) -> str:
    for unit, size in (("MiB", 2**20), ("KiB", 2**10)):
        if limit >= size:
            return f"{limit / size:,.3g} {unit}"
    return f"{limit:,} bytes"


def _too_large_message(limit: int) -> str:
    return (
        f"The file is larger than the {_size(limit)} ({limit:,} bytes) an upload may have "
        "(CREDITOPS_MAX_BATCH_BODY_BYTES); nothing was decided. Split it, or decide it with "
        "creditops predict."
    )


def _page(request: Request, **context: Any) -> dict[str, Any]:
    service = request.app.state.service
    served = context.pop("served", None) or (service.served if service.ready else None)
    base: dict[str, Any] = {
        "served": served,
        "load_error": request.app.state.load_error,
        "form": application_form(served) if served is not None else None,
        "outcome": FormOutcome(values={}),
        "notice": None,
        "batch": None,
        "batch_page": None,
        "batch_error": None,
        "batch_problems": [],
        "batch_more": 0,
        "max_upload": request.app.state.settings.max_batch_body_bytes,
        "max_upload_text": _size(request.app.state.settings.max_batch_body_bytes),
        "too_large": _too_large_message(request.app.state.settings.max_batch_body_bytes),
        "column_labels": _COLUMN_LABELS,
        "number_columns": {"probability_of_default", "score_points"},
    }
    base.update(context)
    return base


@router.get("/decide")
async def decide_page(request: Request, _: Viewer) -> Response:
    context = await run_in_threadpool(_page, request)
    return render(request, "decide.html", context)


@router.post("/decide")
async def decide_one(request: Request, session: Viewer) -> Response:
    settings = request.app.state.settings
    if _too_large(request, settings.max_body_bytes):
        notice = f"The form is larger than {settings.max_body_bytes:,} bytes; nothing was decided."
        return _single(request, _page(request, notice=notice), 413)
    await check_csrf(request)
    service = request.app.state.service
    if not service.ready:
        return _single(request, _page(request, notice="No model is being served."), 503)
    fields = [(k, v) for k, v in (await request.form()).multi_items() if k != CSRF_FIELD]
    served = service.served  # one version for the decision and the form shown with it
    try:
        outcome = await run_in_threadpool(decide_form, service, served, fields, session.actor)
    except PredictionLogError as error:
        request.app.state.metrics.log_failures.inc()
        notice = f"Decision not made: the decision log failed ({error})."
        return _single(request, _page(request, notice=notice), 503)
    context = _page(request, served=served, outcome=outcome)
    if outcome.explanation is not None:
        context["waterfall"] = charts.shap_waterfall(outcome.explanation["shap"])
    failed = outcome.errors or outcome.general
    return _single(request, context, 422 if failed else 200)


def _single(request: Request, context: dict[str, Any], status: int) -> Response:
    block = "single" if is_htmx(request) else None
    return render(
        request, "decide.html", context, block=block, status_code=_status(request, status)
    )


def _owner(session: Session) -> str:
    return owner_of(session.csrf)


@router.post("/decide/batch")
async def decide_batch(request: Request, session: Viewer) -> Response:
    settings = request.app.state.settings
    limit = settings.max_batch_body_bytes
    if _too_large(request, limit + _FORM_OVERHEAD):
        return _batch(request, _page(request, batch_error=_too_large_message(limit)), 413)
    await check_csrf(request)
    form = await request.form(max_files=1, max_fields=8)
    upload = form.get("file")
    if not isinstance(upload, UploadFile) or not upload.filename:
        return _batch(request, _page(request, batch_error="Choose a CSV or Parquet file."), 422)
    if upload.size is not None and upload.size > limit:
        return _batch(request, _page(request, batch_error=_too_large_message(limit)), 413)
    service = request.app.state.service
    if not service.ready:
        return _batch(request, _page(request, batch_error="No model is being served."), 503)
    data = await upload.read()
    log = form.get("log") == "on"
    try:
        result = await run_in_threadpool(
            _decide_upload, request, _owner(session), data, upload.filename, log, session.actor
        )
    except BatchValidationError as error:
        context = _page(
            request,
            batch_error=_headline(error),
            batch_problems=error.problems[:_SHOWN_PROBLEMS],
            batch_more=max(0, len(error.problems) - _SHOWN_PROBLEMS),
        )
        return _batch(request, context, 422)
    except DataValidationError as error:
        return _batch(request, _page(request, batch_error=str(error)), 422)
    except PredictionLogError as error:
        request.app.state.metrics.log_failures.inc()
        message = f"Batch not decided: the decision log failed ({error})."
        return _batch(request, _page(request, batch_error=message), 503)
    page = await run_in_threadpool(read_page, settings, result.id, _owner(session), 1)
    return _batch(request, _page(request, **_batch_context(request, page)), 200)


def _headline(error: BatchValidationError) -> str:
    if not error.problems:
        return str(error)
    n = len(error.problems)
    return (
        f"The file has {n:,} invalid value{'s' if n > 1 else ''}; nothing was decided. "
        f"Fix {'them' if n > 1 else 'it'} and upload the file again."
    )


def _decide_upload(
    request: Request, owner: str, data: bytes, name: str, log: bool, actor: str
) -> BatchResult:
    state = request.app.state
    service, settings = state.service, state.settings
    served = service.served
    decided = decide_file(
        service, served, data, name, log=log, chunk=settings.max_batch, actor=actor
    )
    return save_batch(
        settings, owner, decided, source=name, model_version=served.version, logged=log
    )


def _batch_context(request: Request, page: Any) -> dict[str, Any]:
    result = page.result
    service = request.app.state.service
    policy = service.served.policy if service.ready else None
    return {
        "batch": result,
        "batch_page": page,
        "mix_chart": charts.decision_mix(result.decisions),
        "pd_chart": charts.probability_histogram(
            result.bin_edges,
            result.histogram,
            policy.approve_below if policy else float("nan"),
            policy.decline_at_or_above if policy else float("nan"),
        ),
    }


def _batch(request: Request, context: dict[str, Any], status: int) -> Response:
    block = "batch" if is_htmx(request) else None
    return render(
        request, "decide.html", context, block=block, status_code=_status(request, status)
    )


@router.get("/decide/batch/{batch_id}")
async def batch_page(request: Request, session: Viewer, batch_id: str, page: int = 1) -> Response:
    settings = request.app.state.settings
    found = await run_in_threadpool(read_page, settings, batch_id, _owner(session), page)
    if found is None:
        return _gone(request)
    context = _page(request, **_batch_context(request, found))
    block = "batch_table" if is_htmx(request) else None
    return render(request, "decide.html", context, block=block)


@router.get("/decide/batch/{batch_id}/decisions.{fmt}")
async def batch_download(request: Request, session: Viewer, batch_id: str, fmt: str) -> Response:
    settings = request.app.state.settings
    filename = f"decisions-{batch_id}.{fmt}"
    disposition = {"content-disposition": f'attachment; filename="{filename}"'}
    if fmt == "parquet":
        path = await run_in_threadpool(batch_parquet, settings, batch_id, _owner(session))
        if path is not None:
            return FileResponse(
                path, media_type="application/vnd.apache.parquet", headers=disposition
            )
    elif fmt == "csv":
        body = await run_in_threadpool(batch_csv, settings, batch_id, _owner(session))
        if body is not None:
            return Response(body, media_type="text/csv; charset=utf-8", headers=disposition)
    return _gone(request)


def _gone(request: Request) -> Response:
    message = (
        "This batch result is not here: results are kept only for the session that made them, "
        "its last few batches, for as long as a session lasts. Upload the file again."
    )
    return render(
        request,
        "error.html",
        {"title": "Batch result not found", "message": message},
        block="message" if is_htmx(request) else None,
        status_code=404,
    )
