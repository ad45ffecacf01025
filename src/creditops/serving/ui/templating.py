"""Rendering: one Jinja2 environment over ``templates/`` with the filters that format numbers
for people, and :func:`render`, which answers a whole page or, for an htmx request, one of its
blocks (a page's fragments are its own blocks, so a page and its partial never disagree)."""

from __future__ import annotations

import math
from datetime import datetime
from importlib.resources import files
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from creditops import __version__
from creditops.models.zoo import CANDIDATES
from creditops.serving.ui.session import CSRF_FIELD, CSRF_HEADER, read_session, save_session

__all__ = ["environment", "render"]


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and not math.isfinite(value))


def percent(value: Any, digits: int = 1) -> str:
    return "–" if _missing(value) else f"{float(value) * 100:.{digits}f}%"


def number(value: Any, digits: int = 3) -> str:
    if _missing(value):
        return "–"
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and digits == 0):
        return f"{int(value):,}"
    return f"{float(value):,.{digits}f}"


def thousands(value: Any) -> str:
    return "–" if _missing(value) else f"{round(float(value)):,}"


def when(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.strftime("%Y-%m-%d %H:%M UTC")


def money(value: Any) -> str:
    if _missing(value):
        return "–"
    sign = "−" if float(value) < 0 else ""
    return f"{sign}{abs(float(value)):,.0f}"


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(files("creditops.serving.ui") / "templates")),
        autoescape=select_autoescape(["html", "j2"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(percent=percent, number=number, thousands=thousands, when=when, money=money)
    env.globals.update(
        version=__version__,
        csrf_field=CSRF_FIELD,
        csrf_header=CSRF_HEADER,
        # the training form's choice of candidates: the zoo, in its order
        candidates=[(c.name, c.label) for c in CANDIDATES.values()],
    )
    return env


environment = _environment()


def render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    block: str | None = None,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    """The page ``template`` (or only its ``block``) with the session and request in context."""
    session = read_session(request)
    values = {"request": request, "session": session, "csrf": session.csrf, **(context or {})}
    page = environment.get_template(template)
    if block is not None:
        body = "".join(page.blocks[block](page.new_context(values)))
    else:
        body = page.render(values)
    response = HTMLResponse(body, status_code=status_code, headers=headers)
    save_session(request, response)
    return response
