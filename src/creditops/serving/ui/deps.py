"""Who may see a page or act, as ``Annotated`` dependencies, and the CSRF check of every form.

A visitor who has not logged in is sent to the login page (for an htmx request, through the
``HX-Redirect`` header, so a fragment never swaps a login form into a page)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, Request

from creditops.exceptions import AccessDeniedError, LoginRequiredError
from creditops.serving.ui.session import CSRF_FIELD, CSRF_HEADER, Session, read_session

__all__ = ["Admin", "CsrfChecked", "Viewer", "is_htmx", "login_url"]


def is_htmx(request: Request) -> bool:
    return request.headers.get("HX-Request") == "true"


def login_url(next_path: str) -> str:
    return f"/ui/login?next={quote(next_path, safe='/')}"


def require_viewer(request: Request) -> Session:
    session = read_session(request)
    if session.principal is None:
        target = request.url.path
        if request.url.query:
            target += "?" + request.url.query
        if is_htmx(request):  # the page that asked, not its fragment
            target = request.headers.get("HX-Current-URL", "/ui")
        raise LoginRequiredError(target)
    return session


async def check_csrf(request: Request) -> None:
    """Every state-changing request carries this session's CSRF token, in the form or (htmx)
    in the ``X-CSRF-Token`` header; a cross-site form cannot know it."""
    session = read_session(request)
    given = request.headers.get(CSRF_HEADER)
    if given is None and request.method == "POST":
        form = await request.form()
        value = form.get(CSRF_FIELD)
        given = value if isinstance(value, str) else None
    if not session.csrf_matches(given):
        raise AccessDeniedError(
            "the form's CSRF token is missing or wrong: reload the page and retry"
        )


def require_admin(
    session: Annotated[Session, Depends(require_viewer)],
    _: Annotated[None, Depends(check_csrf)],
) -> Session:
    if not session.is_admin:
        raise AccessDeniedError("this needs the admin key (the admin role): log in with it")
    return session


Viewer = Annotated[Session, Depends(require_viewer)]
CsrfChecked = Depends(check_csrf)
Admin = Annotated[Session, Depends(require_admin)]
