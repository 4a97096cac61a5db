"""`envoi migrate`, `envoi worker`, `envoi api`: the long-running processes and their set-up."""

from __future__ import annotations

import asyncio
import copy
import logging
import os
from typing import Annotated

import typer
from prometheus_client import start_http_server

from envoi import shutdown
from envoi.cli.common import EXIT_USAGE, configure_logging, log_level, settings_or_exit
from envoi.cli.supervisor import supervise, worker_argv
from envoi.config import Settings
from envoi.db.migrate import pending_message, upgrade
from envoi.errors import ConfigError
from envoi.masking import MaskingFilter
from envoi.queue.heartbeat import health as worker_health
from envoi.queue.names import NOTIFICATIONS_QUEUE, QUEUE_NAMES
from envoi.runtime import Envoi, import_job_modules
from envoi.worker import LEAVE_S, Worker

log = logging.getLogger("envoi")


def migrate() -> None:
    """Apply every database migration (DATABASE_URL; in DATABASE_SCHEMA when set)."""
    configure_logging()
    settings = settings_or_exit()
    upgrade(settings.database_url, schema=settings.database_schema)
    typer.echo("Database is up to date.")


JobsOption = Annotated[
    list[str] | None,
    typer.Option(
        "--jobs",
        help="Module declaring your @job jobs, e.g. myapp.jobs (repeatable or comma-separated; adds to ENVOI_JOBS)",
    ),
]


def import_jobs_or_exit(settings: Settings, jobs: list[str] | None) -> None:
    """Import ENVOI_JOBS and --jobs before anything is built, so that `Envoi` registers their @job jobs;
    a module that fails to import is one line and exit 2."""
    given = [part.strip() for option in jobs or () for part in option.split(",") if part.strip()]
    try:
        declared = import_job_modules(dict.fromkeys([*settings.envoi_jobs, *given]))
    except ConfigError as exc:
        typer.echo(f"envoi: {exc}", err=True)
        raise typer.Exit(EXIT_USAGE) from None
    if declared:
        log.info("Application jobs: %s", ", ".join(declared))


def worker(
    concurrency: Annotated[int | None, typer.Option(min=1, help="Jobs run at once")] = None,
    queue: Annotated[list[str] | None, typer.Option(help="Queue to work (repeatable)")] = None,
    jobs: JobsOption = None,
    health: Annotated[
        bool,
        typer.Option("--health", help="Exit 0 if a worker on this host is alive (its heartbeat), else 1"),
    ] = False,
    processes: Annotated[
        int | None,
        typer.Option(
            "--processes",
            min=1,
            help="Worker processes under one supervisor, which starts a dead one again and forwards "
            "SIGTERM/SIGINT (without it: this process is the worker)",
        ),
    ] = None,
) -> None:
    """Process jobs until SIGTERM/SIGINT (running jobs get WORKER_SHUTDOWN_TIMEOUT_S to finish; a second
    signal exits at once). With --processes N, N such processes under a supervisor: the command exits 1
    if one of them could not stop in time."""
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
        raise typer.Exit(EXIT_USAGE)
    if not settings.queue_enabled:
        typer.echo("envoi: QUEUE_ENABLED=false: there is no queue to work (jobs run inline)", err=True)
        raise typer.Exit(EXIT_USAGE)
    import_jobs_or_exit(settings, jobs)
    if processes is not None:
        # Checked here once (settings, queues, job modules), not N times in a restart loop.
        argv = worker_argv(concurrency=concurrency, queues=queue or (), jobs=jobs or ())
        raise typer.Exit(supervise(settings, argv, processes))

    if settings.worker_metrics_port:
        # The worker's counters live in its own process: it serves them itself (the API's /metrics
        # shows the API's counters and the queue and dead-letter gauges).
        start_http_server(settings.worker_metrics_port, addr=settings.worker_metrics_host)
        log.info(
            "Worker metrics on http://%s:%d/metrics",
            settings.worker_metrics_host,
            settings.worker_metrics_port,
        )

    if concurrency is not None:  # the worker's concurrency, and the size of its database pools
        settings = settings.model_copy(update={"worker_concurrency": concurrency})

    async def main() -> None:
        envoi = Envoi(settings)
        try:
            await Worker(envoi, queues=queues).run_until_signalled()
        finally:
            await envoi.close()
            await shutdown.leave(LEAVE_S)

    # A Redis that does not answer at start is one line and exit 1 (`envoi.cli.support.run`).
    asyncio.run(main())


def api(
    host: Annotated[str | None, typer.Option(help="Address to bind (ENVOI_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="Port (ENVOI_PORT)")] = None,
    jobs: JobsOption = None,
) -> None:
    """Serve the HTTP API. It enqueues and reads; it never processes jobs (except inline, Redis down)."""
    # Imported here, not at the top: uvicorn, FastAPI and every route are heavy, and the other commands
    # (a worker above all, which runs for days) have no use for them.
    import uvicorn

    from envoi.api.app import create_app

    configure_logging()
    # /readyz checks the revision on every probe: alembic's two INFO lines each time are noise.
    logging.getLogger("alembic.runtime.migration").setLevel(logging.WARNING)
    if host:
        # --host is ENVOI_HOST for this process: the app reads its settings again, and the address it
        # is bound to belongs in its allowed hosts.
        os.environ["ENVOI_HOST"] = host
    settings = settings_or_exit()
    bind = settings.envoi_host
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
        raise typer.Exit(EXIT_USAGE)
    import_jobs_or_exit(settings, jobs)
    try:
        behind = pending_message(settings.database_url, schema=settings.database_schema)
    except Exception as exc:
        behind = f"Database unreachable ({type(exc).__name__}): check DATABASE_URL."
    if behind is not None:
        typer.echo(f"envoi: {behind}", err=True)
        raise typer.Exit(EXIT_USAGE)
    # uvicorn's own handlers (its access log shows paths, which may name a recipient) mask as envoi's do.
    log_config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    log_config["filters"] = {"mask": {"()": MaskingFilter}}
    for handler in log_config["handlers"].values():
        handler["filters"] = ["mask"]
    uvicorn.run(
        create_app(),
        host=bind,
        port=port or settings.envoi_port,
        # LOG_LEVEL=WARNING also silences the access log (a line per request, INFO).
        log_level=log_level().lower(),
        log_config=log_config,
        proxy_headers=False,
    )
