"""`envoi dlq ...`: list, show, retry, delete and count dead letters.

Tables for people, `--json` for scripts. Recipients in payloads are masked unless `--reveal`.
Exit codes: 0 done, 1 an id was not found (or could not be retried, or the database is behind),
2 bad arguments. Only `retry` talks to Redis; the other commands need the database alone.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

import typer
from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from envoi.db.models import FailedJob
from envoi.dead_letters.service import (
    MAX_LIMIT,
    FailedJobFilters,
    FailedJobNotFoundError,
    FailedJobNotRetryableError,
    FailedJobService,
    parse_status,
    row_as_dict,
)

app = typer.Typer(help="Dead letters: jobs that failed for the last time.", no_args_is_help=True)
console = Console(highlight=False)
errors = Console(stderr=True, highlight=False)

T = TypeVar("T")

#: Bulk operations over more rows than this show a progress bar (on a terminal).
PROGRESS_FROM = 500

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
    """Run `work` with a service over DATABASE_URL (and an Envoi, for retries); exit 1 if not migrated."""
    from envoi.cli import settings_or_exit
    from envoi.db.migrate import pending_message
    from envoi.db.session import Database

    settings = settings_or_exit()
    behind = pending_message(settings.database_url)
    if behind:
        errors.print(f"envoi: {behind}")
        raise typer.Exit(1)

    async def main() -> T:
        if with_queue:
            from envoi.runtime import Envoi

            envoi = Envoi(settings)
            try:
                return await work(FailedJobService(envoi))
            finally:
                await envoi.close()
        db = Database(settings.database_url)
        try:
            return await work(FailedJobService(db=db))
        finally:
            await db.dispose()

    return asyncio.run(main())


def _print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False, default=str) + "\n")


def _failed_at(row: FailedJob) -> str:
    if row.finished_on:
        return datetime.fromtimestamp(row.finished_on / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
    return row.created_at.strftime("%Y-%m-%d %H:%M:%S")


def _short(text: str, width: int = 60) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= width else line[: width - 1] + "…"


@contextmanager
def _progress(total: int, label: str) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr for bulk operations over many rows; silent otherwise."""
    shown = total > PROGRESS_FROM and errors.is_terminal
    with Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=errors,
        disable=not shown,
        transient=True,
    ) as progress:
        task = progress.add_task(label, total=total)
        yield lambda n: progress.advance(task, n)


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
        _print_json({"items": items, "next_cursor": page.next_cursor})
        return
    if not page.items:
        console.print("No dead letters.")
        return
    console.print(_page_table(page.items, wide=console.width >= 120))
    if page.next_cursor:
        console.print(f"More: envoi dlq list --cursor {page.next_cursor} (same filters)")


def _page_table(rows: list[FailedJob], *, wide: bool) -> Table:
    """The id is what every other command takes: it is never cut. On a narrow terminal the queue and
    the tries go, and the error gives way first."""
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("ID", no_wrap=True, min_width=26)
    table.add_column("Failed (UTC)", no_wrap=True)
    if wide:
        table.add_column("Queue", no_wrap=True)
    table.add_column("Job", no_wrap=True, overflow="ellipsis", max_width=26)
    if wide:
        table.add_column("Tries", justify="right")
    table.add_column("Status", no_wrap=True)
    table.add_column("Error", no_wrap=True, overflow="ellipsis", ratio=1)
    for row in rows:
        failed = _failed_at(row)
        cells = [row.id, failed[:16] if wide else failed[5:16], row.queue_name, row.job_name]
        cells += [str(row.attempts_made), row.status, _short(row.error_message, 120)]
        if not wide:
            del cells[4], cells[2]
        table.add_row(*cells)
    return table


@app.command()
def show(
    id: Annotated[str, typer.Argument(help="Dead letter id")],
    as_json: JsonOpt = False,
    reveal: RevealOpt = False,
) -> None:
    """Show one dead letter: payload (recipients masked), options, error and stack traces."""

    async def work(service: FailedJobService) -> FailedJob | None:
        return await service.get(id)

    row = _run(work)
    if row is None:
        errors.print(f"envoi: no dead letter with id {id}")
        raise typer.Exit(1)
    data = row_as_dict(row, reveal=reveal)
    if as_json:
        _print_json(data)
        return
    table = Table(show_header=False, box=None)
    for key in ("id", "queue_name", "job_name", "job_id", "status", "retried_job_id", "attempts_made"):
        table.add_row(key, str(data[key]) if data[key] is not None else "-")
    table.add_row("failed_at", _failed_at(row) + " UTC")
    table.add_row("error", row.error_message)
    console.print(table)
    console.print("job_data:", json.dumps(data["job_data"], indent=2, ensure_ascii=False), markup=False)
    console.print("job_options:", json.dumps(data["job_options"], indent=2), markup=False)
    if row.stacktrace:
        console.print("last stack trace:\n" + row.stacktrace[-1], markup=False)


def _ids_or_all(ids: list[str] | None, all_: bool) -> list[str]:
    if ids and all_:
        raise typer.BadParameter("give ids or --all, not both", param_hint="--all")
    if not ids and not all_:
        raise typer.BadParameter("give at least one id, or --all with filters", param_hint="IDS")
    return ids or []


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
    """Enqueue jobs again (fresh job id and attempts, same name, data and options)."""
    chosen = _ids_or_all(ids, all_)
    filters = _filters(queue, job_name, status, search)
    if chosen and not filters.is_empty:
        raise typer.BadParameter("filters go with --all", param_hint="--queue/--job-name/--status")

    async def work(service: FailedJobService) -> tuple[int, list[dict[str, str]], list[str]]:
        done: list[dict[str, str]] = []
        failed: list[str] = []
        if all_:
            with _progress(await service.count(filters), "Retrying") as advance:
                return await service.retry_many(filters, progress=advance), done, failed
        for row_id in chosen:
            try:
                row = await service.retry(row_id, force=force)
            except (FailedJobNotFoundError, FailedJobNotRetryableError, ValueError) as exc:
                failed.append(f"{row_id}: {exc}" if isinstance(exc, ValueError) else str(exc))
                continue
            done.append({"id": row.id, "retried_job_id": row.retried_job_id or ""})
        return len(done), done, failed

    count, done, failed = _run(work, with_queue=True)
    if as_json:
        _print_json({"retried": count, "rows": done, "errors": failed})
    else:
        for item in done:
            console.print(f"Retried {item['id']} as job {item['retried_job_id']}")
        if all_:
            console.print(f"Retried {count} dead letter(s).")
        for message in failed:
            errors.print(f"envoi: {message}")
    if failed:
        raise typer.Exit(1)


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
            with _progress(total, "Deleting") as advance:
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
        raise typer.Exit(1)


def _report_deleted(deleted: int, missing: list[str], as_json: bool) -> None:
    if as_json:
        _print_json({"deleted": deleted, "not_found": missing})
        return
    console.print(f"Deleted {deleted} dead letter(s).")
    for row_id in missing:
        errors.print(f"envoi: no dead letter with id {row_id}")


@app.command()
def stats(as_json: JsonOpt = False) -> None:
    """Count dead letters by queue, job name and status."""

    async def work(service: FailedJobService) -> Any:
        return await service.stats()

    result = _run(work)
    if as_json:
        _print_json(
            {
                "total": result.total,
                "by_queue": result.by_queue,
                "by_job_name": result.by_job_name,
                "by_status": result.by_status,
            }
        )
        return
    console.print(f"Dead letters: {result.total}")
    for title, counts in (
        ("Queue", result.by_queue),
        ("Job name", result.by_job_name),
        ("Status", result.by_status),
    ):
        table = Table(title, "Count")
        for key, value in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
            table.add_row(key, str(value))
        console.print(table)
