"""What every bench script shares: a Redis (given, or a private one) and a scratch SQLite database."""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

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
