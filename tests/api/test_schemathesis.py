"""Property-based: requests generated from /openapi.json (valid and invalid ones) never get a 5xx.

Bounded (a few examples per operation and mode) so that it runs in seconds; the app is served by a
real uvicorn in a thread, since schemathesis calls it synchronously.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from envoi.api.app import create_app
from envoi.config import Settings
from envoi.embedded_redis import free_port
from envoi.runtime import Envoi
from tests.api.conftest import ADMIN_TOKEN, API_KEY, TWILIO_TOKEN
from tests.helpers import eventually

MAX_EXAMPLES = 6


@pytest.fixture
def base_url(make_settings: Callable[..., Settings]) -> Iterator[str]:
    envoi = Envoi(
        make_settings(envoi_api_key=API_KEY, envoi_admin_token=ADMIN_TOKEN, twilio_auth_token=TWILIO_TOKEN)
    )
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(envoi), host="127.0.0.1", port=port, log_level="warning")
    )

    async def serve() -> None:
        try:
            await server.serve()
        finally:
            await envoi.close()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    asyncio.run(eventually(lambda: server.started, message="uvicorn started"))
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=30)


def headers_for(path: str) -> dict[str, str]:
    token = ADMIN_TOKEN if path.startswith("/v1/admin") else API_KEY
    return {"Authorization": f"Bearer {token}"}


def test_no_route_answers_5xx(base_url: str) -> None:
    raw: dict[str, Any] = httpx.get(f"{base_url}/openapi.json").json()
    schema = schemathesis.openapi.from_dict(raw)
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    assert len(operations) >= 20

    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(
                max_examples=MAX_EXAMPLES,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(generation_mode=mode))
            def check(case: Any) -> None:
                response = case.call(base_url=base_url, headers=headers_for(case.path), timeout=30)
                if response.status_code >= 500:
                    failures.append(f"{case.method} {case.formatted_path} -> {response.status_code}")

            try:
                check()
            except Unsatisfiable:
                # Nothing can be made invalid in an operation without parameters or body (GET /healthz).
                assert mode is GenerationMode.NEGATIVE

    assert not failures, failures
