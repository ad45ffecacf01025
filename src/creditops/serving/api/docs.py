"""``/docs`` (Swagger UI) and ``/redoc`` served with no internet: their scripts and styles come
from the installed ``fastapi-offline`` package (Swagger UI and ReDoc bundles), not a CDN."""

from __future__ import annotations

from importlib.resources import files

from fastapi import APIRouter, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.staticfiles import StaticFiles

from creditops.serving.api.deps import AnalystPage

ASSETS = "/docs/assets"
_OAUTH2_REDIRECT = "/docs/oauth2-redirect"

# The API's description holds no personal data, but like every route it is read by analysts
# (a key, or the dashboard session of one who logged in); the bundles under ASSETS are open.
router = APIRouter(include_in_schema=False, dependencies=[AnalystPage])
OPENAPI = "/openapi.json"


def assets() -> StaticFiles:
    """The Swagger UI and ReDoc files, to mount at :data:`ASSETS`."""
    return StaticFiles(directory=str(files("fastapi_offline") / "static"))


@router.get(OPENAPI)
def openapi(request: Request) -> JSONResponse:
    return JSONResponse(request.app.openapi())


@router.get("/docs")
def swagger_ui(request: Request) -> HTMLResponse:
    app = request.app
    return get_swagger_ui_html(
        openapi_url=OPENAPI,
        title=f"{app.title} - Swagger UI",
        swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
        swagger_css_url=f"{ASSETS}/swagger-ui.css",
        swagger_favicon_url=f"{ASSETS}/favicon.png",
        oauth2_redirect_url=_OAUTH2_REDIRECT,
    )


@router.get(_OAUTH2_REDIRECT)
def swagger_ui_redirect() -> HTMLResponse:
    return get_swagger_ui_oauth2_redirect_html()


@router.get("/redoc")
def redoc(request: Request) -> HTMLResponse:
    app = request.app
    return get_redoc_html(
        openapi_url=OPENAPI,
        title=f"{app.title} - ReDoc",
        redoc_js_url=f"{ASSETS}/redoc.standalone.js",
        redoc_favicon_url=f"{ASSETS}/favicon.png",
        with_google_fonts=False,
    )
