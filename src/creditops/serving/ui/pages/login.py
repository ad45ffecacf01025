"""Log in with a key, log out."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from creditops.serving.access import role_of
from creditops.serving.ui.deps import CsrfChecked
from creditops.serving.ui.session import read_session, save_session
from creditops.serving.ui.templating import render

router = APIRouter(prefix="/ui")


def _safe_next(target: str | None) -> str:
    # Only a path of this dashboard: never another site ("//evil", "https://...").
    if target and target.startswith("/ui") and not target.startswith("//"):
        return target
    return "/ui"


@router.get("/login")
def login_page(request: Request, next: str | None = None) -> Response:
    return render(request, "login.html", {"next": _safe_next(next), "error": None})


@router.post("/login", dependencies=[CsrfChecked])
def log_in(
    request: Request,
    key: Annotated[str, Form(max_length=512)] = "",
    next: Annotated[str, Form(max_length=2048)] = "/ui",
) -> Response:
    settings = request.app.state.settings
    role = role_of(settings, key.strip())
    if role is None:
        error = "That key is not valid here." if key.strip() else "Enter your key."
        context = {"next": _safe_next(next), "error": error}
        return render(request, "login.html", context, status_code=401)
    read_session(request).log_in(key.strip(), role)
    response = RedirectResponse(_safe_next(next), status_code=303)
    save_session(request, response)
    return response


@router.post("/logout", dependencies=[CsrfChecked])
def log_out(request: Request) -> Response:
    read_session(request).log_out()
    response = RedirectResponse("/ui/login", status_code=303)
    save_session(request, response)
    return response
