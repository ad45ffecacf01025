"""A version: everything its review measured, as tables and interactive charts, and its report
and model card to download."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import FileResponse, Response
from starlette.concurrency import run_in_threadpool

from creditops.evaluation.report import MODEL_CARD, REPORT_HTML, build_sections
from creditops.registry.catalog import version_summary
from creditops.registry.review import report_directory
from creditops.serving.ui import evaluation_charts as charts
from creditops.serving.ui.deps import Viewer, is_htmx
from creditops.serving.ui.reviews import ReviewStatus, reviews_of
from creditops.serving.ui.templating import render

router = APIRouter(prefix="/ui/models")

VersionNumber = Annotated[str, Path(pattern=r"^[0-9]{1,18}$", description="a version number")]


def _context(request: Request, version: str) -> dict[str, object] | None:
    summary = version_summary(request.app.state.settings, version)
    if summary is None:
        return None
    status = reviews_of(request).status(version)
    return {"summary": summary, "status": status, **_review_parts(status)}


def _review_parts(status: ReviewStatus) -> dict[str, object]:
    result = status.result
    if result is None:
        return {"result": None}
    return {
        "result": result,
        "sections": build_sections(result),
        "figures": {
            "roc": charts.roc([result]),
            "pr": charts.precision_recall([result]),
            "calibration": charts.calibration([result]),
            "gains": charts.gains([result]),
            "lift": charts.lift(result),
            "scores": charts.score_distribution(result),
            "importance": charts.importance(result),
            "profit": charts.profit_curve(result),
            "groups": charts.approval_by_group(result),
        },
    }


def _not_found(request: Request, version: str) -> Response:
    return render(
        request,
        "error.html",
        {"title": "No such version", "message": f"Version {version} is not registered."},
        status_code=404,
    )


@router.get("/{version}")
async def version_page(request: Request, version: VersionNumber, _: Viewer) -> Response:
    context = await run_in_threadpool(_context, request, version)
    if context is None:
        return _not_found(request, version)
    return render(request, "version.html", context)


@router.get("/{version}/review")
async def review_fragment(request: Request, version: VersionNumber, _: Viewer) -> Response:
    """The review part of the page, polled by htmx while the review is computed."""
    context = await run_in_threadpool(_context, request, version)
    if context is None:
        return _not_found(request, version)
    return render(request, "version.html", context, block="review" if is_htmx(request) else None)


def _download(request: Request, version: str, name: str, media_type: str) -> Response:
    path = report_directory(request.app.state.settings, version) / name
    if not path.is_file():
        return render(
            request,
            "error.html",
            {"title": "Not ready", "message": "The review of this version is not stored yet."},
            status_code=404,
        )
    filename = f"{request.app.state.settings.registered_model_name}-v{version}-{name}"
    return FileResponse(path, media_type=media_type, filename=filename)


@router.get("/{version}/report.html")
def report_download(request: Request, version: VersionNumber, _: Viewer) -> Response:
    return _download(request, version, REPORT_HTML, "text/html")


@router.get("/{version}/model_card.md")
def model_card_download(request: Request, version: VersionNumber, _: Viewer) -> Response:
    return _download(request, version, MODEL_CARD, "text/markdown")
