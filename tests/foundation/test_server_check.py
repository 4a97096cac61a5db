"""At start, envoi warns when the Redis server could lose jobs: eviction allowed, or no persistence."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from envoi.config import Settings
from envoi.embedded_redis import EmbeddedRedis, free_port
from envoi.errors import QueueUnavailableError
from envoi.runtime import Envoi
from envoi.worker import Worker

UNSAFE = ["--maxmemory-policy", "allkeys-lru"]
SAFE = ["--maxmemory-policy", "noeviction", "--appendonly", "yes"]


@pytest.mark.parametrize(("args", "expected"), [(UNSAFE, 2), (SAFE, 0)])
async def test_worker_start_warns_about_eviction_and_missing_persistence(
    tmp_path: Path,
    make_settings: Callable[..., Settings],
    caplog: pytest.LogCaptureFixture,
    args: list[str],
    expected: int,
) -> None:
    with EmbeddedRedis(tmp_path / "redis", extra_args=args) as url:
        envoi = Envoi(make_settings(redis_url=url))
        worker = Worker(envoi)
        caplog.set_level(logging.WARNING, logger="envoi.queue")
        try:
            await worker.start()
        finally:
            await worker.close()
            await envoi.close()
    warnings = [
        r.getMessage() for r in caplog.records if r.name == "envoi.queue" and "Redis" in r.getMessage()
    ]
    lines = [w for w in warnings if "maxmemory-policy" in w or "persistence is off" in w]
    assert len(lines) == expected, warnings
    if expected:
        assert any("allkeys-lru" in line for line in lines)


async def test_the_check_reports_redis_down_as_unavailable(make_settings: Callable[..., Settings]) -> None:
    envoi = Envoi(make_settings(redis_url=f"redis://127.0.0.1:{free_port()}/0"))
    try:
        with pytest.raises(QueueUnavailableError):
            await envoi.queue.server.warnings()
    finally:
        await envoi.close()
