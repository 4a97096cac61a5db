"""Liveness, readiness, metrics, start-up refusal, body limit, generic errors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from envoi.api.app import create_app
from envoi.config import Settings
from envoi.errors import ConfigError
from envoi.runtime import Envoi
from tests.api.conftest import Api, add_failed_job


async def test_healthz(api: Api) -> None:
    response = await api.anonymous.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_ready(api: Api) -> None:
    response = await api.anonymous.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert body["redis"] == "ok"
    assert body["fallbackActive"] is False


async def test_readyz_states_fallback_mode(make_api: Callable[..., Any], make_settings: Any) -> None:
    api = await make_api(make_settings(queue_enabled=False))
    response = await api.anonymous.get("/readyz")
    assert response.status_code == 200
    assert "fallback mode" in response.json()["redis"]
    assert response.json()["fallbackActive"] is True


async def test_readyz_states_fallback_when_redis_is_down(
    make_api: Callable[..., Any], make_settings: Any
) -> None:
    from envoi.embedded_redis import free_port

    api = await make_api(make_settings(redis_url=f"redis://127.0.0.1:{free_port()}/0"))
    response = await api.anonymous.get("/readyz")
    assert response.status_code == 200
    assert response.json()["redis"].startswith("unreachable")
    assert "fallback mode" in response.json()["redis"]
    assert response.json()["fallbackActive"] is True


async def test_app_refuses_to_start_on_unmigrated_database(
    make_envoi: Callable[..., Envoi], make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    envoi = make_envoi(make_settings(database_url=f"sqlite:///{tmp_path / 'behind.db'}"))
    app = create_app(envoi)
    with pytest.raises(ConfigError, match="run `envoi migrate`"):
        async with app.router.lifespan_context(app):
            pass


async def test_readyz_503_when_database_falls_behind(api: Api, tmp_path: Path) -> None:
    # Started on a migrated database, then pointed at one that is not: /readyz says why.
    api.envoi.settings.database_url = f"sqlite:///{tmp_path / 'behind.db'}"
    response = await api.anonymous.get("/readyz")
    assert response.status_code == 503
    assert response.json()["status"] == "not ready"
    assert "envoi migrate" in response.json()["database"]


async def test_metrics_exposes_counters_and_gauges(api: Api) -> None:
    await add_failed_job(api.envoi)
    accepted = await api.client.post("/v1/jobs/SEND_SMS", json={"to": "+33612345678", "message": "hello"})
    assert accepted.status_code == 202
    response = await api.anonymous.get("/metrics")
    assert response.status_code == 200
    text = response.text
    assert "envoi_jobs_enqueued_total" in text
    assert 'envoi_queue_jobs{queue="notifications",state="waiting"} 1.0' in text
    assert 'envoi_dead_letters{status="FAILED"} 1.0' in text
    assert "envoi_fallback_active 0.0" in text


async def test_body_over_limit_by_content_length_is_413(api: Api) -> None:
    big = "x" * (300 * 1024)
    response = await api.client.post("/v1/jobs/SEND_SMS", json={"to": "+33612345678", "message": big})
    assert response.status_code == 413
    assert not any((await api.envoi.queue.counts("notifications") or {}).values())


async def test_streamed_body_over_limit_is_413(api: Api) -> None:
    async def chunks() -> Any:
        for _ in range(40):
            yield b"x" * 8192  # 320 KiB, no Content-Length

    response = await api.client.post(
        "/v1/jobs/SEND_SMS", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413


async def test_unexpected_error_is_a_generic_500(api: Api) -> None:
    @api.app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret detail in a traceback")

    response = await api.anonymous.get("/boom")
    assert response.status_code == 500
    assert response.json() == {"detail": "Internal server error"}
    assert "secret" not in response.text
