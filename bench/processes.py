"""What the end-to-end bench scripts share: envoi's API and worker as real processes (`envoi api`,
`envoi worker`), the slow STARTTLS sink (`slow_smtp.py`) as a process, and a bounded HTTP load generator.

Each process's log goes to a file under the run's scratch folder; a process is stopped with SIGTERM
(then SIGKILL after 10 s), by the context manager that started it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
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
    """POST /v1/jobs/SEND_EMAIL `n` times from `concurrency` kept connections at once (each waits for its
    answer before the next: a bounded load). Returns (start times, latencies, seconds for all).

    HTTP/1.1 written and read by hand over asyncio streams: httpx took about 2 ms of CPU per request,
    two thirds of a core at the rates measured here, on the two cores the API and the worker share."""
    started: list[float] = [0.0] * n
    latencies: list[float] = [0.0] * n
    counter = iter(range(n))
    url = httpx.URL(base_url)
    head = (
        f"POST /v1/jobs/SEND_EMAIL HTTP/1.1\r\nHost: {url.host}:{url.port}\r\n"
        f"Authorization: Bearer {API_KEY}\r\nContent-Type: application/json\r\n"
    ).encode()

    async def one_client() -> None:
        reader, writer = await asyncio.open_connection(url.host, url.port)
        try:
            for i in counter:
                payload = json.dumps(body(i)).encode()
                started[i] = time.time()
                writer.write(head + b"Content-Length: %d\r\n\r\n" % len(payload) + payload)
                status, answer = await _response(reader)
                latencies[i] = time.time() - started[i]
                if status != 202:
                    raise RuntimeError(f"POST answered {status}: {answer[:300]!r}")
        finally:
            writer.close()

    begin = time.perf_counter()
    await asyncio.gather(*(one_client() for _ in range(concurrency)))
    return started, latencies, time.perf_counter() - begin


async def _response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """(status, body) of one HTTP/1.1 response with a Content-Length (what uvicorn sends)."""
    headers = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in headers.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return int(headers.split(b" ", 2)[1]), await reader.readexactly(length)
