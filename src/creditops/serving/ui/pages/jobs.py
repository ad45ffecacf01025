"""Background jobs (training, monitor and retrain runs): the list, and one job's live progress
(the candidates filling in, steps done of total, elapsed and time left), polled by htmx while
the job runs; cancel (admin)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from creditops.exceptions import JobError
from creditops.jobs.runner import cancel_job, job_log
from creditops.serving.ui.deps import Admin, Viewer, is_htmx
from creditops.serving.ui.templating import render
from creditops.store.jobs import Job, JobStore

router = APIRouter(prefix="/ui/jobs")

JobId = Annotated[str, Path(pattern=r"^[0-9a-f-]{32,36}$", description="a job id")]
_LOG_TAIL_BYTES = 4000


def _jobs(request: Request) -> dict[str, Any]:
    with JobStore.from_settings(request.app.state.settings) as store:
        return {"jobs": store.list(limit=100)}


@router.get("")
async def jobs_page(request: Request, _: Viewer) -> Response:
    return render(request, "jobs.html", await run_in_threadpool(_jobs, request))


def _log_tail(request: Request, job: Job) -> str | None:
    path = job_log(request.app.state.settings, job.id)
    if job.state != "failed" or not path.is_file():
        return None
    with open(path, "rb") as handle:
        handle.seek(max(0, path.stat().st_size - _LOG_TAIL_BYTES))
        return handle.read().decode("utf-8", "replace")


def _job(request: Request, job_id: str) -> dict[str, Any] | None:
    with JobStore.from_settings(request.app.state.settings) as store:
        try:
            job = store.get(job_id)
        except JobError:
            return None
    steps = sorted(
        (job.progress.get("steps") or {}).items(), key=lambda item: item[1].get("finished", False)
    )
    return {"job": job, "steps": steps, "log_tail": _log_tail(request, job)}


@router.get("/{job_id}")
async def job_page(request: Request, job_id: JobId, _: Viewer) -> Response:
    context = await run_in_threadpool(_job, request, job_id)
    if context is None:
        message = f"There is no job {job_id}."
        return render(
            request, "error.html", {"title": "No such job", "message": message}, status_code=404
        )
    block = "progress" if is_htmx(request) else None
    return render(request, "job.html", context, block=block)


@router.post("/{job_id}/cancel")
async def cancel(request: Request, job_id: JobId, session: Admin) -> Response:
    try:
        await run_in_threadpool(cancel_job, request.app.state.settings, job_id, by=session.actor)
    except JobError as error:
        context = await run_in_threadpool(_job, request, job_id)
        if context is None:
            message = {"title": "No such job", "message": f"There is no job {job_id}."}
            return render(request, "error.html", message, status_code=404)
        context["error"] = str(error)
        return render(request, "job.html", context, status_code=409)
    return RedirectResponse(f"/ui/jobs/{job_id}", status_code=303)
