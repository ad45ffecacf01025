"""How the dashboard joins the service: its routes, its static files and the answers to "log in
first" and "not allowed". Its security headers, the strict Content-Security-Policy included,
are the app's one header policy (:mod:`creditops.serving.middleware`)."""

from __future__ import annotations

from importlib.resources import files

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from starlette.staticfiles import StaticFiles

from creditops.exceptions import AccessDeniedError, LoginRequiredError
from creditops.serving.ui.deps import is_htmx, login_url
from creditops.serving.ui.pages import ROUTERS
from creditops.serving.ui.pages.login import LoginLimiter
from creditops.serving.ui.session import read_session
from creditops.serving.ui.templating import render

__all__ = ["DASHBOARD", "STATIC", "add_ui"]

DASHBOARD = "/ui"
STATIC = f"{DASHBOARD}/static"


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
    app.state.login_limiter = LoginLimiter()
    # The API's docs pages accept a dashboard session too (serving.api.deps.authorize_page).
    app.state.session_principal = lambda request: read_session(request).principal
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
