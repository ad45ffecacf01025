"""Signed checkpoints of the decision log's chains: what makes a truncated or recomputed chain
detectable.

A chain's hashes are plain SHA-256 (:mod:`creditops.store.chain`): anyone who can write to the
database could delete a chain's last rows, or rewrite rows and recompute every hash after them.
A checkpoint fixes chains' heads ``{chain: (seq, hash)}`` under an HMAC-SHA256 whose key is
kept outside the database (``CREDITOPS_AUDIT_KEY`` or ``CREDITOPS_AUDIT_KEY_FILE``), so rows
signed once cannot disappear or change without ``creditops audit verify`` saying so.

Checkpoints are numbered and each signs the MAC of the one before, so one deleted from the
middle breaks the sequence; the newest ones can only be missed against a copy kept elsewhere
(``creditops audit checkpoints --export FILE``, then ``audit verify --checkpoints FILE``).

Who writes them: each writer, in the transaction of its first rows (announcing its chain) and
then every ``CREDITOPS_AUDIT_CHECKPOINT_ROWS`` rows or ``CREDITOPS_AUDIT_CHECKPOINT_SECONDS``
(its own head, from memory, not from the database), and when it closes; ``creditops audit
checkpoint`` (every chain's head, from the database, refused when it does not extend what was
signed before); and a retention purge (every head, and each purged chain's anchor: the last
deleted row, from which verification starts that chain).

The signed text is stored as it was signed (``body``), so verifying re-encodes nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict
from sqlalchemy.engine import Connection

from creditops.exceptions import ChainError, ConfigurationError
from creditops.store.chain import GENESIS
from creditops.store.schema import decision_chains_table, decision_checkpoints_table, predictions

if TYPE_CHECKING:
    from creditops.config import Settings

__all__ = [
    "AuditKey",
    "Checkpoint",
    "CheckpointKind",
    "chain_heads",
    "export_checkpoints",
    "fold_heads",
    "read_checkpoints",
    "read_exported",
    "write_checkpoint",
]

CheckpointKind = Literal["start", "periodic", "close", "manual", "purge"]
#: PostgreSQL advisory-lock key that serialises checkpoint writers ("ckpt"): each checkpoint
#: signs the one before, so two may not be numbered at once.
_CHECKPOINT_LOCK_KEY = 0x636B7074
_MIN_KEY_BYTES = 32
_FORMAT = 1

Head = tuple[int, str]


class AuditKey:
    """The secret that signs checkpoints, and a short public id of it (``key_id``, itself an
    HMAC, so it says which key signed without saying anything about the key)."""

    __slots__ = ("_secret", "key_id")

    def __init__(self, secret: bytes) -> None:
        if len(secret) < _MIN_KEY_BYTES:
            raise ConfigurationError(
                f"the audit key must be at least {_MIN_KEY_BYTES} bytes (e.g. `openssl rand "
                "-hex 32`)"
            )
        self._secret = bytes(secret)
        self.key_id = hmac.new(self._secret, b"creditops-audit-key-id", "sha256").hexdigest()[:16]

    @classmethod
    def from_settings(cls, settings: Settings) -> AuditKey | None:
        """The key from ``CREDITOPS_AUDIT_KEY`` or the file ``CREDITOPS_AUDIT_KEY_FILE``
        names (a mounted secret; surrounding whitespace ignored), or None when neither is set.
        Raises :class:`ConfigurationError` for an unreadable file or a short key (never
        showing the key)."""
        if settings.audit_key is not None:
            return cls(settings.audit_key.get_secret_value().encode("utf-8"))
        if settings.audit_key_file is None:
            return None
        try:
            secret = Path(settings.audit_key_file).read_bytes().strip()
        except OSError as exc:
            raise ConfigurationError(
                f"CREDITOPS_AUDIT_KEY_FILE: cannot read {settings.audit_key_file}: {exc.strerror}"
            ) from exc
        return cls(secret)

    def sign(self, body: str) -> str:
        return hmac.new(self._secret, body.encode("utf-8"), hashlib.sha256).hexdigest()

    def signed(self, body: str, mac: str) -> bool:
        """Whether ``mac`` is this key's signature of ``body`` (compared in constant time)."""
        return hmac.compare_digest(self.sign(body), mac)

    def __repr__(self) -> str:
        return f"AuditKey(key_id={self.key_id!r})"


class Checkpoint(BaseModel):
    """One signed checkpoint: the heads it fixes, purge anchors, and the MAC over ``body``."""

    model_config = ConfigDict(frozen=True)

    seq: int
    created_at: datetime
    kind: CheckpointKind
    writer: str | None = None
    #: chain id -> (seq, row_hash) of its last row at the time
    heads: dict[str, Head] = {}
    #: chain id -> (seq, row_hash) of the last row a purge deleted (every purge so far)
    anchors: dict[str, Head] = {}
    prev_mac: str
    key_id: str
    body: str
    mac: str

    @classmethod
    def parse(cls, seq: int, body: str, mac: str) -> Checkpoint:
        """A checkpoint from its signed text; raises :class:`ChainError` when the text is not a
        checkpoint or its number is not ``seq`` (someone edited one of the two)."""
        try:
            data = json.loads(body)
            checkpoint = cls(
                seq=data["seq"],
                created_at=datetime.fromisoformat(data["created_at"]),
                kind=data["kind"],
                writer=data.get("writer"),
                heads={k: (int(v[0]), str(v[1])) for k, v in data["heads"].items()},
                anchors={k: (int(v[0]), str(v[1])) for k, v in data["anchors"].items()},
                prev_mac=data["prev_mac"],
                key_id=data["key_id"],
                body=body,
                mac=mac,
            )
        except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
            raise ChainError(f"checkpoint {seq} is not a creditops checkpoint: {exc}") from exc
        if checkpoint.seq != seq:
            raise ChainError(f"checkpoint {seq} says it is number {checkpoint.seq}")
        return checkpoint

    def to_line(self) -> dict[str, Any]:
        """What an export keeps: the signed text and its MAC (the rest is read from them)."""
        return {"seq": self.seq, "body": self.body, "mac": self.mac}


def _body(
    seq: int,
    created_at: datetime,
    kind: CheckpointKind,
    writer: str | None,
    heads: Mapping[str, Head],
    anchors: Mapping[str, Head],
    prev_mac: str,
    key_id: str,
) -> str:
    data = {
        "v": _FORMAT,
        "seq": seq,
        "created_at": created_at.astimezone(UTC).isoformat(timespec="microseconds"),
        "kind": kind,
        "writer": writer,
        "heads": {chain: [int(s), h] for chain, (s, h) in sorted(heads.items())},
        "anchors": {chain: [int(s), h] for chain, (s, h) in sorted(anchors.items())},
        "prev_mac": prev_mac,
        "key_id": key_id,
    }
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def write_checkpoint(
    conn: Connection,
    key: AuditKey,
    kind: CheckpointKind,
    heads: Mapping[str, Head],
    *,
    anchors: Mapping[str, Head] | None = None,
    writer: str | None = None,
) -> Checkpoint:
    """Sign ``heads`` (and a purge's ``anchors``) as the next checkpoint, within ``conn``'s
    write transaction: numbered after the newest one and signing its MAC. On PostgreSQL an
    advisory transaction lock keeps two writers from taking the same number (the service's
    role may insert here, never update)."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_CHECKPOINT_LOCK_KEY)))
    table = decision_checkpoints_table
    last = conn.execute(
        sa.select(table.c.seq, table.c.mac).order_by(table.c.seq.desc()).limit(1)
    ).first()
    seq = 1 if last is None else int(last.seq) + 1
    prev_mac = GENESIS if last is None else str(last.mac)
    now = datetime.now(UTC)
    body = _body(seq, now, kind, writer, heads, anchors or {}, prev_mac, key.key_id)
    mac = key.sign(body)
    conn.execute(
        table.insert(),
        [
            {
                "seq": seq,
                "created_at": now,
                "kind": kind,
                "key_id": key.key_id,
                "body": body,
                "mac": mac,
            }
        ],
    )
    return Checkpoint.parse(seq, body, mac)


def read_checkpoints(conn: Connection) -> list[tuple[int, str, str, str, str]]:
    """Every stored checkpoint as ``(seq, kind, key_id, body, mac)``, in order."""
    table = decision_checkpoints_table
    stmt = sa.select(table.c.seq, table.c.kind, table.c.key_id, table.c.body, table.c.mac)
    return [
        (int(seq), kind, key_id, body, mac)
        for seq, kind, key_id, body, mac in conn.execute(stmt.order_by(table.c.seq))
    ]


def fold_heads(checkpoints: Iterable[Checkpoint]) -> dict[str, Head]:
    """Each chain's newest signed head over ``checkpoints`` (in order)."""
    heads: dict[str, Head] = {}
    for checkpoint in checkpoints:
        for chain, head in checkpoint.heads.items():
            if chain not in heads or head[0] >= heads[chain][0]:
                heads[chain] = head
    return heads


def chain_heads(conn: Connection) -> dict[str, Head]:
    """Every registered chain's last row ``(seq, row_hash)`` in the database, one index probe
    per chain (a chain whose rows were all purged has none)."""
    chains = decision_chains_table
    inner = predictions.alias("newest")
    last = (
        sa.select(inner.c.seq)
        .where(inner.c.chain == chains.c.id)
        .order_by(inner.c.seq.desc())
        .limit(1)
        .correlate(chains)
        .scalar_subquery()
    )
    stmt = sa.select(chains.c.id, predictions.c.seq, predictions.c.row_hash).select_from(
        chains.join(
            predictions, sa.and_(predictions.c.chain == chains.c.id, predictions.c.seq == last)
        )
    )
    return {chain: (int(seq), row_hash) for chain, seq, row_hash in conn.execute(stmt)}


def check_extends(conn: Connection, heads: Mapping[str, Head], signed: Mapping[str, Head]) -> None:
    """Refuse (:class:`ChainError`) to sign ``heads`` read from the database where a chain no
    longer reaches, or no longer holds, the head signed before: signing it would hide that."""
    for chain, (seq, row_hash) in sorted(signed.items()):
        now = heads.get(chain)
        if now is None or now[0] < seq:
            raise ChainError(
                f"chain {chain} ends at seq {now[0] if now else 0}, but seq {seq} was signed: "
                "rows were deleted (run `creditops audit verify`); nothing signed"
            )
        stored = conn.execute(
            sa.select(predictions.c.row_hash).where(
                predictions.c.chain == chain, predictions.c.seq == seq
            )
        ).scalar_one_or_none()
        if stored != row_hash:
            raise ChainError(
                f"chain {chain} seq {seq} is not the row that was signed (run `creditops audit "
                "verify`); nothing signed"
            )


def export_checkpoints(checkpoints: Iterable[Checkpoint], path: Path | str) -> int:
    """Write checkpoints as JSON lines (their signed text and MAC) to ``path``, complete or
    not at all (written beside it, then renamed); returns how many."""
    path = Path(path)
    count = 0
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent or ".")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            for checkpoint in checkpoints:
                handle.write(json.dumps(checkpoint.to_line(), sort_keys=True) + "\n")
                count += 1
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return count


def read_exported(path: Path | str) -> list[Checkpoint]:
    """Checkpoints exported by :func:`export_checkpoints`; raises :class:`ChainError` naming
    the line that is not one."""
    found: list[Checkpoint] = []
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ChainError(f"cannot read {path}: {exc.strerror}") from exc
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            found.append(Checkpoint.parse(int(item["seq"]), item["body"], item["mac"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise ChainError(f"{path}, line {number}: not an exported checkpoint") from exc
    return found
