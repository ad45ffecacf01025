"""Bring data in: upload a CSV or Parquet file (or pick a built-in dataset), correct the spec
inferred from it while the validation report follows, explore its profile (the IV table, bad
rate by bin, correlations), and train on it as a job."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Form, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from creditops.data.datasets import CATALOG, load_builtin
from creditops.data.io import read_table
from creditops.data.profile import DatasetProfile, profile_file, profile_frame
from creditops.data.spec import DatasetSpec
from creditops.data.uploads import (
    FileSummary,
    StoredUpload,
    find_upload,
    infer_spec,
    list_uploads,
    read_spec,
    save_spec,
    store_upload,
    summarise_file,
)
from creditops.data.validate import ValidationProblem, ValidationReport, check_dataset
from creditops.exceptions import (
    ConfigurationError,
    CreditOpsError,
    DataValidationError,
    ModelNotFoundError,
)
from creditops.jobs.runner import TrainingRequest, submit_training
from creditops.models.zoo import CANDIDATES
from creditops.registry import CHAMPION, get_version, training_reference
from creditops.serving.ui import data_charts
from creditops.serving.ui.deps import Admin, Viewer, check_csrf, is_htmx
from creditops.serving.ui.spec_form import ROLES, SpecFormError, spec_from_form, spec_rows
from creditops.serving.ui.templating import render

router = APIRouter(prefix="/ui/data")

UploadKey = Annotated[str, PathParam(pattern=r"^[0-9a-f]{16}$", description="an upload")]
BuiltinName = Annotated[str, PathParam(pattern=r"^[a-z0-9_]{1,64}$")]
# Room for the multipart framing and the CSRF field around the file itself.
_FORM_OVERHEAD = 64 * 1024
_CHUNK = 1024 * 1024
_PROFILE_FILE = "profile.json"


def _uploads_dir(request: Request) -> Path:
    return Path(request.app.state.settings.home) / "uploads"


def _size(n: int) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:,.3g} {unit}"
    return f"{n:,} bytes"


# --------------------------------------------------------------------------- the list


def _index(request: Request, **context: Any) -> dict[str, Any]:
    limit = request.app.state.settings.max_upload_bytes
    return {
        "uploads": list_uploads(_uploads_dir(request)),
        "builtins": sorted(CATALOG.values(), key=lambda d: d.name),
        "max_upload": limit,
        "max_upload_text": _size(limit),
        "size": _size,
        "error": None,
        **context,
    }


@router.get("")
async def data_index(request: Request, _: Viewer) -> Response:
    return render(request, "data.html", await run_in_threadpool(_index, request))


@router.post("/upload")
async def upload(request: Request, session: Viewer) -> Response:
    """Stream the file to the uploads folder (refused past the cap), then open its spec."""
    limit = request.app.state.settings.max_upload_bytes
    declared = request.headers.get("content-length", "")
    if not declared.isdigit() or int(declared) > limit + _FORM_OVERHEAD:
        message = (
            f"The file is larger than the {_size(limit)} an upload may have "
            "(CREDITOPS_MAX_UPLOAD_BYTES); nothing was stored."
        )
        return _index_error(request, message, 413)
    if not session.is_admin:
        return _index_error(request, "Uploading data needs the admin key.", 403)
    form = await request.form(max_files=1, max_fields=4)  # parsed once, with these limits
    await check_csrf(request)
    file = form.get("file")
    if not isinstance(file, UploadFile) or not file.filename:
        return _index_error(request, "Choose a CSV or Parquet file to upload.", 422)
    try:
        stored = await run_in_threadpool(_store, request, file, limit)
    except DataValidationError as error:
        return _index_error(request, str(error), 422)
    finally:
        await file.close()
    return RedirectResponse(f"/ui/data/{stored.path.parent.name}", status_code=303)


def _store(request: Request, file: UploadFile, limit: int) -> Any:
    def chunks() -> Any:
        file.file.seek(0)
        while chunk := file.file.read(_CHUNK):
            yield chunk

    stored = store_upload(
        chunks(), file.filename or "upload", _uploads_dir(request), max_bytes=limit
    )
    try:
        summarise_file(stored.path)  # unreadable (binary, wrong encoding): say so now
    except DataValidationError:
        if not stored.reused:
            stored.path.unlink(missing_ok=True)
            with contextlib.suppress(OSError):  # the same bytes may be arriving again
                stored.path.parent.rmdir()
        raise
    return stored


def _index_error(request: Request, message: str, status: int) -> Response:
    context = _index(request, error=message)
    return render(request, "data.html", context, status_code=status)


# --------------------------------------------------------------------------- one upload


@lru_cache(maxsize=4)
def _summary(path: str, modified_ns: int) -> FileSummary:
    return summarise_file(Path(path))


@lru_cache(maxsize=1)
def _cached_frame(path: str, modified_ns: int) -> Any:
    return read_table(path)


_FRAME_LOCK = threading.Lock()


def _frame(path: str, modified_ns: int) -> Any:
    """The upload as a frame for validation: one file held per process, read once even when
    several checks ask at the same moment."""
    with _FRAME_LOCK:
        return _cached_frame(path, modified_ns)


def _stamp(upload: StoredUpload) -> int:
    return upload.path.stat().st_mtime_ns


def _check(upload: StoredUpload, spec: DatasetSpec) -> ValidationReport:
    try:
        frame = _frame(str(upload.path), _stamp(upload))
    except DataValidationError as error:
        return ValidationReport(rows=0, columns=0, problems=[ValidationProblem(str(error))])
    return check_dataset(frame, spec, dataset_name=upload.path.name)


def _editor(
    request: Request,
    key: str,
    *,
    spec: DatasetSpec | None = None,
    form_error: SpecFormError | None = None,
    notice: str | None = None,
) -> dict[str, Any]:
    upload = find_upload(_uploads_dir(request), key)
    summary = _summary(str(upload.path), _stamp(upload))
    saved = read_spec(upload)
    inferred = no_outcome = False
    if spec is None:
        spec = saved
    if spec is None:
        try:
            spec = infer_spec(upload.path)
            inferred = True
        except DataValidationError as error:
            first = next(iter(summary.columns))
            spec = DatasetSpec(target=first, positive="?")
            form_error = SpecFormError("target", str(error))
            no_outcome = True
    report = None if form_error is not None else _check(upload, spec)
    return {
        "upload": upload,
        "summary": summary,
        "spec": spec,
        "rows": spec_rows(summary.columns, spec),
        "roles": ROLES,
        "saved": saved is not None,
        "saved_matches": saved == spec,
        "inferred": inferred,
        "form_error": form_error,
        "report": report,
        "notice": notice,
        "size": _size,
        "champion": get_version(request.app.state.settings, CHAMPION) is not None,
        "train_refused": False,
        "no_outcome": no_outcome or _lacks_served_target(request, summary),
    }


def _lacks_served_target(request: Request, summary: FileSummary) -> bool:
    """Whether the file has the served model's features but not its outcome: recent
    applications, to compare with what the model was trained on."""
    service = request.app.state.service
    if not service.ready:
        return False
    spec = service.served.spec
    return spec.target not in summary.columns and set(spec.features) <= set(summary.columns)


@router.get("/{key}")
async def upload_page(request: Request, key: UploadKey, _: Viewer) -> Response:
    try:
        context = await run_in_threadpool(_editor, request, key)
    except DataValidationError as error:
        return _index_error(request, str(error), 404)
    saved = request.query_params.get("saved")
    if saved:
        context["notice"] = "Spec saved next to the file."
    return render(request, "data_upload.html", context)


async def _form_spec(request: Request, key: str) -> tuple[DatasetSpec | None, SpecFormError | None]:
    form = await request.form(max_fields=4000)
    upload = find_upload(_uploads_dir(request), key)
    summary = await run_in_threadpool(_summary, str(upload.path), _stamp(upload))
    try:
        return spec_from_form(form, summary.columns), None
    except SpecFormError as error:
        return None, error


def _no_upload(request: Request, error: DataValidationError) -> Response:
    return _index_error(request, str(error), 404)


@router.post("/{key}/check")
async def check_spec(request: Request, key: UploadKey, _: Viewer) -> Response:
    """The validation report for the spec as edited (htmx, on every change)."""
    await check_csrf(request)
    try:
        spec, error = await _form_spec(request, key)
    except DataValidationError as missing:
        return _no_upload(request, missing)
    context = await run_in_threadpool(_editor, request, key, spec=spec, form_error=error)
    return render(request, "data_upload.html", context, block="validation")


@router.post("/{key}/spec")
async def save_upload_spec(request: Request, key: UploadKey, _: Admin) -> Response:
    try:
        spec, error = await _form_spec(request, key)
    except DataValidationError as missing:
        return _no_upload(request, missing)
    if error is not None or spec is None:
        context = await run_in_threadpool(_editor, request, key, form_error=error)
        return render(request, "data_upload.html", context, status_code=422)
    upload = find_upload(_uploads_dir(request), key)
    await run_in_threadpool(save_spec, upload, spec)
    return RedirectResponse(f"/ui/data/{key}?saved=1", status_code=303)


# --------------------------------------------------------------------------- profile


def _profile_upload(
    settings: Any, upload: StoredUpload, spec: DatasetSpec | None, against: str | None
) -> DatasetProfile:
    """The profile for this spec (with ``against``: each feature's PSI against that version's
    training rows, and its spec when the upload has none), computed once and kept next to the
    file for as long as the spec and the version stay the same."""
    reference = reference_name = None
    if against is not None:
        loaded, reference, reference_name = training_reference(settings, against)
        spec = spec or loaded.spec.dataset_spec()
    if spec is None:
        raise ConfigurationError("save the spec first")
    key = f"{spec.model_dump_json()}|{reference_name}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    cached = upload.path.parent / (_PROFILE_FILE if against is None else "profile-against.json")
    if cached.is_file():
        try:
            stored = json.loads(cached.read_text(encoding="utf-8"))
            if stored.get("spec") == digest:
                return DatasetProfile.model_validate(stored["profile"])
        except (ValueError, KeyError, AttributeError):
            pass  # unreadable (cut short, older schema): computed again below
    profile = profile_file(upload.path, spec, reference=reference, reference_name=reference_name)
    payload = {"spec": digest, "profile": profile.model_dump(mode="json")}
    # A name of its own per writer: two requests at once never interleave one file.
    temporary = cached.with_name(f".{cached.name}.{os.getpid()}.{threading.get_ident()}")
    temporary.write_text(json.dumps(payload), encoding="utf-8")
    temporary.replace(cached)
    return profile


def _profile_context(
    profile: DatasetProfile, feature: str | None, **context: Any
) -> dict[str, Any]:
    names = [f.name for f in profile.features]
    chosen = feature if feature in names else (profile.by_information_value() or [None])[0]
    selected = None if chosen is None else profile.feature(getattr(chosen, "name", chosen))
    return {
        "profile": profile,
        "features": profile.by_information_value(),
        "selected": selected,
        "feature_charts": data_charts.feature_figures(selected) if selected else {},
        "correlation_chart": data_charts.correlations(profile.correlations),
        **context,
    }


@router.get("/{key}/profile")
async def upload_profile(
    request: Request,
    key: UploadKey,
    _: Viewer,
    feature: Annotated[str | None, Query(max_length=300)] = None,
    against: Annotated[Literal["champion"] | None, Query()] = None,
) -> Response:
    settings = request.app.state.settings
    try:
        upload = find_upload(_uploads_dir(request), key)
        spec = read_spec(upload)
        if spec is None and against is None:
            return RedirectResponse(f"/ui/data/{key}", status_code=303)
        profile = await run_in_threadpool(_profile_upload, settings, upload, spec, against)
    except (DataValidationError, ConfigurationError, ModelNotFoundError) as error:
        return _index_error(request, str(error), 422)
    context = _profile_context(
        profile,
        feature,
        title=upload.path.name,
        base=f"/ui/data/{key}",
        train_url=f"/ui/data/{key}/train" if spec is not None else None,
        editor_url=f"/ui/data/{key}",
        against=against,
        champion=get_version(request.app.state.settings, CHAMPION) is not None,
    )
    block = "feature" if is_htmx(request) else None
    return render(request, "data_profile.html", context, block=block)


@lru_cache(maxsize=8)
def _builtin_profile(name: str) -> DatasetProfile:
    frame, spec = load_builtin(name)
    return profile_frame(frame, spec, source=name)


@router.get("/builtin/{name}")
async def builtin_profile(
    request: Request,
    name: BuiltinName,
    _: Viewer,
    feature: Annotated[str | None, Query(max_length=300)] = None,
) -> Response:
    if name not in CATALOG:
        return _index_error(request, f"no built-in dataset {name!r}", 404)
    profile = await run_in_threadpool(_builtin_profile, name)
    context = _profile_context(
        profile,
        feature,
        title=f"{name} (built-in)",
        base=f"/ui/data/builtin/{name}",
        train_url=f"/ui/data/builtin/{name}/train",
        editor_url=None,
        against=None,
        champion=get_version(request.app.state.settings, CHAMPION) is not None,
    )
    block = "feature" if is_htmx(request) else None
    return render(request, "data_profile.html", context, block=block)


# --------------------------------------------------------------------------- train


def _training_request(
    profile: str, alias: str, time_budget: float | None, models: list[str], **source: Any
) -> TrainingRequest:
    return TrainingRequest(
        profile=profile,  # type: ignore[arg-type]
        alias=alias,  # type: ignore[arg-type]
        time_budget=time_budget,
        models=models,
        **source,
    )


def _unknown_candidates(models: list[str] | None, listed: bool = False) -> str | None:
    """Why the form's candidates cannot be trained, or None. A browser sends no field for no
    ticked box: ``listed`` (the form showed the boxes) tells that from a client that sends no
    choice, which trains every candidate."""
    if models is None:
        return "models: choose at least one candidate" if listed else None
    unknown = sorted(set(models) - set(CANDIDATES))
    if unknown:
        return f"models: no candidate {', '.join(map(repr, unknown))}"
    if not models:
        return "models: choose at least one candidate"
    return None


TrainProfile = Annotated[str, Form(pattern="^(fast|full)$")]
TrainAlias = Annotated[str, Form(pattern="^(champion|challenger)$")]
TimeBudget = Annotated[float | None, Form(gt=0, le=86_400)]
# The candidates ticked; a form that sends none of the field trains them all.
Models = Annotated[list[str] | None, Form(max_length=len(CANDIDATES))]
Listed = Annotated[bool, Form()]


@router.post("/{key}/train")
async def train_upload(
    request: Request,
    key: UploadKey,
    session: Admin,
    profile: TrainProfile = "fast",
    alias: TrainAlias = "challenger",
    time_budget: TimeBudget = None,
    models: Models = None,
    candidates_listed: Listed = False,
) -> Response:
    """Train on the upload with its saved spec, as a job: only data that passes validation."""
    problem = _unknown_candidates(models, candidates_listed)
    if problem is not None:
        return _index_error(request, problem, 422)
    try:
        upload = find_upload(_uploads_dir(request), key)
    except DataValidationError as missing:
        return _no_upload(request, missing)
    spec = read_spec(upload)
    if spec is None:
        return RedirectResponse(f"/ui/data/{key}", status_code=303)
    report = await run_in_threadpool(_check, upload, spec)
    if not report.ok:
        context = await run_in_threadpool(_editor, request, key)
        context["notice"] = None
        context["train_refused"] = True
        return render(request, "data_upload.html", context, status_code=422)
    request_ = _training_request(
        profile,
        alias,
        time_budget,
        models or [],
        data_path=str(upload.path),
        spec_path=str(upload.spec_path),
    )
    return await _submit(request, request_, session.actor)


@router.post("/builtin/{name}/train")
async def train_builtin(
    request: Request,
    name: BuiltinName,
    session: Admin,
    profile: TrainProfile = "fast",
    alias: TrainAlias = "challenger",
    time_budget: TimeBudget = None,
    models: Models = None,
    candidates_listed: Listed = False,
) -> Response:
    if name not in CATALOG:
        return _index_error(request, f"no built-in dataset {name!r}", 404)
    problem = _unknown_candidates(models, candidates_listed)
    if problem is not None:
        return _index_error(request, problem, 422)
    request_ = _training_request(profile, alias, time_budget, models or [], dataset=name)
    return await _submit(request, request_, session.actor)


async def _submit(request: Request, training: TrainingRequest, who: str) -> Response:
    settings = request.app.state.settings
    try:
        job = await run_in_threadpool(submit_training, settings, training, requested_by=who)
    except CreditOpsError as error:
        return _index_error(request, f"The job could not be started: {error}", 503)
    return RedirectResponse(f"/ui/jobs/{job.id}", status_code=303)
