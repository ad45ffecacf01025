"""The dashboard's session: a signed cookie that says who logged in, and the CSRF token every
form and htmx request must echo.

The cookie holds a reference to the key that logged in (a stored key's id, or an environment
key's SHA-256; never the key) or, for a bearer token from the identity provider, what the
token said (its principal's name, its roles, its expiry; never the token), signed with
``CREDITOPS_SESSION_SECRET`` or a random secret kept in ``CREDITOPS_HOME`` (so every worker of
one server accepts it). The key's roles are re-checked on every request (a stored key's within
a few seconds), so a revoked or expired key, a key removed from the configuration, or a
one-time key replaced by a restart, ends its sessions; a token's session ends at the token's
expiry, or when single sign-on is switched off. A visitor who has not logged in gets an
anonymous session too: the login form needs its CSRF token.
"""

from __future__ import annotations

import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import Request, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer

from creditops.config import Settings
from creditops.serving.access import Authenticator, Principal, Role

__all__ = ["COOKIE", "CSRF_FIELD", "CSRF_HEADER", "Session", "read_session", "save_session"]

COOKIE = "creditops_session"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
_SALT = "creditops.ui.session"


@dataclass
class Session:
    """Who is looking (principal None: nobody logged in) and this session's CSRF token."""

    principal: Principal | None = None
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    changed: bool = True  # a cookie must be (re)written with the response

    @property
    def role(self) -> Role | None:
        """The highest role held, for display; None for nobody."""
        return None if self.principal is None else self.principal.role

    @property
    def is_admin(self) -> bool:
        return self.principal is not None and self.principal.has(Role.admin)

    @property
    def actor(self) -> str:
        """Who acts, as jobs, acknowledgements and the audit record it: the key's name."""
        name = self.principal.name if self.principal is not None else "anonymous"
        return f"dashboard ({name})"

    def log_in(self, principal: Principal) -> None:
        self.principal = principal
        self.csrf = secrets.token_urlsafe(32)  # a new token after login: no fixation
        self.changed = True

    def log_out(self) -> None:
        self.principal = None
        self.csrf = secrets.token_urlsafe(32)
        self.changed = True

    def csrf_matches(self, given: str | None) -> bool:
        return bool(given) and secrets.compare_digest(given.encode(), self.csrf.encode())


def _secret(settings: Settings) -> str:
    if settings.session_secret is not None:
        return settings.session_secret
    path = settings.home / "secrets" / "session-secret"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:  # O_EXCL: workers starting together agree on the first one written
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _wait_for(path)
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


def _wait_for(path: Path) -> str:
    for _ in range(100):
        text = path.read_text().strip()
        if text:
            return text
        os.sched_yield()
    raise RuntimeError(f"{path} is empty")


def _serializer(request: Request) -> URLSafeTimedSerializer:
    state = request.app.state
    serializer = getattr(state, "session_serializer", None)
    if serializer is None:
        serializer = URLSafeTimedSerializer(_secret(state.settings), salt=_SALT)
        state.session_serializer = serializer
    return serializer


def read_session(request: Request) -> Session:
    """The request's session (read once per request), anonymous when the cookie is missing,
    forged, expired or names a key that no longer grants a role."""
    cached = getattr(request.state, "ui_session", None)
    if cached is not None:
        return cached
    settings: Settings = request.app.state.settings
    session = Session()
    raw = request.cookies.get(COOKIE)
    if raw:
        try:
            data = _serializer(request).loads(raw, max_age=int(settings.session_hours * 3600))
        except BadSignature:
            data = None
        if isinstance(data, dict) and isinstance(data.get("c"), str):
            ref = data.get("k")
            auth: Authenticator = request.app.state.auth
            principal = auth.from_ref(ref) if isinstance(ref, str) else None
            if principal is not None and not principal.has(Role.analyst):
                principal = None
            session = Session(principal=principal, csrf=data["c"])
            session.changed = principal is None and ref is not None
    request.state.ui_session = session
    return session


def save_session(request: Request, response: Response) -> None:
    """Write the session cookie when it changed: HttpOnly, SameSite=Strict, Secure over https."""
    session = read_session(request)
    if not session.changed:
        return
    settings: Settings = request.app.state.settings
    ref = session.principal.ref if session.principal is not None else None
    value = _serializer(request).dumps({"k": ref, "c": session.csrf})
    max_age = int(settings.session_hours * 3600)
    expires_at = session.principal.expires_at if session.principal is not None else None
    if expires_at is not None:  # a token's session: the browser forgets it at the token's exp
        max_age = max(0, min(max_age, int(expires_at - time.time())))
    response.set_cookie(
        COOKIE,
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
