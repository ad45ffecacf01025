"""How the dashboard joins the service: its routes, its static files, its security headers and
the answers to "log in first" and "not allowed"."""

from __future__ import annotations

from importlib.resources import files

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from creditops.exceptions import AccessDeniedError, LoginRequiredError
from creditops.serving.ui.deps import is_htmx, login_url
from creditops.serving.ui.pages import ROUTERS
from creditops.serving.ui.templating import render

__all__ = ["add_ui"]

STATIC = "/ui/static"
# Scripts only from this origin (no inline script, no eval); Plotly writes its own <style>
# elements, hence inline styles; charts export images as data: URIs.
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; font-src 'self'; connect-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
_HEADERS = [
    (b"content-security-policy", _CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-content-type-options", b"nosniff"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
]


class _SecurityHeaders:
    """Security headers on every dashboard response (the API's JSON needs none of them, and
    Swagger UI at /docs needs its inline script)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not (path == "/" or path.startswith("/ui")):
            await self.app(scope, receive, send)
            return
        page = not path.startswith(STATIC)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", [])) + _HEADERS
                if page:  # pages show personal data: never cached
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _plotly() -> FileResponse:
    # plotly.js as the pinned plotly wheel ships it (MIT; its licence is in the wheel).
    path = files("plotly") / "package_data" / "plotly.min.js"
    return FileResponse(
        str(path),
        media_type="text/javascript",
        headers={"cache-control": "public, max-age=86400"},
    )


async def _login_required(request: Request, error: Exception) -> Response:
    assert isinstance(error, LoginRequiredError)
    target = login_url(error.next_path)
    if is_htmx(request):
        return Response(status_code=200, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


async def _forbidden(request: Request, error: Exception) -> Response:
    return render(
        request,
        "error.html",
        {"title": "Not allowed", "message": str(error)},
        block="message" if is_htmx(request) else None,
        status_code=403,
    )


def add_ui(app: FastAPI) -> None:
    """Put the dashboard on ``app``: ``/`` redirects to ``/ui``."""
    app.add_middleware(_SecurityHeaders)
    app.add_exception_handler(LoginRequiredError, _login_required)
    app.add_exception_handler(AccessDeniedError, _forbidden)
    app.add_api_route("/", lambda: RedirectResponse("/ui", 307), include_in_schema=False)
    app.add_api_route(f"{STATIC}/vendor/plotly.min.js", _plotly, include_in_schema=False)
    for router in ROUTERS:  # flat on the app, like the API's routes (see api.main.add_routes)
        for route in router.routes:
            route.include_in_schema = False  # type: ignore[attr-defined]
            app.router.routes.append(route)
    static = StaticFiles(directory=str(files("creditops.serving.ui") / "static"))
    app.mount(STATIC, static, name="ui-static")
