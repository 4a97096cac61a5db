"""`envoi dev`: migrate, then an API and a worker on embedded defaults, in child processes."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import httpx
import typer

from envoi.cli.common import configure_logging, settings_or_exit
from envoi.config import Settings, TextProvider
from envoi.db.migrate import upgrade
from envoi.devenv import absolute_sqlite_url, write_dev_env
from envoi.embedded_redis import EmbeddedRedis
from envoi.queue.names import QUEUE_NAMES


def dev(
    port: Annotated[int | None, typer.Option(help="API port (ENVOI_PORT, default 8000)")] = None,
) -> None:
    """Migrate, then run the API and a worker on embedded defaults (SQLite, a private Redis) until Ctrl-C."""
    configure_logging()
    env = dict(os.environ)
    env.setdefault("EMAIL_PROVIDER", "console")
    # Every channel has a development outbox: nothing is sent, nothing is silently dropped.
    env.setdefault("SMS_PROVIDER", TextProvider.CONSOLE.value)
    env.setdefault("WHATSAPP_PROVIDER", TextProvider.CONSOLE.value)
    if port:
        env["ENVOI_PORT"] = str(port)
    os.environ.update(env)
    settings = settings_or_exit()
    upgrade(settings.database_url, schema=settings.database_schema)

    redis: EmbeddedRedis | None = None
    if not (env.get("REDIS_URL") or env.get("REDIS_HOST")) and settings.queue_enabled:
        redis = EmbeddedRedis(Path("var/redis"), persist=True)
        env["REDIS_URL"] = redis.start()
        typer.echo(f"Started a private redis-server on {env['REDIS_URL']} (append-only file in var/redis/)")
    env.update(_dev_tokens(settings))
    # Where this instance is, for every other `envoi` command run in this folder or below.
    dev_env = write_dev_env(
        Path.cwd(),
        {
            "REDIS_URL": env.get("REDIS_URL"),
            "DATABASE_URL": absolute_sqlite_url(settings.database_url, Path.cwd()),
            "REDIS_PREFIX": env.get("REDIS_PREFIX"),
        },
    )
    typer.echo(f"Addresses written to {dev_env}: `envoi jobs list`, `envoi dlq list`... find this instance")

    processes = [subprocess.Popen([sys.executable, "-m", "envoi", "api"], env=env)]
    if settings.queue_enabled:
        # Both queues: notifications, and the outbound webhooks (envoi webhooks create ...).
        queues = [arg for name in QUEUE_NAMES for arg in ("--queue", name)]
        processes.append(subprocess.Popen([sys.executable, "-m", "envoi", "worker", *queues], env=env))
    url = f"http://{settings.envoi_host}:{settings.envoi_port}"
    try:
        if _wait_healthy(url, processes):
            typer.echo(f"\nenvoi is running at {url}  (admin page: {url}/admin, docs: {url}/docs)")
            for name in ("ENVOI_API_KEY", "ENVOI_ADMIN_TOKEN"):
                if name in env:
                    typer.echo(f"  {name}={env[name]}")
            typer.echo("Press Ctrl-C to stop.\n")
        else:
            typer.echo("envoi: the API did not become healthy; see the log above", err=True)
        while all(p.poll() is None for p in processes):
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        for p in processes:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in processes:
            try:
                p.wait(timeout=40)
            except subprocess.TimeoutExpired:
                p.kill()
        if redis is not None:
            redis.stop()
        typer.echo("envoi stopped.")


def _wait_healthy(url: str, processes: list[subprocess.Popen[bytes]], timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in processes):
            return False
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    return False


def _dev_tokens(settings: Settings) -> dict[str, str]:
    """Local-only tokens for `make dev`, generated once and kept under var/ so they survive restarts."""
    tokens: dict[str, str] = {}
    store = Path("var/dev-tokens")
    saved = (
        dict(line.split("=", 1) for line in store.read_text().splitlines() if "=" in line)
        if store.exists()
        else {}
    )
    for name, current in (
        ("ENVOI_API_KEY", settings.envoi_api_key),
        ("ENVOI_ADMIN_TOKEN", settings.envoi_admin_token),
    ):
        if current is None:
            tokens[name] = saved.get(name) or secrets.token_urlsafe(24)
    if tokens:
        store.parent.mkdir(parents=True, exist_ok=True)
        store.write_text("".join(f"{k}={v}\n" for k, v in {**saved, **tokens}.items()))
        store.chmod(0o600)
    return tokens
