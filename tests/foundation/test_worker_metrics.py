"""`envoi worker` with WORKER_METRICS_PORT serves its own counters: the API process never sees them."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from typing import Any

import httpx

from envoi.config import Settings
from envoi.embedded_redis import free_port
from envoi.queue import NOTIFICATIONS_QUEUE, HandlerRegistry, JobName
from tests.helpers import eventually


async def scrape(url: str) -> str:
    try:
        async with httpx.AsyncClient() as client:
            response = await client.get(url)
    except httpx.HTTPError:
        return ""
    return response.text if response.status_code == 200 else ""


async def test_worker_serves_its_counters(settings: Settings, make_envoi: Any) -> None:
    port = free_port()
    env = {
        **os.environ,
        "REDIS_URL": settings.redis_url or "",
        "REDIS_PREFIX": settings.redis_prefix,
        "DATABASE_URL": settings.database_url,
        "WORKER_METRICS_PORT": str(port),
        "WORKER_DRAIN_DELAY_S": "1",
    }
    proc = subprocess.Popen([sys.executable, "-m", "envoi", "worker"], env=env, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        await eventually(lambda: scrape(url), timeout=30, message="the worker's metrics endpoint")
        producer = make_envoi(settings, registry=HandlerRegistry())
        data = {"userId": "u1", "title": "Hello", "message": "hi"}
        await producer.queue.enqueue(NOTIFICATIONS_QUEUE, JobName.CREATE_INAPP_NOTIFICATION, data)
        line = 'envoi_jobs_completed_total{job_name="CREATE_INAPP_NOTIFICATION",queue="notifications"} 1.0'

        async def counted() -> bool:
            return line in await scrape(url)

        await eventually(counted, timeout=30, message="the completed job counted")
        assert "envoi_job_duration_seconds_count" in await scrape(url)
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.to_thread(proc.wait, 30)
