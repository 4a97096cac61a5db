"""`envoi import-failed-jobs`: the original NestJS system's dead letters copied into envoi's table.

Reads the original's `failed_jobs` (camelCase columns, `jobData` as text) from `--from-schema` of its
database (`--from-url`; DATABASE_URL when not given, envoi's tables then living in DATABASE_SCHEMA beside
it) and inserts each row once into envoi's `failed_jobs` (see `envoi.dead_letters.imports`). Safe to run
again: rows already imported are counted, not copied. Redis is asked for bullmq's failed set (so that the
reconciler and the import name each failure the same way) unless QUEUE_ENABLED=false.

Exit codes: 0 done (or nothing to do); 1 failed, nothing written (envoi's database behind its
migrations, a database or Redis unreachable, the original's table missing or not shaped as expected);
2 usage (a bad option, envoi's own table named as the source).
"""

from __future__ import annotations

import asyncio
import re
from typing import Annotated, NoReturn

import typer
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from envoi.cli.common import EXIT_FAILURE, EXIT_USAGE, configure_logging, settings_or_exit
from envoi.config import SCHEMA_NAME_PATTERN, Settings
from envoi.db.migrate import pending_message
from envoi.db.session import Database, normalize_url
from envoi.dead_letters.imports import ImportReport, ImportSourceError, OriginalFailedJobs
from envoi.errors import ConfigError, QueueUnavailableError
from envoi.queue.jobs import HandlerRegistry
from envoi.runtime import Envoi

FromSchema = Annotated[str, typer.Option("--from-schema", help="Schema of the original's failed_jobs table")]
FromUrl = Annotated[
    str | None, typer.Option("--from-url", help="The original's PostgreSQL database (default: DATABASE_URL)")
]
DryRun = Annotated[bool, typer.Option("--dry-run", help="Count what would be imported; write nothing")]


def import_failed_jobs(
    from_schema: FromSchema = "public", from_url: FromUrl = None, dry_run: DryRun = False
) -> None:
    """Copy the original NestJS system's dead letters (its failed_jobs table) into envoi's."""
    configure_logging("WARNING")
    settings = settings_or_exit()
    if re.fullmatch(SCHEMA_NAME_PATTERN, from_schema) is None:
        raise typer.BadParameter(f"not a schema name: {from_schema!r}", param_hint="--from-schema")
    source_url = from_url or settings.database_url
    try:
        normalize_url(source_url, asynchronous=True)
    except (ArgumentError, ValueError):
        raise typer.BadParameter("not a postgresql:// URL", param_hint="--from-url") from None
    try:
        behind = pending_message(settings.database_url, schema=settings.database_schema)
        if behind:
            _fail(behind)
        report = asyncio.run(_import(settings, source_url, from_schema, dry_run))
    except ConfigError as exc:
        typer.echo(f"envoi: {exc}", err=True)
        raise typer.Exit(EXIT_USAGE) from None
    except ImportSourceError as exc:
        _fail(f"{exc}; nothing imported")
    except QueueUnavailableError:
        _fail(
            "Redis unreachable: it is asked for bullmq's failed set, so that the reconciler does not record "
            "the same failures again; nothing imported (QUEUE_ENABLED=false skips it)"
        )
    except SQLAlchemyError as exc:
        # The class only: the message may hold the URL or row values.
        _fail(f"database error ({type(exc).__name__}); nothing imported")
    _print(report)


async def _import(settings: Settings, source_url: str, schema: str, dry_run: bool) -> ImportReport:
    # An empty registry: the import sends nothing, so no channel is built.
    envoi = Envoi(settings, registry=HandlerRegistry())
    source = Database(source_url)
    try:
        importer = OriginalFailedJobs(
            db=envoi.db,
            source=source,
            schema=schema,
            failed_set=envoi.queue.failed_set if envoi.queue.enabled else None,
        )
        return await importer.run(dry_run=dry_run)
    finally:
        await source.dispose()
        await envoi.close()


def _fail(message: str) -> NoReturn:
    typer.echo(f"envoi: {message}", err=True)
    raise typer.Exit(EXIT_FAILURE)


def _print(report: ImportReport) -> None:
    verb = "would be imported" if report.dry_run else "imported"
    typer.echo(
        f"{report.source}: {report.read} read, {report.imported} {verb}, "
        f"{report.already_present} already in envoi"
    )
    if report.kept_as_text:
        typer.echo(f"{report.kept_as_text} with jobData that is not JSON: kept as text")
    if report.matched_in_redis:
        typer.echo(f"{report.matched_in_redis} still in bullmq's failed set: recorded with its finishedOn")
    if report.dry_run:
        typer.echo("Dry run: nothing written.")
