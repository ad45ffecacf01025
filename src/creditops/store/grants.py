"""What the service's own PostgreSQL role may do: the decision log is append-only for it.

Run the service as a role that does not own the tables, and let the owner (the role that runs
``creditops db upgrade`` and the retention purge) hold the rest: the service may then insert
and read decisions, chains and checkpoints but never update, delete or truncate them, so even
a compromised service cannot rewrite what it decided. Outcomes, alerts, jobs, keys and the
other records live in tables of their own and keep ordinary read/write rights.

Revision 0006 applies this when ``CREDITOPS_DATABASE_SERVICE_ROLE`` (or Alembic's ``-x
service_role=…``) names the role; ``creditops db grant ROLE`` applies it at any time (after a
later revision added tables, say). SQLite has no roles: use file permissions there.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from creditops.exceptions import SchemaError
from creditops.store.schema import metadata

__all__ = [
    "APPEND_ONLY_TABLES",
    "SERVICE_ROLE_VARIABLE",
    "grant_named_service_role",
    "grant_service_role",
]

#: Tables the service may only insert into and read.
APPEND_ONLY_TABLES = (
    "predictions",
    "decision_chains",
    "decision_checkpoints",
    "access_log",
    "shadow_decisions",
)
#: Names the service's role for the migration that sets its rights.
SERVICE_ROLE_VARIABLE = "CREDITOPS_DATABASE_SERVICE_ROLE"


def grant_service_role(conn: Connection, role: str) -> list[str]:
    """Give ``role`` what the service needs on the creditops tables of the current schema,
    within ``conn``'s transaction (run as their owner); returns the statements run.

    Append-only tables: SELECT and INSERT, everything else revoked; ``alembic_version``:
    SELECT (the service checks the revision); the other creditops tables: SELECT, INSERT,
    UPDATE, DELETE. Raises :class:`SchemaError` on SQLite or for a role that does not exist."""
    if conn.dialect.name != "postgresql":
        raise SchemaError("database roles exist on PostgreSQL only (SQLite: file permissions)")
    known = conn.execute(
        sa.text("SELECT 1 FROM pg_roles WHERE rolname = :role"), {"role": role}
    ).first()
    if known is None:
        raise SchemaError(f"no database role {role!r}: create it first (CREATE ROLE … LOGIN)")
    quote = conn.dialect.identifier_preparer.quote
    who = quote(role)
    schema = conn.execute(sa.select(sa.func.current_schema())).scalar_one()
    present = set(sa.inspect(conn).get_table_names(schema=schema))
    tables = [table.name for table in metadata.sorted_tables if table.name in present]
    statements = [f"GRANT USAGE ON SCHEMA {quote(schema)} TO {who}"]
    for name in tables:
        target = f"{quote(schema)}.{quote(name)}"
        statements.append(f"REVOKE ALL ON {target} FROM {who}")
        rights = (
            "SELECT, INSERT" if name in APPEND_ONLY_TABLES else "SELECT, INSERT, UPDATE, DELETE"
        )
        statements.append(f"GRANT {rights} ON {target} TO {who}")
    if "alembic_version" in present:
        target = f"{quote(schema)}.{quote('alembic_version')}"
        statements += [f"REVOKE ALL ON {target} FROM {who}", f"GRANT SELECT ON {target} TO {who}"]
    for statement in statements:
        # Identifiers quoted by the dialect; the role was checked to exist above.
        conn.exec_driver_sql(statement)
    return statements


def grant_named_service_role(conn: Connection) -> None:
    """In a migration that adds tables: give the service role named by Alembic's ``-x
    service_role=…`` or ``CREDITOPS_DATABASE_SERVICE_ROLE`` its rights (PostgreSQL only;
    nothing when no role is named)."""
    import os

    from alembic import context

    named = context.get_x_argument(as_dictionary=True).get("service_role")
    role = named or os.environ.get(SERVICE_ROLE_VARIABLE)
    if role and conn.dialect.name == "postgresql":
        grant_service_role(conn, role)
