"""examples/custom_job/ as its README runs it: `envoi worker --jobs invoices` started from the example's
folder (a real process), the API given the same module, invoices written, a bad body refused naming the
field, an unknown currency dead-lettered once, and `Retry(after=1)` beating a 60 s backoff."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from envoi.config import Settings
from envoi.queue.names import NOTIFICATIONS_QUEUE
from envoi.runtime import import_job_modules
from tests.api.conftest import Api
from tests.helpers import eventually, job_state

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "custom_job"


@pytest.fixture
def invoice_dir(tmp_path: Path) -> Path:
    return tmp_path / "invoices"


@pytest.fixture
def example_worker(api_settings: Settings, invoice_dir: Path) -> Iterator[subprocess.Popen[str]]:
    env = {
        **os.environ,
        # This worktree's envoi, whatever is installed.
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
        "REDIS_URL": str(api_settings.redis_url),
        "REDIS_PREFIX": api_settings.redis_prefix,
        "DATABASE_URL": api_settings.database_url,
        "INVOICE_DIR": str(invoice_dir),
        "WORKER_DRAIN_DELAY_S": "1",
        "JOB_BACKOFF_DELAY_MS": "60000",
        "EMAIL_PROVIDER": "console",
    }
    env.pop("ENVOI_JOBS", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "envoi", "worker", "--jobs", "invoices"],
        cwd=EXAMPLE,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    yield proc
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def test_the_custom_job_example_runs_end_to_end(
    example_worker: subprocess.Popen[str],
    make_api: Callable[..., Awaitable[Api]],
    api_settings: Settings,
    invoice_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.syspath_prepend(str(EXAMPLE))
    assert import_job_modules(["invoices"]) == ["GENERATE_INVOICE"]
    api = await make_api(api_settings.model_copy(update={"envoi_jobs": ("invoices",)}))

    def invoice(order: str) -> str | None:
        path = invoice_dir / f"{order}.txt"
        return path.read_text() if path.exists() else None

    accepted = await api.client.post(
        "/v1/jobs/GENERATE_INVOICE", json={"orderId": "A-1001", "amountCents": 4200}
    )
    assert accepted.status_code == 202 and accepted.json()["mode"] == "queued"
    written = await eventually(lambda: invoice("A-1001"), timeout=30, message="the invoice from the worker")
    assert written == "Invoice 000001\nOrder A-1001\nTotal 42.00 EUR\n"

    refused = await api.client.post(
        "/v1/jobs/GENERATE_INVOICE", json={"orderId": "A-1002", "amountCents": "lots"}
    )
    assert refused.status_code == 422
    assert [error["path"] for error in refused.json()["errors"]] == ["amountCents"]

    await api.client.post(
        "/v1/jobs/GENERATE_INVOICE", json={"orderId": "A-1003", "amountCents": 100, "currency": "JPY"}
    )

    async def dead_letters() -> list[dict[str, object]]:
        page = await api.admin.get("/v1/admin/failed-jobs", params={"jobName": "GENERATE_INVOICE"})
        items: list[dict[str, object]] = page.json()["items"]
        return items

    [dead] = await eventually(dead_letters, timeout=30, message="the JPY dead letter")  # type: ignore[arg-type]
    assert (dead["errorMessage"], dead["attemptsMade"]) == ("no invoice layout for JPY", 1)

    # Another process holds the numbering: the job asks to come back in a second, not in a minute.
    lock = invoice_dir / "numbering.lock"
    lock.touch()
    busy = await api.client.post("/v1/jobs/GENERATE_INVOICE", json={"orderId": "A-1004", "amountCents": 990})
    job_id = busy.json()["jobId"]

    async def delayed() -> bool:
        return await job_state(api.envoi, NOTIFICATIONS_QUEUE, job_id) == "delayed"

    await eventually(delayed, timeout=30, message="the job waiting for the lock")  # type: ignore[arg-type]
    lock.unlink()
    written = await eventually(
        lambda: invoice("A-1004"), timeout=10, message="the invoice after Retry(after=1)"
    )
    assert written.startswith("Invoice 000002\nOrder A-1004\n")
    assert example_worker.poll() is None, "the worker is still running"
