"""Alembic's environment for the creditops database.

creditops runs migrations itself (:func:`creditops.store.schema.ensure_schema`), handing over a
connection whose transaction already holds the migration lock; every revision then runs in that
one transaction. For writing a new revision with Alembic's own commands, ``sqlalchemy.url`` in
the configuration names a scratch database instead.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from creditops.store.schema import metadata


def _run(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite alters a table by copying it: autogenerate writes such changes as batches.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def main() -> None:
    """Run the migrations on the connection given, or on ``sqlalchemy.url``."""
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("pass a connection or set sqlalchemy.url to run migrations")
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            _run(conn)
            conn.commit()
    finally:
        engine.dispose()


main()
