"""Log in with a key, or with a bearer token from the identity provider when single sign-on
is configured (pasted: a browser sign-in redirect is out of scope), and log out. A session a
token opened ends at the token's expiry."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from creditops.exceptions import BearerTokenError, IdentityProviderError
from creditops.serving.access import Authenticator, Principal, Role
from creditops.serving.ui.deps import CsrfChecked
from creditops.serving.ui.session import read_session, save_session
from creditops.serving.ui.templating import render

router = APIRouter(prefix="/ui")

#: Failed login attempts a client may make per window, and the window, in seconds.
ATTEMPTS, WINDOW_S = 10, 60.0


class LoginLimiter:
    """Failed login attempts per client address in a sliding window, in this process: past the
    limit a login is refused with 429 and Retry-After before any key is checked, so keys cannot
    be guessed at speed, while a person who logs in often is never held up. (Each worker counts
    its own; a load balancer spreading one client over N workers gives it N times the limit.)"""

    def __init__(self, attempts: int = ATTEMPTS, window_s: float = WINDOW_S) -> None:
        self._attempts, self._window = attempts, window_s
        self._failed: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, client: str, now: float) -> deque[float]:
        failed = self._failed.setdefault(client, deque())
        while failed and now - failed[0] >= self._window:
            failed.popleft()
        return failed

    def retry_after(self, client: str) -> int | None:
        """Seconds ``client`` must wait before its next attempt, or None."""
        now = time.monotonic()
        with self._lock:
            failed = self._recent(client, now)
            if len(failed) >= self._attempts:
                return max(1, math.ceil(self._window - (now - failed[0])))
            return None

    def failed(self, client: str) -> None:
        now = time.monotonic()
        with self._lock:
            if len(self._failed) > 100_000:  # forget quiet clients rather than grow
                self._failed = {
                    k: v for k, v in self._failed.items() if v and now - v[-1] < self._window
                }
            self._recent(client, now).append(now)


def _safe_next(target: str | None) -> str:
    # Only a path of this dashboard: never another site ("//evil", "https://...").
    if target and target.startswith("/ui") and not target.startswith("//"):
        return target
    return "/ui"


def _context(request: Request, next: str | None, error: str | None) -> dict[str, object]:
    tokens = request.app.state.settings.oidc_jwks_url is not None
    return {"next": _safe_next(next), "error": error, "tokens": tokens}


@router.get("/login")
def login_page(request: Request, next: str | None = None) -> Response:
    return render(request, "login.html", _context(request, next, None))


@router.post("/login", dependencies=[CsrfChecked])
def log_in(
    request: Request,
    key: Annotated[str, Form(max_length=16_384)] = "",  # an identity provider's token is long
    next: Annotated[str, Form(max_length=2048)] = "/ui",
) -> Response:
    limiter: LoginLimiter = request.app.state.login_limiter
    client = request.client.host if request.client is not None else "unknown"
    wait = limiter.retry_after(client)
    if wait is not None:
        context = _context(request, next, f"Too many attempts: wait {wait} s.")
        response = render(request, "login.html", context, status_code=429)
        response.headers["Retry-After"] = str(wait)
        return response
    auth: Authenticator = request.app.state.auth
    principal: Principal | None = None
    try:
        principal = auth.from_key(key.strip())
    except BearerTokenError as error:
        limiter.failed(client)
        message = str(error).replace("the token is", "That token is", 1) + "."
        return render(request, "login.html", _context(request, next, message), status_code=401)
    except IdentityProviderError:
        message = "Tokens cannot be checked right now (the identity provider is out of reach)."
        return render(request, "login.html", _context(request, next, message), status_code=503)
    if principal is None:
        limiter.failed(client)
        error = "That key is not valid here." if key.strip() else "Enter your key."
        return render(request, "login.html", _context(request, next, error), status_code=401)
    if not principal.has(Role.analyst):
        held = ", ".join(sorted(r.value for r in principal.roles)) or "no creditops role"
        error = f"This {principal.kind} cannot open the dashboard: it holds {held}, not analyst."
        return render(request, "login.html", _context(request, next, error), status_code=403)
    read_session(request).log_in(principal)
    response = RedirectResponse(_safe_next(next), status_code=303)
    save_session(request, response)
    return response


@router.post("/logout", dependencies=[CsrfChecked])
def log_out(request: Request) -> Response:
    read_session(request).log_out()
    response = RedirectResponse("/ui/login", status_code=303)
    save_session(request, response)
    return response
