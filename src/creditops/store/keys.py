"""API keys (table ``api_keys``): each created with a name and the roles it holds, shown once,
and kept only as a salted SHA-256 of its secret part.

A key reads ``cok_<id>_<secret>``: the id (public, 16 hex digits) finds the key's row, the
secret (32 random bytes, URL-safe) is checked against the row's salted digest in constant time.
A high-entropy random secret needs no slow password hash: a salted SHA-256 cannot be reversed
and costs a microsecond per request. A key can carry an expiry and be revoked; neither deletes
its row, so the decision log's record of who acted keeps its meaning.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import UTC, datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from pydantic import AwareDatetime, BaseModel
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from creditops.config import ROLE_NAMES, RoleName, Settings
from creditops.exceptions import KeyStoreError
from creditops.store.schema import RecordStore, api_keys_table

__all__ = ["ROLES", "ApiKey", "CreatedKey", "KeyStore", "Role", "parse_roles"]

_T = TypeVar("_T")

Role = RoleName
#: decide: predict, batch, explain its own decisions, feedback; analyst: read models,
#: evaluations, monitoring, the audit and the dashboard; admin: promote, roll back, policy,
#: jobs, keys.
ROLES: tuple[Role, ...] = ROLE_NAMES
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_KEY = re.compile(r"^cok_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")


class ApiKey(BaseModel):
    """One key as stored (never its secret)."""

    id: str
    name: str
    roles: list[Role]
    created_at: AwareDatetime
    created_by: str
    expires_at: AwareDatetime | None = None
    revoked_at: AwareDatetime | None = None
    revoked_by: str | None = None

    def active(self, now: datetime | None = None) -> bool:
        now = now or datetime.now(UTC)
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)

    @property
    def state(self) -> str:
        if self.revoked_at is not None:
            return "revoked"
        return "active" if self.active() else "expired"


class CreatedKey(BaseModel):
    """A new key: its record, and the key itself, shown this once."""

    record: ApiKey
    key: str


def parse_roles(roles: list[str] | tuple[str, ...] | str) -> list[Role]:
    """Roles given on the command line or in a form (several, or comma-separated), checked and
    in their canonical order."""
    given = [roles] if isinstance(roles, str) else list(roles)
    names = {part.strip() for item in given for part in item.split(",") if part.strip()}
    unknown = sorted(names - set(ROLES))
    if unknown:
        raise KeyStoreError(f"unknown role(s) {', '.join(unknown)}: use {', '.join(ROLES)}")
    if not names:
        raise KeyStoreError(f"a key needs at least one role: {', '.join(ROLES)}")
    return [role for role in ROLES if role in names]


def _digest(salt: str, secret: str) -> str:
    return hashlib.sha256(bytes.fromhex(salt) + secret.encode()).hexdigest()


def _record(row: Any) -> ApiKey:
    return ApiKey.model_validate(
        {k: row[k] for k in ApiKey.model_fields if k in row} | {"roles": list(row["roles"])}
    )


class KeyStore(RecordStore):
    """The API keys of one creditops database."""

    store = "key store"
    holds = "API key"
    error = KeyStoreError

    @classmethod
    def from_settings(cls, settings: Settings, *, timeout_s: float = 30.0) -> KeyStore:
        settings.ensure_home()  # a fresh home: the SQLite file needs its directory
        return cls(settings.resolved_database_url, timeout_s=timeout_s)

    def create(
        self,
        name: str,
        roles: list[str] | tuple[str, ...] | str,
        *,
        created_by: str,
        expires_at: datetime | None = None,
    ) -> CreatedKey:
        """A new key named ``name`` (unique: letters, digits, ``.``, ``_``, ``-``) holding
        ``roles``; refused when the name is taken or the expiry has passed."""
        if not _NAME.match(name):
            raise KeyStoreError(
                f"key name {name!r}: use 1 to 64 letters, digits, '.', '_' or '-', starting "
                "with a letter or digit"
            )
        checked = parse_roles(roles)
        now = datetime.now(UTC)
        if expires_at is not None:
            if expires_at.tzinfo is None:
                raise KeyStoreError("expires_at: give a time zone (UTC)")
            if expires_at <= now:
                raise KeyStoreError(f"expires_at {expires_at.isoformat()} has already passed")
        key_id = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        salt = secrets.token_hex(16)
        row = {
            "id": key_id,
            "name": name,
            "salt": salt,
            "digest": _digest(salt, secret),
            "roles": checked,
            "created_at": now,
            "created_by": created_by,
            "expires_at": expires_at,
        }

        def work(conn: Connection) -> None:
            taken = conn.execute(
                sa.select(api_keys_table.c.id).where(api_keys_table.c.name == name)
            ).first()
            if taken is not None:
                raise KeyStoreError(
                    f"a key named {name!r} exists already (a revoked key keeps its name, so "
                    "the log's record of who acted stays unambiguous)"
                )
            conn.execute(api_keys_table.insert().values(**row))

        try:
            self._run(work, write=True)
        except KeyStoreError as error:
            if isinstance(error.__cause__, IntegrityError):  # the same name, at the same time
                raise KeyStoreError(f"a key named {name!r} exists already") from None
            raise
        return CreatedKey(record=_record(row), key=f"cok_{key_id}_{secret}")

    def list(self) -> list[ApiKey]:
        """Every key, newest first."""

        def work(conn: Connection) -> list[ApiKey]:
            stmt = sa.select(api_keys_table).order_by(api_keys_table.c.created_at.desc())
            return [_record(row) for row in conn.execute(stmt).mappings()]

        return self._run(work, write=False)

    def revoke(self, name: str, *, revoked_by: str) -> ApiKey:
        """Revoke the key named ``name`` at once (its row stays); refused for an unknown name
        or a key already revoked."""

        def work(conn: Connection) -> ApiKey:
            row = (
                conn.execute(sa.select(api_keys_table).where(api_keys_table.c.name == name))
                .mappings()
                .first()
            )
            if row is None:
                raise KeyStoreError(f"no key named {name!r}")
            if row["revoked_at"] is not None:
                raise KeyStoreError(f"key {name!r} was revoked already")
            now = datetime.now(UTC)
            conn.execute(
                api_keys_table.update()
                .where(api_keys_table.c.id == row["id"])
                .values(revoked_at=now, revoked_by=revoked_by)
            )
            return _record({**row, "revoked_at": now, "revoked_by": revoked_by})

        return self._run(work, write=True)

    def find(self, presented: str) -> ApiKey | None:
        """The key ``presented`` is, whatever its state (the caller checks ``active``), or
        None: malformed, unknown, or a wrong secret (compared in constant time)."""
        match = _KEY.match(presented)
        if match is None:
            return None
        key_id, secret = match.groups()

        def work(conn: Connection) -> Any:
            stmt = sa.select(api_keys_table).where(api_keys_table.c.id == key_id)
            return conn.execute(stmt).mappings().first()

        row = self._run(work, write=False)
        if row is None:
            secrets.compare_digest(secret, secret)  # the same work for an unknown id
            return None
        if not secrets.compare_digest(_digest(row["salt"], secret), row["digest"]):
            return None
        return _record(row)

    def get(self, key_id: str) -> ApiKey | None:
        """The key with this id (a dashboard session remembers the id of the key it logged in
        with, never the key)."""

        def work(conn: Connection) -> Any:
            stmt = sa.select(api_keys_table).where(api_keys_table.c.id == key_id)
            return conn.execute(stmt).mappings().first()

        row = self._run(work, write=False)
        return None if row is None else _record(row)
