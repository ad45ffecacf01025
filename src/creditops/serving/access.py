"""Who may do what: the keys the service accepts, the roles each holds, and the name each acts
under in the decision log and the audit trail.

Roles (:data:`creditops.store.keys.ROLES`): ``decide`` (predict, batch, explain a decision it
made, feedback), ``analyst`` (read models, evaluations, monitoring, the audit, the dashboard),
``admin`` (promote, roll back, policy, jobs, keys). Keys come from three places:

- the key store (``creditops keys create``): named keys holding one or more roles, kept as a
  salted hash, with an expiry, revocable;
- ``CREDITOPS_API_KEY``, the bootstrap admin key (or, when it is unset, the one-time key
  ``creditops serve`` generates and prints, stored only as its SHA-256 so the workers of one
  server, separate processes, all accept it): every role, so a fresh install can create the
  lender's own keys;
- ``CREDITOPS_READER_KEYS``: analyst keys configured by environment.

With single sign-on configured (``CREDITOPS_OIDC_JWKS_URL``), a bearer token from the lender's
identity provider is accepted too (:mod:`creditops.serving.oidc`): anything presented that is
not a ``cok_`` key nor an environment key, and has a JWT's form, is verified as a token and
acts as ``oidc:<name claim>``. Without it, a token is just an unknown key.

A stored key is looked up once per :data:`CACHE_SECONDS` per process, so a revoked key stops
working within that time without a database read on every decision. A verified token is
remembered (by its SHA-256) until its ``exp``, at most :data:`TOKEN_CACHE_SECONDS`, so only its
first use pays for the signature check (and perhaps a JWKS fetch: :meth:`Authenticator.may_block`
tells an async route to resolve it in a thread). Every comparison of a secret takes constant
time.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import threading
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from creditops.config import Settings
from creditops.serving.oidc import NAME_PREFIX, TokenVerifier, looks_like_jwt
from creditops.store.keys import ROLES, KeyStore

__all__ = [
    "CACHE_SECONDS",
    "TOKEN_CACHE_SECONDS",
    "Authenticator",
    "Principal",
    "Role",
    "admin_key_configured",
    "issue_startup_admin_key",
]

#: How long a process trusts what it read about a stored key (its roles, revocation, expiry).
CACHE_SECONDS = 5.0
#: The longest a process trusts a token it verified (less when the token expires sooner): the
#: JWKS is fetched again after as long, so a key the provider withdraws stops working too.
TOKEN_CACHE_SECONDS = 300.0
_CACHE_ENTRIES = 10_000


class Role(StrEnum):
    decide = "decide"
    analyst = "analyst"
    admin = "admin"


ALL_ROLES = frozenset(Role(r) for r in ROLES)


@dataclass(frozen=True)
class Principal:
    """Who presented a key or a token: its name (what the log records, never the secret), its
    roles (a token may hold none), how a dashboard session refers to it again (``ref``), and
    for a token when it expires (seconds since the epoch), which ends a session it opened."""

    name: str
    roles: frozenset[Role]
    ref: str
    expires_at: float | None = None

    def has(self, role: Role | str) -> bool:
        return Role(role) in self.roles

    @property
    def kind(self) -> str:
        """``token`` or ``key``, for messages."""
        return "token" if self.name.startswith(NAME_PREFIX) else "key"

    @property
    def role(self) -> Role:
        """The highest role, for display."""
        for role in (Role.admin, Role.analyst, Role.decide):
            if role in self.roles:
                return role
        raise ValueError("a principal holds at least one role")


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _startup_key_file(settings: Settings) -> Path:
    return settings.home / "secrets" / "admin-key.sha256"


def issue_startup_admin_key(settings: Settings) -> str:
    """A new random admin key for this start of the server; only its hash is written (0600),
    replacing the previous one, so an old printed key stops working."""
    key = secrets.token_urlsafe(24)
    path = _startup_key_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    partial = path.with_suffix(".tmp")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(_digest(key) + "\n")
    partial.replace(path)
    return key


def _startup_digest(settings: Settings) -> str | None:
    if settings.api_key is not None:
        return None  # a configured key replaces the generated one
    try:
        return _startup_key_file(settings).read_text().strip() or None
    except OSError:
        return None


def admin_key_configured(settings: Settings) -> bool:
    """Whether a bootstrap admin key can be presented (configured or generated at start)."""
    return settings.api_key is not None or _startup_digest(settings) is not None


def _token_ref(name: str, roles: frozenset[Role], expires_at: float) -> str:
    # A session cannot re-verify a token it never keeps, so its ref carries what the token
    # said (the cookie is signed) and ends at the token's exp (rounded down).
    held = ",".join(sorted(r.value for r in roles))
    return f"oidc:{int(expires_at)}:{held}:{name}"


class Authenticator:
    """Resolves a presented key or token, or a dashboard session's reference, to a
    :class:`Principal`; one per app (thread-safe)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._keys: KeyStore | None = None
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, Principal | None]] = {}
        self._tokens = TokenVerifier(settings) if settings.oidc_jwks_url else None
        self._verified: dict[str, tuple[float, Principal]] = {}
        self._startup: tuple[float, str | None] | None = None  # (read at, digest)

    def _store(self) -> KeyStore:
        with self._lock:
            if self._keys is None:
                # a short timeout: a lookup runs on the request's path
                self._keys = KeyStore.from_settings(self._settings, timeout_s=5.0)
            return self._keys

    def _environment(self, digest: str) -> Principal | None:
        """The bootstrap admin key or a reader key whose SHA-256 is ``digest``."""
        settings = self._settings
        given = digest.encode()
        admins = []
        if settings.api_key is not None:
            admins.append(("CREDITOPS_API_KEY", _digest(settings.api_key)))
        startup = self._startup_admin_digest()
        if startup is not None:
            admins.append(("one-time admin key", startup))
        found = None
        for name, admin in admins:
            if secrets.compare_digest(given, admin.encode()):
                found = Principal(name, ALL_ROLES, f"sha256:{digest}")
        for number, reader in enumerate(settings.reader_key_list, start=1):
            if secrets.compare_digest(given, _digest(reader).encode()):
                found = found or Principal(
                    f"CREDITOPS_READER_KEYS #{number}",
                    frozenset({Role.analyst}),
                    f"sha256:{digest}",
                )
        return found

    def _startup_admin_digest(self) -> str | None:
        """The one-time admin key's hash, read from its file at most once per
        :data:`CACHE_SECONDS` (it changes only when a server starts, with new workers)."""
        now = time.monotonic()
        held = self._startup
        if held is None or now - held[0] >= CACHE_SECONDS:
            held = self._startup = (now, _startup_digest(self._settings))
        return held[1]

    def _cached(self, key: str, look_up: object) -> Principal | None:
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None and now - hit[0] < CACHE_SECONDS:
            return hit[1]
        principal = look_up()  # type: ignore[operator]
        with self._lock:
            if len(self._cache) >= _CACHE_ENTRIES:
                self._cache.clear()
            self._cache[key] = (now, principal)
        return principal

    def from_key(self, key: str | None) -> Principal | None:
        """The principal ``key`` stands for, or None (missing, unknown, revoked, expired).

        With single sign-on configured, a presented JWT that no key matches is verified as a
        token: :class:`~creditops.exceptions.BearerTokenError` when it is refused,
        :class:`~creditops.exceptions.IdentityProviderError` when it cannot be checked now."""
        if not key:
            return None
        digest = _digest(key)
        if key.startswith("cok_"):  # a stored key's form: looked up first (and cached)
            principal = self._cached(f"key:{digest}", lambda: self._stored(key))
            if principal is not None:
                return principal
            return self._environment(digest)
        token = self._tokens is not None and looks_like_jwt(key)
        remembered = self._remembered(digest) if token else None
        if remembered is not None:  # the hot path for a token: no file read, no signature
            return remembered
        found = self._environment(digest)
        if found is not None or not token or self._tokens is None:
            return found
        return self._verified_token(self._tokens, key, digest)

    def may_block(self, key: str | None) -> bool:
        """Whether :meth:`from_key` may wait on the network for ``key``: a token not verified
        recently (its signing keys may need fetching). Keys and remembered tokens resolve
        without waiting."""
        if self._tokens is None or not key or key.startswith("cok_") or not looks_like_jwt(key):
            return False
        return self._remembered(_digest(key)) is None

    def _remembered(self, digest: str) -> Principal | None:
        hit = self._verified.get(digest)
        if hit is None or time.time() >= hit[0]:
            return None
        return hit[1]

    def _verified_token(self, tokens: TokenVerifier, token: str, digest: str) -> Principal:
        verified = tokens.verify(token)
        roles = frozenset(Role(r) for r in verified.roles)
        ref = _token_ref(verified.name, roles, verified.expires_at)
        principal = Principal(verified.name, roles, ref, expires_at=verified.expires_at)
        until = min(verified.expires_at, time.time() + TOKEN_CACHE_SECONDS)
        with self._lock:
            if len(self._verified) >= _CACHE_ENTRIES:
                self._verified.clear()
            self._verified[digest] = (until, principal)
        return principal

    def _stored(self, key: str) -> Principal | None:
        record = self._store().find(key)
        if record is None or not record.active():
            return None
        return Principal(record.name, frozenset(Role(r) for r in record.roles), f"key:{record.id}")

    def from_ref(self, ref: str | None) -> Principal | None:
        """The principal a dashboard session refers to (``Principal.ref``), if its key still
        holds a role: a revoked or expired key, or a changed environment key, ends it."""
        if not ref:
            return None
        kind, _, value = ref.partition(":")
        if kind == "sha256":
            return self._environment(value)
        if kind == "oidc":
            return self._token_session(ref, value)
        if kind != "key":
            return None

        def look_up() -> Principal | None:
            record = self._store().get(value)
            if record is None or not record.active():
                return None
            return Principal(record.name, frozenset(Role(r) for r in record.roles), ref)

        return self._cached(f"ref:{value}", look_up)

    def _token_session(self, ref: str, value: str) -> Principal | None:
        """A session opened with a token: until the token's exp, while tokens are accepted."""
        if self._tokens is None:
            return None
        expires, roles, name = [*value.split(":", 2), "", ""][:3]
        if not expires.isdigit() or time.time() >= int(expires) or not name:
            return None
        try:
            held = frozenset(Role(r) for r in roles.split(",") if r)
        except ValueError:
            return None
        return Principal(name, held, ref, expires_at=float(expires))

    def close(self) -> None:
        with self._lock:
            if self._keys is not None:
                self._keys.close()
                self._keys = None
