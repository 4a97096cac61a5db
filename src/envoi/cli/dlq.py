"""`envoi dlq ...`: list, show, retry, delete and count dead letters.

Tables for people, `--json` for scripts. Recipients are masked (in payloads, error text and stack
traces) unless `--reveal`. Exit codes: 0 done, 1 an id was not found, could not be retried or ran
inline and failed again (or the database is behind), 2 bad arguments. Only `retry` talks to Redis; the
other commands need the database alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

import typer
from rich.table import Table
from rich.text import Text

from envoi.cli.common import EXIT_FAILURE, settings_or_exit
from envoi.cli.output import (
    dead_letter_details,
    first_line,
    page_table,
    print_json,
    progress,
    stderr,
    stdout,
)
from envoi.db.migrate import pending_message
from envoi.db.models import FailedJob
from envoi.db.session import Database
from envoi.dead_letters.service import (
    MAX_LIMIT,
    FailedJobFilters,
    FailedJobNotFoundError,
    FailedJobNotRetryableError,
    FailedJobService,
    RetryOutcome,
    parse_status,
    row_as_dict,
)
from envoi.masking import mask_text
from envoi.runtime import Envoi

app = typer.Typer(help="Dead letters: jobs that failed for the last time.", no_args_is_help=True)

T = TypeVar("T")

QueueOpt = Annotated[str | None, typer.Option("--queue", "-q", help="Only this queue")]
JobNameOpt = Annotated[str | None, typer.Option("--job-name", "-n", help="Only this job name")]
StatusOpt = Annotated[str | None, typer.Option("--status", "-s", help="FAILED, RETRIED or RESOLVED")]
SearchOpt = Annotated[str | None, typer.Option(help="A substring of the error, or a job id")]
SinceOpt = Annotated[str | None, typer.Option(help="Recorded at or after (ISO 8601; UTC if no offset)")]
UntilOpt = Annotated[str | None, typer.Option(help="Recorded before (ISO 8601; UTC if no offset)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output")]
RevealOpt = Annotated[bool, typer.Option("--reveal", help="Show recipients unmasked")]


def _date(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"not an ISO 8601 date: {value!r}", param_hint=name) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _filters(
    queue: str | None,
    job_name: str | None,
    status: str | None,
    search: str | None = None,
    since: str | None = None,
    until: str | None = None,
) -> FailedJobFilters:
    try:
        parsed = parse_status(status)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--status") from None
    return FailedJobFilters(
        queue_name=queue,
        job_name=job_name,
        status=parsed,
        search=search,
        since=_date(since, "--since"),
        until=_date(until, "--until"),
    )


def _run(work: Callable[[FailedJobService], Awaitable[T]], *, with_queue: bool = False) -> T:
    """Run `work` with a service over DATABASE_URL (with the queue and handlers too, for retries: an
    `Envoi`); exit 1 if the database is not migrated."""
    settings = settings_or_exit()
    behind = pending_message(settings.database_url, schema=settings.database_schema)
    if behind:
        stderr().print(f"envoi: {behind}")
        raise typer.Exit(EXIT_FAILURE)

    async def main() -> T:
        if with_queue:
            envoi = Envoi(settings)
            try:
                return await work(envoi.dead_letters)
            finally:
                await envoi.close()
        db = Database(settings.database_url, schema=settings.database_schema)
        try:
            return await work(FailedJobService(db=db))
        finally:
            await db.dispose()

    return asyncio.run(main())


@app.command("list")
def list_(
    queue: QueueOpt = None,
    job_name: JobNameOpt = None,
    status: StatusOpt = None,
    search: SearchOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    limit: Annotated[int, typer.Option(min=1, max=MAX_LIMIT, help="Rows per page")] = 50,
    cursor: Annotated[str | None, typer.Option(help="next_cursor of the previous page")] = None,
    as_json: JsonOpt = False,
    reveal: RevealOpt = False,
) -> None:
    """List dead letters, newest first."""
    filters = _filters(queue, job_name, status, search, since, until)

    async def work(service: FailedJobService) -> Any:
        try:
            return await service.page(filters, limit=limit, cursor=cursor)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--cursor") from None

    page = _run(work)
    if as_json:
        items = [row_as_dict(row, reveal=reveal) for row in page.items]
        print_json({"items": items, "next_cursor": page.next_cursor})
        return
    console = stdout()
    if not page.items:
        console.print("No dead letters.")
        return
    console.print(page_table(page.items, width=console.width, reveal=reveal))
    if page.next_cursor:
        console.print(f"More: envoi dlq list --cursor {page.next_cursor} (same filters)")


@app.command()
def show(
    id: Annotated[str, typer.Argument(help="Dead letter id")],
    as_json: JsonOpt = False,
    reveal: RevealOpt = False,
) -> None:
    """Show one dead letter: payload, options, error and stack traces (recipients masked)."""

    async def work(service: FailedJobService) -> FailedJob | None:
        return await service.get(id)

    row = _run(work)
    if row is None:
        stderr().print(f"envoi: no dead letter with id {id}", markup=False)
        raise typer.Exit(EXIT_FAILURE)
    if as_json:
        print_json(row_as_dict(row, reveal=reveal))
        return
    dead_letter_details(row, reveal=reveal)


def _ids_or_all(ids: list[str] | None, all_: bool) -> list[str]:
    if ids and all_:
        raise typer.BadParameter("give ids or --all, not both", param_hint="--all")
    if not ids and not all_:
        raise typer.BadParameter("give at least one id, or --all with filters", param_hint="IDS")
    return ids or []


def _failed_again(outcome: RetryOutcome) -> str:
    """The line for a retry that ran inline and failed again (its error masked, as in `list`)."""
    message = f"{outcome.row.id} ran inline and failed again"
    new = outcome.new_dead_letter
    if new is None:
        return message + " (no new dead letter could be found; see the log)"
    return f"{message}: new dead letter {new.id} ({first_line(mask_text(new.error_message), 100)})"


@app.command()
def retry(
    ids: Annotated[list[str] | None, typer.Argument(help="Dead letter ids", show_default=False)] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every FAILED row matching the filters")] = False,
    queue: QueueOpt = None,
    job_name: JobNameOpt = None,
    status: StatusOpt = None,
    search: SearchOpt = None,
    force: Annotated[
        bool, typer.Option(help="Enqueue a RETRIED row again (same job id; after a crash mid-retry)")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Enqueue jobs again (fresh job id and attempts, same name, data and options).

    Without a queue (QUEUE_ENABLED=false, Redis down) jobs run now; one that fails again exits 1.
    """
    chosen = _ids_or_all(ids, all_)
    filters = _filters(queue, job_name, status, search)
    if chosen and not filters.is_empty:
        raise typer.BadParameter("filters go with --all", param_hint="--queue/--job-name/--status")

    async def work(service: FailedJobService) -> tuple[int, list[dict[str, str]], list[str]]:
        done: list[dict[str, str]] = []
        failed: list[str] = []
        if all_:
            with progress(await service.count(filters), "Retrying") as advance:
                bulk = await service.retry_many(filters, progress=advance)
            failed += [_failed_again(outcome) for outcome in bulk.failures]
            if bulk.failed_again > len(bulk.failures):
                failed.append(f"{bulk.failed_again - len(bulk.failures)} more ran inline and failed again")
            return bulk.queued + bulk.delivered, done, failed
        for row_id in chosen:
            try:
                outcome = await service.retry(row_id, force=force)
            except (FailedJobNotFoundError, FailedJobNotRetryableError, ValueError) as exc:
                failed.append(f"{row_id}: {exc}" if isinstance(exc, ValueError) else str(exc))
                continue
            if outcome.failed_again:
                failed.append(_failed_again(outcome))
                continue
            done.append(
                {
                    "id": outcome.row.id,
                    "retried_job_id": outcome.enqueued.job_id,
                    "mode": outcome.enqueued.mode,
                    "result": outcome.result,
                }
            )
        return len(done), done, failed

    count, done, failed = _run(work, with_queue=True)
    if as_json:
        print_json({"retried": count, "rows": done, "errors": failed})
    else:
        console = stdout()
        for item in done:
            if item["result"] == "queued":
                console.print(f"Retried {item['id']}: queued as job {item['retried_job_id']}", markup=False)
            else:
                console.print(f"Retried {item['id']}: ran inline: delivered", markup=False)
        if all_:
            console.print(f"Retried {count} dead letter(s).")
        errors = stderr()
        for message in failed:
            errors.print(f"envoi: {message}", markup=False)
    if failed:
        raise typer.Exit(EXIT_FAILURE)


@app.command()
def delete(
    ids: Annotated[list[str] | None, typer.Argument(help="Dead letter ids", show_default=False)] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every row matching the filters")] = False,
    queue: QueueOpt = None,
    job_name: JobNameOpt = None,
    status: StatusOpt = None,
    search: SearchOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Delete dead letters (asks first, unless --yes)."""
    chosen = _ids_or_all(ids, all_)
    filters = _filters(queue, job_name, status, search, since, until)
    if chosen and not filters.is_empty:
        raise typer.BadParameter("filters go with --all", param_hint="--queue/--job-name/--status")

    async def count(service: FailedJobService) -> int:
        return await service.count(filters)

    total = _run(count) if all_ else len(chosen)
    if total == 0:
        _report_deleted(0, [], as_json)
        return
    if not yes:
        what = f"{total} dead letter(s)" + ("" if filters.is_empty else " matching the filters")
        typer.confirm(f"Delete {what}?", abort=True)

    async def work(service: FailedJobService) -> tuple[int, list[str]]:
        if all_:
            with progress(total, "Deleting") as advance:
                return await service.delete_many(filters, progress=advance), []
        deleted, missing = 0, []
        for row_id in chosen:
            if await service.delete(row_id):
                deleted += 1
            else:
                missing.append(row_id)
        return deleted, missing

    deleted, missing = _run(work)
    _report_deleted(deleted, missing, as_json)
    if missing:
        raise typer.Exit(EXIT_FAILURE)


def _report_deleted(deleted: int, missing: list[str], as_json: bool) -> None:
    if as_json:
        print_json({"deleted": deleted, "not_found": missing})
        return
    stdout().print(f"Deleted {deleted} dead letter(s).")
    errors = stderr()
    for row_id in missing:
        errors.print(f"envoi: no dead letter with id {row_id}", markup=False)


@app.command()
def stats(as_json: JsonOpt = False) -> None:
    """Count dead letters by queue, job name and status."""

    async def work(service: FailedJobService) -> Any:
        return await service.stats()

    result = _run(work)
    if as_json:
        print_json(
            {
                "total": result.total,
                "by_queue": result.by_queue,
                "by_job_name": result.by_job_name,
                "by_status": result.by_status,
            }
        )
        return
    console = stdout()
    console.print(f"Dead letters: {result.total}")
    for title, counts in (
        ("Queue", result.by_queue),
        ("Job name", result.by_job_name),
        ("Status", result.by_status),
    ):
        table = Table(title, "Count")
        for key, value in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
            table.add_row(Text(key), str(value))
        console.print(table)
