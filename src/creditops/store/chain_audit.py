"""Checking the decision log against its chains and signed checkpoints (``creditops audit
verify``), and signing every chain's head on demand (``creditops audit checkpoint``).

Verification reads each chain in order and hashes every row again from its stored text
(:mod:`creditops.store.chain`); the first row that does not fit names what happened to it:

* ``edited``: its values are not those hashed when it was logged;
* ``deleted``: places in its chain are missing before it (or, against a purge, before the cut);
* ``inserted``: it was written past the log (it does not follow its predecessor, comes after
  its chain's closing checkpoint, or sits between two rows that follow each other);
* ``reordered``: it and the next row swapped places;
* ``rewritten``: the chain hashes, but this is not the row a checkpoint signed (the chain was
  recomputed);
* ``truncated``: a chain ends before the head a checkpoint signed;
* ``unchained``: a row with no chain (written past the log);
* ``unsigned``: a chain that no checkpoint signed (written without the audit key, or forged);
* ``checkpoint``: a checkpoint whose signature fails, that is missing, or that differs from an
  exported copy.

After the first break in a chain its later rows are counted but not judged (they no longer
have a trustworthy predecessor); other chains are checked on.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict
from sqlalchemy.engine import Connection

from creditops.exceptions import ChainError
from creditops.store.chain import (
    CHAIN_FORMAT,
    FORMATS,
    GENESIS,
    HASHED_COLUMNS,
    JSON_COLUMNS,
    row_digest,
    stored_fields,
)
from creditops.store.checkpoints import (
    AuditKey,
    Checkpoint,
    chain_heads,
    check_extends,
    fold_heads,
    read_checkpoints,
    read_exported,
    write_checkpoint,
)
from creditops.store.schema import decision_chains_table, predictions

if TYPE_CHECKING:
    from creditops.store.predlog import PredictionLog

__all__ = ["BreakKind", "ChainBreak", "VerifyReport", "sign_chains", "verify_log"]

BreakKind = Literal[
    "edited",
    "deleted",
    "inserted",
    "reordered",
    "rewritten",
    "truncated",
    "unchained",
    "unsigned",
    "checkpoint",
]
_READ_CHUNK = 10_000
Head = tuple[int, str]


class ChainBreak(BaseModel):
    """One place where the log is not what was written."""

    model_config = ConfigDict(frozen=True)

    kind: BreakKind
    chain: str | None = None
    seq: int | None = None
    prediction_id: str | None = None
    detail: str


class VerifyReport(BaseModel):
    """What ``creditops audit verify`` found (``ok``: no break)."""

    model_config = ConfigDict(frozen=True)

    ok: bool
    signed: bool  # checkpoints were checked with the audit key
    since: datetime | None = None
    until: datetime | None = None
    chains: int
    rows: int
    checkpoints: int
    latest_checkpoint: int | None = None
    latest_checkpoint_at: datetime | None = None
    unsigned_rows: int  # rows after their chain's newest signed head
    breaks: list[ChainBreak]
    warnings: list[str]

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


# ---------------------------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------------------------


class _Signed:
    """The checkpoints that passed, and what they say about the chains."""

    def __init__(self) -> None:
        self.good: list[Checkpoint] = []
        self.claims: dict[str, dict[int, tuple[str, int]]] = {}  # chain -> seq -> (hash, ckpt)
        self.closed: dict[str, int] = {}  # chain -> seq of its closing checkpoint
        self.anchors: dict[str, Head] = {}  # chain -> last purged row, newest purge
        self.anchor_seq = 0

    def add(self, checkpoint: Checkpoint, breaks: list[ChainBreak]) -> None:
        self.good.append(checkpoint)
        for chain, (seq, row_hash) in checkpoint.heads.items():
            seen = self.claims.setdefault(chain, {}).get(seq)
            if seen is not None and seen[0] != row_hash:
                breaks.append(
                    ChainBreak(
                        kind="checkpoint",
                        chain=chain,
                        seq=seq,
                        detail=f"checkpoints {seen[1]} and {checkpoint.seq} sign different "
                        "rows at this place",
                    )
                )
            self.claims[chain][seq] = (row_hash, checkpoint.seq)
        if checkpoint.kind == "close":
            for chain, (seq, _) in checkpoint.heads.items():
                self.closed[chain] = max(seq, self.closed.get(chain, 0))
        if checkpoint.kind == "purge" and checkpoint.seq >= self.anchor_seq:
            self.anchors, self.anchor_seq = dict(checkpoint.anchors), checkpoint.seq


def _check_stored(
    stored: Sequence[tuple[int, str, str, str, str]], key: AuditKey, breaks: list[ChainBreak]
) -> dict[int, Checkpoint]:
    """The stored checkpoints whose signature, number and link to the one before hold."""
    good: dict[int, Checkpoint] = {}
    expected, prev_mac = 1, GENESIS
    for seq, kind, key_id, body, mac in stored:
        try:
            checkpoint = Checkpoint.parse(seq, body, mac)
        except ChainError as exc:
            breaks.append(ChainBreak(kind="checkpoint", seq=seq, detail=str(exc)))
            expected, prev_mac = seq + 1, mac
            continue
        if seq != expected:
            missing = f"{expected}" if seq == expected + 1 else f"{expected}-{seq - 1}"
            breaks.append(
                ChainBreak(
                    kind="checkpoint", seq=seq, detail=f"checkpoint(s) {missing} are missing"
                )
            )
        elif checkpoint.prev_mac != prev_mac:
            breaks.append(
                ChainBreak(
                    kind="checkpoint",
                    seq=seq,
                    detail="it does not sign the checkpoint before it (that one was replaced)",
                )
            )
        if checkpoint.key_id != key.key_id:
            breaks.append(
                ChainBreak(
                    kind="checkpoint",
                    seq=seq,
                    detail=f"signed with another key (key id {checkpoint.key_id}; this key is "
                    f"{key.key_id})",
                )
            )
        elif not key.signed(body, mac):
            breaks.append(
                ChainBreak(
                    kind="checkpoint",
                    seq=seq,
                    detail="its signature does not match its content (forged or edited)",
                )
            )
        elif (kind, key_id) != (checkpoint.kind, checkpoint.key_id):
            breaks.append(
                ChainBreak(
                    kind="checkpoint", seq=seq, detail="its columns differ from what was signed"
                )
            )
        else:
            good[seq] = checkpoint
        expected, prev_mac = seq + 1, mac
    return good


def _check_exported(
    exported: Iterable[Checkpoint],
    stored: dict[int, tuple[int, str, str, str, str]],
    key: AuditKey,
    source: str,
    breaks: list[ChainBreak],
) -> list[Checkpoint]:
    """The exported checkpoints signed by ``key``; each must still be in the database."""
    good = []
    for checkpoint in exported:
        if checkpoint.key_id != key.key_id or not key.signed(checkpoint.body, checkpoint.mac):
            breaks.append(
                ChainBreak(
                    kind="checkpoint",
                    seq=checkpoint.seq,
                    detail=f"the copy in {source} is not signed by this key",
                )
            )
            continue
        good.append(checkpoint)
        row = stored.get(checkpoint.seq)
        if row is None:
            breaks.append(
                ChainBreak(
                    kind="checkpoint",
                    seq=checkpoint.seq,
                    detail=f"in {source} but deleted from the database",
                )
            )
        elif row[4] != checkpoint.mac:
            breaks.append(
                ChainBreak(
                    kind="checkpoint",
                    seq=checkpoint.seq,
                    detail=f"the database's differs from the copy in {source} (replaced)",
                )
            )
    return good


def _unsigned_anchors(stored: Sequence[tuple[int, str, str, str, str]]) -> dict[str, Head]:
    """Without the key: the newest purge's anchors as stored (so purged chains still start
    at their cut), their signature unchecked."""
    for seq, kind, _, body, mac in reversed(stored):
        if kind == "purge":
            try:
                return dict(Checkpoint.parse(seq, body, mac).anchors)
            except ChainError:
                return {}
    return {}


# ---------------------------------------------------------------------------------------------
# Chains
# ---------------------------------------------------------------------------------------------


def _columns() -> list[Any]:
    """The stored row as hashed: JSON columns as their text, not parsed."""
    plain = [name for name in HASHED_COLUMNS if name not in JSON_COLUMNS]
    columns: list[Any] = [predictions.c[name] for name in (*plain, "prev_hash", "row_hash")]
    columns += [sa.cast(predictions.c[name], sa.Text).label(name) for name in JSON_COLUMNS]
    return columns


class _ChainCheck:
    """One chain, read in seq order, judged a row at a time (with the next row in view)."""

    def __init__(
        self,
        chain: str,
        start: Head | None,
        claims: dict[int, tuple[str, int]],
        closed: int | None,
        fmt: int = CHAIN_FORMAT,
    ) -> None:
        self.chain = chain
        self.fmt = fmt
        # None: a range check trusts the first row's link (what came before is out of range)
        self.expected_seq: int | None = None if start is None else start[0] + 1
        self.expected_prev: str | None = None if start is None else start[1]
        self.claims = claims
        self.closed = closed
        self.rows = 0
        self.last_seq = 0 if start is None else start[0]
        self.broken: ChainBreak | None = None
        self.before: tuple[str, int, str] | None = None  # (id, seq, prev_hash) of the last row

    def _break(self, kind: BreakKind, row: Any, detail: str, *, seq: int | None = None) -> None:
        self.broken = ChainBreak(
            kind=kind,
            chain=self.chain,
            seq=row["seq"] if seq is None else seq,
            prediction_id=row["id"] if seq is None else (self.before or (None,))[0],
            detail=detail,
        )

    def feed(self, row: Any, following: Any | None) -> None:
        self.rows += 1
        seq = int(row["seq"])
        if self.broken is not None:
            self.last_seq = seq
            return
        if self.expected_seq is None:
            self.expected_seq, self.expected_prev = seq, row["prev_hash"]
        expected_seq, expected_prev = self.expected_seq, self.expected_prev
        self.last_seq = seq
        if seq < expected_seq:
            self._break("inserted", row, f"a second row at seq {seq}")
            return
        if seq > expected_seq:
            gap = f"{expected_seq}" if seq == expected_seq + 1 else f"{expected_seq}-{seq - 1}"
            self._break("deleted", row, f"seq {gap} missing before this row (deleted)")
            return
        fmt = self.fmt
        fits = row_digest(row["prev_hash"], stored_fields(row, None, fmt), fmt) == row["row_hash"]
        if fmt == 1 and row["pii"] is not None:  # format 1 predates the column: none may be set
            fits = False
        if not fits or row["prev_hash"] != expected_prev:
            if (
                following is not None
                and int(following["seq"]) == seq + 1
                and following["prev_hash"] == expected_prev
            ):
                self._break("reordered", row, f"it and seq {seq + 1} swapped places")
            elif self.before is not None and row["prev_hash"] == self.before[2]:
                self._break(
                    "inserted",
                    row,
                    f"seq {seq - 1} was put between seq {seq - 2} and the row that followed it",
                    seq=seq - 1,
                )
            elif not fits:
                self._break("edited", row, "its values are not those hashed when it was logged")
            else:
                self._break(
                    "inserted",
                    row,
                    f"it hashes, but does not follow seq {seq - 1}: written past the log",
                )
            return
        claim = self.claims.get(seq)
        if claim is not None and claim[0] != row["row_hash"]:
            self._break(
                "rewritten",
                row,
                f"not the row checkpoint {claim[1]} signed here: the chain was recomputed "
                "(a row at or before this one was changed)",
            )
            return
        if self.closed is not None and seq > self.closed:
            self._break(
                "inserted", row, f"after seq {self.closed}, where its writer closed the chain"
            )
            return
        self.expected_seq, self.expected_prev = seq + 1, row["row_hash"]
        self.before = (row["id"], seq, expected_prev)

    def finish(self, *, whole: bool) -> ChainBreak | None:
        """The chain's break, if any; ``whole``: the chain was read to its end, so a signed
        head beyond its last row means rows were cut off."""
        if self.broken is not None or not whole or not self.claims:
            return self.broken
        signed = max(self.claims)
        if signed > self.last_seq:
            checkpoint = self.claims[signed][1]
            return ChainBreak(
                kind="truncated",
                chain=self.chain,
                seq=self.last_seq + 1,
                detail=f"the chain ends at seq {self.last_seq}, but checkpoint {checkpoint} "
                f"signed seq {signed}: rows {self.last_seq + 1}-{signed} were deleted",
            )
        return None

    def unsigned_rows(self) -> int:
        return max(0, self.last_seq - max(self.claims, default=0)) if self.claims else self.rows


def _with_next(rows: Iterator[Any]) -> Iterator[tuple[Any, Any | None]]:
    """Each row with the one after it (None after the last)."""
    current = next(rows, None)
    while current is not None:
        following = next(rows, None)
        yield current, following
        current = following


def _mappings(chunks: Iterable[list[Any]]) -> Iterator[Any]:
    for chunk in chunks:
        for row in chunk:
            yield row._mapping


def verify_log(
    log: PredictionLog,
    key: AuditKey | None,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    exported: Path | str | None = None,
) -> VerifyReport:
    """Check every chain of ``log`` (or the rows made from ``since`` until ``until``) against
    its hashes and, with ``key``, against the signed checkpoints (and an exported copy of
    them). A range is checked from its first row in each chain: a deletion just before it, a
    truncation and unsigned chains are only found by a whole check."""
    breaks: list[ChainBreak] = []
    warnings: list[str] = []
    stored = log.read(read_checkpoints)
    signed = _Signed()
    if key is None:
        warnings.append(
            "no audit key (CREDITOPS_AUDIT_KEY or CREDITOPS_AUDIT_KEY_FILE): checkpoints were "
            "not checked, so a truncated or recomputed chain cannot be detected"
        )
        signed.anchors = _unsigned_anchors(stored)
        if signed.anchors:
            warnings.append("chains start from the newest purge's anchors, unverified")
    else:
        good = _check_stored(stored, key, breaks)
        if exported is not None:
            by_seq = {row[0]: row for row in stored}
            for checkpoint in _check_exported(
                read_exported(exported), by_seq, key, str(exported), breaks
            ):
                good.setdefault(checkpoint.seq, checkpoint)
        for seq in sorted(good):
            signed.add(good[seq], breaks)
        if not signed.good:
            warnings.append("no signed checkpoint yet: run `creditops audit checkpoint`")
    whole = since is None and until is None

    checks: list[_ChainCheck] = []
    formats = log.read(_formats)
    for chain, rows in _chains(log, since, until):
        start: Head | None = None
        if whole:
            start = signed.anchors.get(chain, (0, GENESIS))
        # A chain with no registration is judged as this version writes (it was forged, or
        # its registration deleted: the signed checkpoints say which).
        fmt = formats.get(chain, CHAIN_FORMAT)
        check = _ChainCheck(
            chain, start, signed.claims.get(chain, {}), signed.closed.get(chain), fmt
        )
        if fmt not in FORMATS:
            check.broken = ChainBreak(
                kind="edited",
                chain=chain,
                seq=1,
                detail=f"its registration names chain format {fmt}, which this version of "
                f"creditops does not know (it knows {', '.join(map(str, sorted(FORMATS)))})",
            )
        for row, following in _with_next(rows):
            if following is not None and following["chain"] != chain:
                following = None
            check.feed(row, following)
        checks.append(check)
    for check in checks:
        found = check.finish(whole=whole)
        if found is not None:
            breaks.append(found)
        elif whole and signed.good and not check.claims:
            breaks.append(
                ChainBreak(
                    kind="unsigned",
                    chain=check.chain,
                    seq=1,
                    detail=f"{check.rows} row(s) in a chain no checkpoint signed: written "
                    "without the audit key, or forged (`creditops audit checkpoint` signs "
                    "every chain as it stands)",
                )
            )
    if whole:
        seen = {check.chain for check in checks}
        for chain, claims in signed.claims.items():
            anchored = signed.anchors.get(chain, (0, ""))[0]
            top = max(claims)
            if chain not in seen and top > anchored:
                breaks.append(
                    ChainBreak(
                        kind="truncated",
                        chain=chain,
                        seq=anchored + 1,
                        detail=f"no row left, but checkpoint {claims[top][1]} signed seq {top}",
                    )
                )
    unchained, first = log.read(lambda conn: _unchained(conn, since, until))
    if unchained:
        breaks.append(
            ChainBreak(
                kind="unchained",
                prediction_id=first,
                detail=f"{unchained} row(s) with no chain: written past the log",
            )
        )
    latest = signed.good[-1] if signed.good else None
    return VerifyReport(
        ok=not breaks,
        signed=key is not None,
        since=since,
        until=until,
        chains=len(checks),
        rows=sum(check.rows for check in checks) + unchained,
        checkpoints=len(stored),
        latest_checkpoint=None if latest is None else latest.seq,
        latest_checkpoint_at=None if latest is None else latest.created_at,
        unsigned_rows=sum(check.unsigned_rows() for check in checks) if signed.good else 0,
        breaks=breaks,
        warnings=warnings,
    )


def _window(stmt: sa.Select[Any], since: datetime | None, until: datetime | None) -> Any:
    if since is not None:
        stmt = stmt.where(predictions.c.created_at >= since)
    if until is not None:
        stmt = stmt.where(predictions.c.created_at < until)
    return stmt


def _chains(
    log: PredictionLog, since: datetime | None, until: datetime | None
) -> Iterator[tuple[str, Iterator[Any]]]:
    """Each chain's rows in seq order: every chain whole, or for a range each chain from its
    first to its last row made in the range (so rows between are all read)."""
    c = predictions.c
    if since is None and until is None:
        stmt = sa.select(*_columns()).where(c.chain.is_not(None)).order_by(c.chain, c.seq)
        rows = _mappings(log.read_chunks(stmt, chunk_rows=_READ_CHUNK))
        yield from _split(rows)
        return
    bounds = _window(
        sa.select(c.chain, sa.func.min(c.seq), sa.func.max(c.seq)).where(c.chain.is_not(None)),
        since,
        until,
    ).group_by(c.chain)
    for chain, low, high in log.read(lambda conn: conn.execute(bounds.order_by(c.chain)).all()):
        stmt = (
            sa.select(*_columns()).where(c.chain == chain, c.seq.between(low, high)).order_by(c.seq)
        )
        yield chain, _mappings(log.read_chunks(stmt, chunk_rows=_READ_CHUNK))


def _split(rows: Iterator[Any]) -> Iterator[tuple[str, Iterator[Any]]]:
    """Rows ordered by chain as one iterator per chain (each used up before the next)."""
    pending = next(rows, None)
    while pending is not None:
        chain = pending["chain"]
        first = pending
        pending = None

        def one(first: Any = first, chain: str = chain) -> Iterator[Any]:
            nonlocal pending
            yield first
            for row in rows:
                if row["chain"] != chain:
                    pending = row
                    return
                yield row

        part = one()
        yield chain, part
        for _ in part:  # whatever the caller left unread
            pass


def _formats(conn: Connection) -> dict[str, int]:
    """Each registered chain's format (how its rows were hashed)."""
    t = decision_chains_table.c
    return {chain: int(fmt) for chain, fmt in conn.execute(sa.select(t.id, t.format)).all()}


def _unchained(
    conn: Connection, since: datetime | None, until: datetime | None
) -> tuple[int, str | None]:
    c = predictions.c
    stmt = _window(
        sa.select(sa.func.count(), sa.func.min(c.id)).where(c.chain.is_(None)), since, until
    )
    count, first = conn.execute(stmt).one()
    return int(count), first


# ---------------------------------------------------------------------------------------------
# Signing every chain
# ---------------------------------------------------------------------------------------------


def signed_state(conn: Connection, key: AuditKey) -> tuple[dict[str, Head], dict[str, Head]]:
    """The newest signed head of each chain and the newest purge's anchors, from the stored
    checkpoints; raises :class:`ChainError` when one of them fails its checks."""
    breaks: list[ChainBreak] = []
    good = _check_stored(read_checkpoints(conn), key, breaks)
    if breaks:
        raise ChainError(
            f"checkpoint {breaks[0].seq}: {breaks[0].detail} (run `creditops audit verify`); "
            "nothing signed"
        )
    signed = _Signed()
    for seq in sorted(good):
        signed.add(good[seq], breaks)
    return fold_heads(signed.good), signed.anchors


def sign_chains(log: PredictionLog, key: AuditKey) -> Checkpoint:
    """Sign every chain's head as the database holds it now (``creditops audit checkpoint``):
    refused when a chain no longer reaches, or no longer holds, what was signed before."""

    def work(conn: Connection) -> Checkpoint:
        signed, anchors = signed_state(conn, key)
        heads = chain_heads(conn)
        still = {
            chain: head
            for chain, head in signed.items()
            if head[0] > anchors.get(chain, (0, ""))[0]
        }
        check_extends(conn, heads, still)
        return write_checkpoint(conn, key, "manual", heads, writer="cli")

    return log.transact(work)
