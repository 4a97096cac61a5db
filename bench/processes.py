"""What the end-to-end bench scripts share: envoi's API and worker as real processes (`envoi api`,
`envoi worker`), the slow STARTTLS sink (`slow_smtp.py`) as a process, and a bounded HTTP load generator.

Each process's log goes to a file under the run's scratch folder; a process is stopped with SIGTERM
(then SIGKILL after 10 s), by the context manager that started it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from envoi.embedded_redis import free_port

BENCH = Path(__file__).resolve().parent
ENVOI = str(Path(sys.executable).with_name("envoi"))
API_KEY = "bench-api-key"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


@contextlib.contextmanager
def process(
    args: list[str], *, env: dict[str, str], log: Path, ready: str | Callable[[], bool], timeout: float = 60
) -> Iterator[None]:
    """Run `args` until the block ends; ready once `ready` shows in its output (stdout and stderr), or
    once `ready()` is true."""
    with log.open("w") as out:
        child = subprocess.Popen(args, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT)
    is_ready = ready if callable(ready) else lambda: ready in log.read_text(errors="replace")
    try:
        deadline = time.monotonic() + timeout
        while not is_ready():
            if child.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{args[:3]} did not start:\n{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.05)  # a process starting: polled, nothing to wait on
        yield
    finally:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


@dataclass
class Sink:
    port: int
    log: Path

    def accepted(self, tag: str) -> dict[str, float]:
        """Subject -> time accepted, for the messages whose subject starts with `tag`."""
        found: dict[str, float] = {}
        for line in self.log.read_text().splitlines():
            subject, _, at = line.rpartition(" ")
            if subject.startswith(tag):
                found[subject] = float(at)
        return found

    def wait_for(self, tag: str, n: int, timeout: float) -> dict[str, float]:
        deadline = time.monotonic() + timeout
        while len(found := self.accepted(tag)) < n:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{len(found)} of {n} messages reached the sink in {timeout:g}s")
            time.sleep(0.05)  # the sink is another process: its log is polled
        return found


@contextlib.contextmanager
def slow_sink(folder: Path, cert: Path, key: Path, delay: float) -> Iterator[Sink]:
    sink = Sink(free_port(), folder / f"accepted-{delay}.txt")
    sink.log.touch()
    args = [sys.executable, str(BENCH / "slow_smtp.py"), "--port", str(sink.port), "--delay", str(delay)]
    args += ["--cert", str(cert), "--key", str(key), "--log", str(sink.log)]
    with process(args, env={}, log=folder / f"sink-{delay}.log", ready="ready"):
        yield sink


def envoi_env(*, redis_url: str, prefix: str, database_url: str, sink: Sink, cert: Path) -> dict[str, str]:
    """Settings for `envoi api` and `envoi worker` sending to the sink over STARTTLS."""
    return {
        "REDIS_URL": redis_url,
        "REDIS_PREFIX": prefix,
        "DATABASE_URL": database_url,
        "ENVOI_API_KEY": API_KEY,
        "EMAIL_PROVIDER": "smtp",
        "EMAIL_FROM": "envoi <bench@envoi.test>",
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(sink.port),
        "SMTP_SECURITY": "starttls",
        "SSL_CERT_FILE": str(cert),  # trusts the sink's self-signed certificate
        "LOG_LEVEL": "WARNING",
    }


@contextlib.contextmanager
def envoi_api(env: dict[str, str], log: Path) -> Iterator[str]:
    port = free_port()
    args = [ENVOI, "api", "--host", "127.0.0.1", "--port", str(port)]
    base_url = f"http://127.0.0.1:{port}"

    def answers() -> bool:  # LOG_LEVEL=WARNING leaves out uvicorn's "running" line
        try:
            return httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    with process(args, env=env, log=log, ready=answers):
        yield base_url


@contextlib.contextmanager
def envoi_worker(env: dict[str, str], log: Path, concurrency: int) -> Iterator[None]:
    args = [ENVOI, "worker", "--concurrency", str(concurrency)]
    with process(args, env={**env, "LOG_LEVEL": "INFO"}, log=log, ready="Waiting for jobs"):
        yield


async def load(
    base_url: str, n: int, concurrency: int, body: Callable[[int], dict[str, object]]
) -> tuple[list[float], list[float], float]:
    """POST /v1/jobs/SEND_EMAIL `n` times from `concurrency` clients at once (each waits for its answer
    before the next: a bounded load). Returns (start times, latencies, seconds for all)."""
    started: list[float] = [0.0] * n
    latencies: list[float] = [0.0] * n
    counter = iter(range(n))
    headers = {"Authorization": f"Bearer {API_KEY}"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, headers=headers, limits=limits, timeout=120) as client:

        async def one_client() -> None:
            for i in counter:
                started[i] = time.time()
                response = await client.post("/v1/jobs/SEND_EMAIL", json=body(i))
                latencies[i] = time.time() - started[i]
                if response.status_code != 202:
                    raise RuntimeError(f"POST answered {response.status_code}: {response.text[:300]}")

        begin = time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(concurrency)))
        return started, latencies, time.perf_counter() - begin
