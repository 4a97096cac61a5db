"""`GET /v1/admin/queues` lists each provider's circuit, rate limit and the shared throttled waits."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from envoi.config import Settings
from envoi.queue.rate_limits import Bucket
from tests.api.conftest import Api


async def test_queues_overview_shows_provider_circuits_and_throttled_waits(
    make_api: Callable[..., Any], api_settings: Settings
) -> None:
    api: Api = await make_api(api_settings.model_copy(update={"rate_limits": {"smtp": 2.0}}))
    rates = api.envoi.queue.rate_limits
    for _ in range(2):
        await rates.reserve([Bucket("smtp", 2)], label="smtp", max_wait_s=5)
    body = (await api.admin.get("/v1/admin/queues")).json()
    [smtp] = [p for p in body["providers"] if p["provider"] == "smtp"]
    assert (smtp["channel"], smtp["circuit"], smtp["rateLimit"]) == ("email", "closed", 2.0)
    assert (smtp["throttled"], smtp["refused"], smtp["paused"]) == (1, 0, 0)
