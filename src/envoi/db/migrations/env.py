"""Alembic environment: the URL comes from the caller (`envoi migrate`) or DATABASE_URL."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from envoi.db.models import Base
from envoi.db.session import DEFAULT_CONNECT_TIMEOUT_S, connect_args, normalize_url

config = context.config


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        from envoi.config import load_settings

        url = load_settings().database_url
    return normalize_url(url, asynchronous=False).render_as_string(hide_password=False)


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=Base.metadata, literal_binds=True, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    url = _url()
    # A connect timeout, but no statement timeout: building an index on a large table may rightly be slow.
    timeouts = connect_args(
        normalize_url(url, asynchronous=False),
        connect_timeout_s=DEFAULT_CONNECT_TIMEOUT_S,
        statement_timeout_s=None,
    )
    engine = create_engine(url, poolclass=pool.NullPool, connect_args=timeouts)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            compare_type=True,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
