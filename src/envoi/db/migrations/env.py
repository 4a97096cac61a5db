"""Alembic environment: the URL and schema come from the caller (`envoi migrate`), else from the
settings (DATABASE_URL, DATABASE_SCHEMA).

With a schema (PostgreSQL), `alembic_version` lives there (`version_table_schema`) and every table the
chain creates is translated there (`envoi.db.migrate.in_schema`); `include_schemas` stays off, so that
autogenerate compares the models with envoi's schema only and never offers to drop another
application's tables. Generate new revisions against a database without DATABASE_SCHEMA: they must stay
schema-free.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from envoi.config import load_settings
from envoi.db.migrate import SCHEMA_OPTION, in_schema
from envoi.db.models import Base
from envoi.db.session import DEFAULT_CONNECT_TIMEOUT_S, connect_args, normalize_url

config = context.config


def _target() -> tuple[str, str | None]:
    url = config.get_main_option("sqlalchemy.url")
    schema = config.get_main_option(SCHEMA_OPTION) or None
    if not url:
        settings = load_settings()
        url, schema = settings.database_url, settings.database_schema
    return normalize_url(url, asynchronous=False).render_as_string(hide_password=False), schema


def run_migrations_offline() -> None:
    url, schema = _target()
    if not url.startswith("postgresql"):
        schema = None
    context.configure(
        url=url,
        target_metadata=Base.metadata,
        literal_binds=True,
        compare_type=True,
        version_table_schema=schema,
    )
    with context.begin_transaction():
        if schema is not None:
            # No connection to translate through: the script sets the search_path its tables follow.
            context.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            context.execute(f'SET search_path TO "{schema}"')
        context.run_migrations()


def run_migrations_online() -> None:
    url, schema = _target()
    # A connect timeout, but no statement timeout: building an index on a large table may rightly be slow.
    timeouts = connect_args(
        normalize_url(url, asynchronous=False),
        connect_timeout_s=DEFAULT_CONNECT_TIMEOUT_S,
        statement_timeout_s=None,
    )
    engine = create_engine(url, poolclass=pool.NullPool, connect_args=timeouts)
    with engine.connect() as raw:
        connection = in_schema(raw, schema, create=True)
        postgresql = connection.dialect.name == "postgresql"
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            compare_type=True,
            render_as_batch=connection.dialect.name == "sqlite",
            version_table_schema=schema if postgresql else None,
            include_schemas=False,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
