"""Run the Alembic chain shipped in `envoi/db/migrations`, from any working directory.

`schema` is DATABASE_SCHEMA: on PostgreSQL the chain, its `alembic_version` table and the tables it
creates go there (the schema is created if missing); on SQLite it is ignored.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, create_engine, text

from envoi.db.session import (
    DEFAULT_CONNECT_TIMEOUT_S,
    DEFAULT_STATEMENT_TIMEOUT_S,
    connect_args,
    ensure_sqlite_dir,
    normalize_url,
    schema_options,
)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
#: Where env.py finds the schema `upgrade()`/`downgrade()` were given (the URL has its own option).
SCHEMA_OPTION = "envoi.database_schema"


def alembic_config(database_url: str, *, schema: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Kept raw: env.py picks the sync driver. '%' is doubled because Config interpolates.
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    config.set_main_option(SCHEMA_OPTION, schema or "")
    return config


def in_schema(connection: Connection, schema: str | None, *, create: bool = False) -> Connection:
    """`connection` with envoi's tables placed in `schema` (PostgreSQL; returned as is otherwise).

    DDL and queries built from tables follow the translate map. Reflection does not: it reads the
    search_path and the dialect's default schema, so both are pointed there too, and autogenerate (and
    the drift test) compare the models with envoi's schema alone, never with another application's
    tables in `public`. Meant for a connection of its own (migrations): the search_path stays set.
    """
    if schema is None or connection.dialect.name != "postgresql":
        return connection
    quoted = connection.dialect.identifier_preparer.quote_schema(schema)
    if create:
        connection.execute(text(f"CREATE SCHEMA IF NOT EXISTS {quoted}"))
    connection.execute(text(f"SET search_path TO {quoted}"))
    connection.commit()
    connection.dialect.default_schema_name = schema
    return connection.execution_options(**schema_options(connection.engine.url, schema))


def upgrade(database_url: str, revision: str = "head", *, schema: str | None = None) -> None:
    ensure_sqlite_dir(normalize_url(database_url, asynchronous=False))
    command.upgrade(alembic_config(database_url, schema=schema), revision)


def downgrade(database_url: str, revision: str = "base", *, schema: str | None = None) -> None:
    command.downgrade(alembic_config(database_url, schema=schema), revision)


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None
    return head


def current_revision(database_url: str, *, schema: str | None = None) -> str | None:
    url = normalize_url(database_url, asynchronous=False)
    # /readyz asks this on every probe: a database that hangs must answer "not ready", not hang it.
    timeouts = connect_args(
        url, connect_timeout_s=DEFAULT_CONNECT_TIMEOUT_S, statement_timeout_s=DEFAULT_STATEMENT_TIMEOUT_S
    )
    engine = create_engine(url, connect_args=timeouts)
    try:
        with engine.connect() as connection:
            version_schema = schema if connection.dialect.name == "postgresql" else None
            context = MigrationContext.configure(connection, opts={"version_table_schema": version_schema})
            return context.get_current_revision()
    finally:
        engine.dispose()


def pending_message(database_url: str, *, schema: str | None = None) -> str | None:
    """None when the database is at the head revision, else what to do about it."""
    current = current_revision(database_url, schema=schema)
    head = head_revision()
    if current == head:
        return None
    where = f" (schema {schema})" if schema else ""
    return f"Database{where} is at revision {current or 'none'}, envoi needs {head}: run `envoi migrate`."
