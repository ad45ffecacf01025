"""One error body everywhere: :class:`ErrorBody`, for the routes' own refusals, for FastAPI's
request validation and for Starlette's 404 / 405, each documented on the routes that answer it."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from creditops.exceptions import PredictionLogError
from creditops.serving.middleware import current_request_id
from creditops.serving.parsing import field_errors
from creditops.serving.schemas import ErrorBody

_MEANING = {
    401: "missing or wrong X-API-Key",
    403: "admin endpoints are disabled (CREDITOPS_API_KEY is not set)",
    404: "not found",
    409: "refused: it conflicts with the current state",
    413: "request body too large",
    422: "invalid request: each problem names its field, never the value sent",
    503: "not ready (no model loaded) or the decision log failed",
}


def error_response(
    status: int, detail: str, errors: list[dict[str, str]] | None = None
) -> JSONResponse:
    """An :class:`ErrorBody` answer; a 5xx one carries the request id, the key to the log."""
    request_id = current_request_id() if status >= 500 else None
    body = ErrorBody(detail=detail, errors=errors or [], request_id=request_id)
    return JSONResponse(status_code=status, content=body.model_dump(exclude_none=True))


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` of a route that may answer these statuses, each with ErrorBody."""
    return {status: {"model": ErrorBody, "description": _MEANING[status]} for status in statuses}


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    response = error_response(exc.status_code, str(exc.detail))
    response.headers.update(exc.headers or {})  # e.g. Allow on a 405
    return response


async def _request_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    # FastAPI's locations start with where the value was (body, query, path): dropped.
    return error_response(422, "invalid request", field_errors(exc.errors(), skip=1))


async def _log_error(_: Request, exc: Exception) -> JSONResponse:
    return error_response(503, f"not done: the decision log failed ({exc})")


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error with :class:`ErrorBody`."""
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _request_error)
    app.add_exception_handler(PredictionLogError, _log_error)
