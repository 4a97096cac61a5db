"""The benchmark scripts still run (tiny sizes; the figures themselves are in docs/benchmarks.md)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("script", "args", "rows"),
    [
        (
            "enqueue.py",
            ["-n", "20", "--rounds", "1"],
            [
                "redis-py LPUSH, one at a time (floor, baseline)",
                "envoi enqueue, one at a time",
                "envoi enqueue_many",
                "envoi enqueue, 50 concurrent callers (coalesced)",
                "SyncClient",
            ],
        ),
        (
            "throughput.py",
            ["-n", "50", "--reps", "1", "--workload", "noop"],
            [
                "bullmq Worker (baseline)",
                "envoi Worker, bullmq's path",
                "envoi Worker, fetch-next",
                "envoi worker (1 process)",
                "envoi worker --processes 2",
            ],
        ),
        (
            "idempotency.py",
            ["-n", "20"],
            [
                "Redis SET NX EX (the old claim, baseline)",
                "SQL claim, SQLite, new key",
                "SQL claim, SQLite, seen key",
            ],
        ),
        (
            "email_pipeline.py",
            ["-n", "6", "--concurrency", "2", "--delay", "0"],
            ["one connection per message (baseline)", "envoi, pooled", "bare aiosmtplib, kept connections"],
        ),
        (
            "http.py",
            ["-n", "20", "--n-sync", "4", "--concurrency", "2", "--delay", "0"],
            ["QUEUE_ENABLED=false, SMTP (baseline)", "queued (202, job in Redis)"],
        ),
        (
            "recipient_policy.py",
            ["-n", "20"],
            [
                "SQL round trip, SQLite (SELECT 1, the floor)",
                "transactional, SQLite",
                "marketing, opted out, SQLite",
            ],
        ),
        (
            "tracing.py",
            ["-n", "20", "--rounds", "1"],
            [
                "tracing off (baseline)",
                "tracing on (SDK, spans dropped)",
                "tracing.span() block, tracing off",
            ],
        ),
        (
            "retry_latency.py",
            ["-n", "2", "--backoff-ms", "100"],
            ["bullmq Worker (baseline)", "envoi Worker"],
        ),
    ],
)
def test_benchmark_prints_its_table(redis_url: str, script: str, args: list[str], rows: list[str]) -> None:
    if script in {"email_pipeline.py", "http.py"} and shutil.which("openssl") is None:
        pytest.skip("the SMTP sink's certificate is made by the openssl CLI")
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *args, "--redis-url", redis_url],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "x baseline" in result.stdout
    for row in rows:
        assert row in result.stdout, result.stdout
