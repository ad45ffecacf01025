"""Who may do what: the keys the service accepts and the role each grants.

Two roles until finer ones arrive: ``admin`` (``CREDITOPS_API_KEY``, or the one-time key
``creditops serve`` generates when none is configured) may change the champion and the policy;
``reader`` (``CREDITOPS_READER_KEYS``) may look. The generated key is printed once and stored
only as its SHA-256, so the workers of one server (separate processes) all accept it and a copy
of ``CREDITOPS_HOME`` does not reveal it.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from enum import StrEnum
from pathlib import Path

from creditops.config import Settings

__all__ = [
    "Role",
    "admin_key_configured",
    "issue_startup_admin_key",
    "role_of",
    "role_of_digest",
]


class Role(StrEnum):
    reader = "reader"
    admin = "admin"


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
    """Whether any admin key can be presented (configured or generated at start)."""
    return settings.api_key is not None or _startup_digest(settings) is not None


def role_of(settings: Settings, key: str | None) -> Role | None:
    """The role ``key`` grants, or None."""
    return role_of_digest(settings, _digest(key)) if key else None


def role_of_digest(settings: Settings, digest: str) -> Role | None:
    """The role of the key whose SHA-256 is ``digest`` (a dashboard session keeps only that);
    every comparison takes constant time."""
    given = digest.encode()
    admins = [_digest(settings.api_key)] if settings.api_key is not None else []
    startup = _startup_digest(settings)
    if startup is not None:
        admins.append(startup)
    if any(secrets.compare_digest(given, admin.encode()) for admin in admins):
        return Role.admin
    readers = [_digest(key) for key in settings.reader_key_list]
    if any(secrets.compare_digest(given, reader.encode()) for reader in readers):
        return Role.reader
    return None
