"""What every bench script shares: a Redis (given, or a private one), a scratch SQLite database, and a
migrated PostgreSQL schema of its own when asked for."""

from __future__ import annotations

import argparse
import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import sqlalchemy as sa

from envoi.db.migrate import upgrade
from envoi.embedded_redis import EmbeddedRedis


def add_redis_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("BENCH_REDIS_URL"),
        help="Redis to measure against (default: a private redis-server, started and stopped here)",
    )


@contextmanager
def bench_environment(redis_url: str | None) -> Iterator[tuple[str, str]]:
    """Yield (Redis URL, SQLite URL); a private redis-server when no URL is given."""
    with tempfile.TemporaryDirectory() as tmp:
        database_url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        if redis_url:
            yield redis_url, database_url
            return
        with EmbeddedRedis(Path(tmp) / "redis") as url:
            yield url, database_url


@asynccontextmanager
async def postgres_schema(base: str) -> AsyncIterator[str]:
    """A migrated schema of its own on `base`, dropped afterwards."""
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(base.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in base else "?"
    url = f"{base}{separator}options=-csearch_path%3D{schema}"
    try:
        upgrade(url)
        yield url
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        engine.dispose()
