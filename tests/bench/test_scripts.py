"""The benchmark scripts still run (tiny sizes; the figures themselves are in docs/benchmarks.md)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("script", "args", "rows"),
    [
        ("enqueue.py", ["-n", "20"], ["bullmq Queue.add (baseline)", "envoi enqueue, Redis", "SyncClient"]),
        (
            "throughput.py",
            ["-n", "50", "--reps", "1"],
            ["bullmq Worker, URL connection (baseline)", "envoi Worker"],
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
            "recipient_policy.py",
            ["-n", "20"],
            [
                "SQL round trip, SQLite (SELECT 1, the floor)",
                "transactional, SQLite",
                "marketing, opted out, SQLite",
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
