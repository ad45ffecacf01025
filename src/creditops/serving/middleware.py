"""What every request and response of the service passes through, in one place.

* One header policy for the whole app: no sniffing, no referrer, no framing, an isolated
  browsing context, no powerful browser features, ``no-store`` on everything but static files
  (decisions, explanations and dashboard pages carry personal data), HSTS when the request
  came over https, and the dashboard's strict Content-Security-Policy on its pages.
* A request id per request: a well-formed incoming ``X-Request-ID`` (so a gateway's id
  follows the request), otherwise a new one; returned on every response, put into every log
  record by :class:`RequestIdFilter`, and into the body of every 5xx answer.
* The last resort: an exception no handler took becomes a 500 with a generic JSON body and
  the request id; the traceback goes to the server's log, never to the client.
* Cross-origin requests only when ``CREDITOPS_CORS_ORIGINS`` names the origins.

Plain ASGI, like the app's instrumentation: Starlette's ``BaseHTTPMiddleware`` costs a task
and memory streams per request, about as much as scoring one application.
"""

from __future__ import annotations

import logging
import re
import secrets
from contextvars import ContextVar

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from creditops.config import Settings
from creditops.serving.schemas import ErrorBody

__all__ = [
    "DASHBOARD_CSP",
    "REQUEST_ID_HEADER",
    "RequestIdFilter",
    "SecurityPolicy",
    "current_request_id",
    "install_http_policy",
]

logger = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID: ContextVar[str | None] = ContextVar("creditops_request_id", default=None)
# Ids a gateway or client may send: bounded, and safe to echo in a header and a log line.
_WELL_FORMED_ID = re.compile(rb"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")

# Scripts only from this origin (no inline script, no eval); Plotly writes its own <style>
# elements, hence inline styles; charts export images as data: URIs.
DASHBOARD_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; font-src 'self'; connect-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
_COMMON: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), payment=(), usb=()"),
)
# Outside the dashboard only framing is ruled out: Swagger UI at /docs needs its inline script.
_FRAMING_ONLY = (b"content-security-policy", b"frame-ancestors 'none'")
_DASHBOARD = (b"content-security-policy", DASHBOARD_CSP.encode())
_NO_STORE = (b"cache-control", b"no-store")
_HSTS = (b"strict-transport-security", b"max-age=31536000; includeSubDomains")

_INTERNAL_ERROR = "internal error: the server could not answer this request"


def current_request_id() -> str | None:
    """The id of the request being handled in this context (None outside a request)."""
    return _REQUEST_ID.get()


def _request_id(headers: list[tuple[bytes, bytes]]) -> str:
    for name, value in headers:
        if name == b"x-request-id":
            if _WELL_FORMED_ID.fullmatch(value):
                return value.decode("ascii")
            break
    return secrets.token_hex(16)


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` to every record a handler emits ("-" outside a request), so a log
    line can be matched with the response that carried the same id."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = _REQUEST_ID.get() or "-"
        return True


class SecurityPolicy:
    """Security headers and ``X-Request-ID`` on every HTTP response, the request id in the
    context while the request is handled, and a generic 500 for an unhandled exception."""

    def __init__(self, app: ASGIApp, *, dashboard: str, static: tuple[str, ...] = ()) -> None:
        self.app = app
        self.dashboard = dashboard
        self.static = static
        # Every combination computed once: a response only concatenates two lists.
        self._policies = {
            (page, cached, https): [
                *_COMMON,
                _DASHBOARD if page else _FRAMING_ONLY,
                *(() if cached else (_NO_STORE,)),
                *((_HSTS,) if https else ()),
            ]
            for page in (False, True)
            for cached in (False, True)
            for https in (False, True)
        }

    def _headers(self, scope: Scope) -> list[tuple[bytes, bytes]]:
        path: str = scope["path"]
        page = path == "/" or path.startswith(self.dashboard)
        cached = path.startswith(self.static)
        return self._policies[(page, cached, scope.get("scheme") == "https")]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope["headers"])
        token = _REQUEST_ID.set(request_id)
        extra = [*self._headers(scope), (b"x-request-id", request_id.encode("ascii"))]
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:
            logger.exception("unhandled error answering %s %s", scope["method"], scope["path"])
            if started:  # part of the answer is out: the server can only drop the connection
                raise
            await _internal_error(send_with_headers, request_id)
        finally:
            _REQUEST_ID.reset(token)


async def _internal_error(send: Send, request_id: str) -> None:
    """The 500 that replaces a traceback: the same body as every other error, with the id."""
    body = ErrorBody(detail=_INTERNAL_ERROR, request_id=request_id).model_dump_json().encode()
    await send(
        {
            "type": "http.response.start",
            "status": 500,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode("ascii")),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def install_http_policy(
    app: FastAPI, settings: Settings, *, dashboard: str, static: tuple[str, ...]
) -> None:
    """Put CORS (only for the origins ``settings`` names) and :class:`SecurityPolicy` on
    ``app``, the policy outermost so that every answer, preflights included, carries it.
    Call it after every other middleware is added."""
    origins = settings.cors_origin_list
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "X-API-Key", REQUEST_ID_HEADER],
            expose_headers=[REQUEST_ID_HEADER],
            max_age=600,
        )
    app.add_middleware(SecurityPolicy, dashboard=dashboard, static=static)
