"""A decision log that shows tampering: each decision's hash chain (chain, seq, prev_hash,
row_hash on predictions, one row per place in a chain), the chains, and their signed
checkpoints. Decisions logged before this revision are chained here, oldest first, into one
chain of their own, so they verify like the rest. On PostgreSQL, when a service role is named
(``CREDITOPS_DATABASE_SERVICE_ROLE`` or ``-x service_role=…``), that role may only insert and
read the decision log (:mod:`creditops.store.grants`).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from creditops.store.chain import GENESIS, row_digest, stored_fields, time_text
from creditops.store.grants import grant_named_service_role
from creditops.store.schema import predictions

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None

_TIME = sa.DateTime(timezone=True)
_CHUNK = 5000
# The chain format of this revision's schema (no personal-data column yet), fixed here so the
# revision writes the same hashes whatever format later revisions add.
_FORMAT = 1


def upgrade() -> None:
    op.add_column("predictions", sa.Column("chain", sa.String(32), nullable=True))
    op.add_column("predictions", sa.Column("seq", sa.BigInteger, nullable=True))
    op.add_column("predictions", sa.Column("prev_hash", sa.String(64), nullable=True))
    op.add_column("predictions", sa.Column("row_hash", sa.String(64), nullable=True))
    op.create_index("ux_predictions_chain_seq", "predictions", ["chain", "seq"], unique=True)
    op.create_table(
        "decision_chains",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("started_at", _TIME, nullable=False),
        sa.Column("format", sa.Integer, nullable=False),
        sa.Column("writer", sa.Text, nullable=False),
    )
    op.create_table(
        "decision_checkpoints",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("key_id", sa.String(16), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("mac", sa.String(64), nullable=False),
    )
    bind = op.get_bind()
    _chain_existing(bind)
    grant_named_service_role(bind)


def _chain_existing(bind: sa.Connection) -> None:
    """Chain the decisions already logged into one chain, in (created_at, id) order, hashed
    over their stored text like every later row; read and written a chunk at a time."""
    c = predictions.c
    names = ("id", "created_at", "model_name", "model_version", "probability", "points")
    names += ("grade", "decision", "latency_ms", "actor")
    columns = [c[name] for name in names]
    columns += [sa.cast(c[name], sa.Text).label(name) for name in _JSON]
    chain = uuid.uuid4().hex
    seq, prev = 0, GENESIS
    update = (
        sa.update(predictions)
        .where(c.id == sa.bindparam("b_id"))
        .values(
            chain=sa.bindparam("b_chain"),
            seq=sa.bindparam("b_seq"),
            prev_hash=sa.bindparam("b_prev"),
            row_hash=sa.bindparam("b_hash"),
        )
    )
    last: tuple[datetime, str] | None = None
    while True:
        stmt = sa.select(*columns).order_by(c.created_at, c.id).limit(_CHUNK)
        if last is not None:
            stmt = stmt.where(
                sa.or_(c.created_at > last[0], sa.and_(c.created_at == last[0], c.id > last[1]))
            )
        rows = bind.execute(stmt).mappings().all()
        if not rows:
            break
        if seq == 0:
            bind.execute(
                sa.table(
                    "decision_chains",
                    sa.column("id"),
                    sa.column("started_at", _TIME),
                    sa.column("format"),
                    sa.column("writer"),
                ).insert(),
                [
                    {
                        "id": chain,
                        "started_at": datetime.now(UTC),
                        "format": _FORMAT,
                        "writer": "revision 0006 (decisions logged before it)",
                    }
                ],
            )
        updates = []
        for row in rows:
            seq += 1
            values = {**row, "chain": chain, "seq": seq}
            fields = stored_fields(values, time_text(row["created_at"]), _FORMAT)
            digest = row_digest(prev, fields, _FORMAT)
            updates.append(
                {
                    "b_id": row["id"],
                    "b_chain": chain,
                    "b_seq": seq,
                    "b_prev": prev,
                    "b_hash": digest,
                }
            )
            prev = digest
        bind.execute(update, updates)
        last = (rows[-1]["created_at"], rows[-1]["id"])


_JSON = ("features", "protected", "imputed", "reasons")


def downgrade() -> None:
    op.drop_table("decision_checkpoints")
    op.drop_table("decision_chains")
    op.drop_index("ux_predictions_chain_seq", table_name="predictions")
    with op.batch_alter_table("predictions") as batch:
        batch.drop_column("row_hash")
        batch.drop_column("prev_hash")
        batch.drop_column("seq")
        batch.drop_column("chain")
