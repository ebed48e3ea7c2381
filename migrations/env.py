"""Alembic environment for ahashdb.

The URL comes from the caller (``HashStore.migrate`` passes a connection in
``config.attributes["connection"]``) or from ahashdb's own configuration
(``--database-url`` / ``AHASHDB_DATABASE_URL`` / the embedded server); never from a file.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from ahashdb.schema import metadata

config = context.config
target_metadata = metadata


def _include_object(obj, name, type_, reflected, compare_to):  # noqa: ANN001
    # alembic's own version table is not part of ahashdb's model.
    return not (type_ == "table" and name == "alembic_version")


def _configure(connection) -> None:  # noqa: ANN001
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        include_object=_include_object,
        compare_type=True,
        transaction_per_migration=False,
    )


def run_migrations_offline() -> None:
    """Emit SQL to stdout (``alembic upgrade head --sql``)."""
    url = config.get_main_option("sqlalchemy.url") or "postgresql+psycopg://"
    context.configure(url=url, target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run migrations on a live database, in one transaction."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        from ahashdb.config import database_url, sqlalchemy_url

        url = sqlalchemy_url(database_url(None))
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as conn:
        _configure(conn)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
