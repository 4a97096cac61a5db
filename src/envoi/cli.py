"""The `envoi` command: api, worker, dev, migrate, dlq. Exit codes: 0 ok, 1 failure, 2 bad arguments/config."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from envoi.config import Settings, load_settings
from envoi.dead_letters.cli import app as dlq_app
from envoi.errors import ConfigError

app = typer.Typer(help="envoi: background delivery of email, SMS, WhatsApp and in-app notifications.")
app.add_typer(dlq_app, name="dlq")

log = logging.getLogger("envoi")


def configure_logging(level: str = "INFO") -> None:
    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", level).upper(),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    # httpx logs every request URL at INFO, and Twilio's URLs carry the account SID.
    logging.getLogger("httpx").setLevel(logging.WARNING)


def settings_or_exit(**overrides: object) -> Settings:
    try:
        return load_settings(**overrides)
    except ConfigError as exc:
        typer.echo(f"envoi: {exc}", err=True)
        raise typer.Exit(2) from None


@app.command()
def migrate() -> None:
    """Apply every database migration (DATABASE_URL)."""
    from envoi.db.migrate import upgrade

    configure_logging()
    settings = settings_or_exit()
    upgrade(settings.database_url)
    typer.echo("Database is up to date.")


@app.command()
def worker(
    concurrency: Annotated[int | None, typer.Option(min=1, help="Jobs run at once")] = None,
    queue: Annotated[list[str] | None, typer.Option(help="Queue to work (repeatable)")] = None,
    health: Annotated[
        bool,
        typer.Option("--health", help="Exit 0 if a worker on this host is alive (its heartbeat), else 1"),
    ] = False,
) -> None:
    """Process jobs until SIGTERM/SIGINT (running jobs get WORKER_SHUTDOWN_TIMEOUT_S to finish; a second
    signal exits at once)."""
    from envoi import shutdown
    from envoi.errors import QueueUnavailableError
    from envoi.queue.heartbeat import health as worker_health
    from envoi.queue.names import NOTIFICATIONS_QUEUE, QUEUE_NAMES
    from envoi.runtime import Envoi
    from envoi.worker import LEAVE_S, Worker

    configure_logging()
    settings = settings_or_exit()
    if health:
        code, lines = asyncio.run(worker_health(settings))
        for line in lines:
            typer.echo(line, err=code != 0)
        raise typer.Exit(code)
    queues = queue or [NOTIFICATIONS_QUEUE]
    unknown = sorted(set(queues) - set(QUEUE_NAMES))
    if unknown:
        typer.echo(f"envoi: unknown queue {', '.join(unknown)}; expected {', '.join(QUEUE_NAMES)}", err=True)
        raise typer.Exit(2)
    if not settings.queue_enabled:
        typer.echo("envoi: QUEUE_ENABLED=false: there is no queue to work (jobs run inline)", err=True)
        raise typer.Exit(2)

    if settings.worker_metrics_port:
        from prometheus_client import start_http_server

        # The worker's counters live in its own process: it serves them itself (the API's /metrics
        # shows the API's counters and the queue and dead-letter gauges).
        start_http_server(settings.worker_metrics_port, addr=settings.worker_metrics_host)
        log.info(
            "Worker metrics on http://%s:%d/metrics",
            settings.worker_metrics_host,
            settings.worker_metrics_port,
        )

    async def main() -> None:
        envoi = Envoi(settings)
        try:
            await Worker(envoi, queues=queues, concurrency=concurrency).run_until_signalled()
        finally:
            await envoi.close()
            await shutdown.leave(LEAVE_S)

    try:
        asyncio.run(main())
    except QueueUnavailableError as exc:
        typer.echo(f"envoi: {exc}", err=True)
        raise typer.Exit(1) from None


@app.command()
def api(
    host: Annotated[str | None, typer.Option(help="Address to bind (ENVOI_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="Port (ENVOI_PORT)")] = None,
) -> None:
    """Serve the HTTP API. It enqueues and reads; it never processes jobs."""
    import uvicorn

    from envoi.api.app import create_app
    from envoi.db.migrate import pending_message

    configure_logging()
    # /readyz checks the revision on every probe: alembic's two INFO lines each time are noise.
    logging.getLogger("alembic.runtime.migration").setLevel(logging.WARNING)
    settings = settings_or_exit()
    bind = host or settings.envoi_host
    missing = [
        name
        for name, value in (
            ("ENVOI_API_KEY", settings.envoi_api_key),
            ("ENVOI_ADMIN_TOKEN", settings.envoi_admin_token),
        )
        if value is None
    ]
    if missing and bind != "127.0.0.1":
        typer.echo(
            f"envoi: {' and '.join(missing)} not set: refusing to serve an open API on {bind}; "
            "set them, or bind to 127.0.0.1 (--host 127.0.0.1)",
            err=True,
        )
        raise typer.Exit(2)
    try:
        behind = pending_message(settings.database_url)
    except Exception as exc:
        behind = f"Database unreachable ({type(exc).__name__}): check DATABASE_URL."
    if behind is not None:
        typer.echo(f"envoi: {behind}", err=True)
        raise typer.Exit(2)
    uvicorn.run(
        create_app(),
        host=bind,
        port=port or settings.envoi_port,
        log_level="info",
        proxy_headers=False,
    )


def _wait_healthy(url: str, processes: list[subprocess.Popen[bytes]], timeout: float = 60) -> bool:
    import httpx

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


@app.command()
def dev(
    port: Annotated[int | None, typer.Option(help="API port (ENVOI_PORT, default 8000)")] = None,
) -> None:
    """Migrate, then run the API and a worker on embedded defaults (SQLite, a private Redis) until Ctrl-C."""
    from envoi.db.migrate import upgrade
    from envoi.embedded_redis import EmbeddedRedis

    configure_logging()
    env = dict(os.environ)
    env.setdefault("EMAIL_PROVIDER", "console")
    if port:
        env["ENVOI_PORT"] = str(port)
    os.environ.update(env)
    settings = settings_or_exit()
    upgrade(settings.database_url)

    redis: EmbeddedRedis | None = None
    if not (env.get("REDIS_URL") or env.get("REDIS_HOST")) and settings.queue_enabled:
        redis = EmbeddedRedis(Path("var/redis"), persist=True)
        env["REDIS_URL"] = redis.start()
        typer.echo(f"Started a private redis-server on {env['REDIS_URL']} (append-only file in var/redis/)")
    env.update(_dev_tokens(settings))

    processes = [subprocess.Popen([sys.executable, "-m", "envoi", "api"], env=env)]
    if settings.queue_enabled:
        processes.append(subprocess.Popen([sys.executable, "-m", "envoi", "worker"], env=env))
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


def _dev_tokens(settings: Settings) -> dict[str, str]:
    """Local-only tokens for `make dev`, generated once and kept under var/ so they survive restarts."""
    import secrets

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


def main() -> None:
    try:
        app()
    except ConfigError as exc:
        typer.echo(f"envoi: {exc}", err=True)
        sys.exit(2)
