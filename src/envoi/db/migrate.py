"""Run the Alembic chain shipped in `envoi/db/migrations`, from any working directory."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine

from envoi.db.session import (
    DEFAULT_CONNECT_TIMEOUT_S,
    DEFAULT_STATEMENT_TIMEOUT_S,
    connect_args,
    ensure_sqlite_dir,
    normalize_url,
)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Kept raw: env.py picks the sync driver. '%' is doubled because Config interpolates.
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    ensure_sqlite_dir(normalize_url(database_url, asynchronous=False))
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(database_url), revision)


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None
    return head


def current_revision(database_url: str) -> str | None:
    url = normalize_url(database_url, asynchronous=False)
    # /readyz asks this on every probe: a database that hangs must answer "not ready", not hang it.
    timeouts = connect_args(
        url, connect_timeout_s=DEFAULT_CONNECT_TIMEOUT_S, statement_timeout_s=DEFAULT_STATEMENT_TIMEOUT_S
    )
    engine = create_engine(url, connect_args=timeouts)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def pending_message(database_url: str) -> str | None:
    """None when the database is at the head revision, else what to do about it."""
    current = current_revision(database_url)
    head = head_revision()
    if current == head:
        return None
    return f"Database is at revision {current or 'none'}, envoi needs {head}: run `envoi migrate`."
