"""`envoi jobs list|show|promote|cancel` and `envoi queues pause|resume`: the operations console's HTTP
routes (`envoi.api.routes.queues`) from a terminal, through the same `QueueInspector`.

    envoi jobs list --state delayed            the next reminders due, with their run-at times
    envoi jobs show reminder-apt-1-day-…       one job: state, attempts, data (recipients masked)
    envoi jobs promote reminder-apt-1-day-…    a delayed job runs now
    envoi jobs cancel reminder-apt-1-hour-…    a waiting or delayed job is removed
    envoi queues pause notifications           workers take no new job until `resume`
    envoi jobs add SEND_SMS -f batch.jsonl     many jobs of one name in bulk, one job's data per line

Exit codes: 0 done, 1 no such job, a job in the wrong state, or Redis unreachable; 2 bad arguments (for
`add`: a line that is not JSON, or data the job refuses, each named by its line number; nothing added).
Registered by the lead as `app.add_typer(jobs_app, name="jobs")` and `app.add_typer(queues_app,
name="queues")`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, TextIO, TypeVar

import typer
from rich.table import Table

from envoi.cli.common import EXIT_USAGE
from envoi.cli.output import print_json, stdout
from envoi.cli.serve import JobsOption, import_jobs_or_exit
from envoi.cli.support import fail
from envoi.config import load_settings
from envoi.errors import InvalidJobDataError
from envoi.masking import mask_payload, mask_text
from envoi.queue.base import EnqueueResult
from envoi.queue.inspect import (
    LISTED_STATES,
    JobNotFoundError,
    JobStateError,
    JobView,
    ListedState,
    QueueInspector,
    UnknownQueueError,
)
from envoi.queue.names import NOTIFICATIONS_QUEUE, QUEUE_NAMES
from envoi.runtime import Envoi

T = TypeVar("T")

jobs_app = typer.Typer(
    help="bullmq's jobs in every state: list, show, promote, cancel.", no_args_is_help=True
)
queues_app = typer.Typer(help="Pause or resume a queue for every worker.", no_args_is_help=True)

QueueOpt = Annotated[str, typer.Option("--queue", "-q", help=f"One of {', '.join(QUEUE_NAMES)}")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")]
JobIdArg = Annotated[str, typer.Argument(help="The bullmq job id")]
QueueArg = Annotated[str, typer.Argument(help=f"One of {', '.join(QUEUE_NAMES)}")]


def _inspect(work: Callable[[QueueInspector], Awaitable[T]]) -> T:
    """Run `work` against the configured Redis; a missing job or queue, or a job in the wrong state, is
    one line and exit 1 (`envoi.cli.support.run` handles Redis being unreachable)."""
    settings = load_settings()
    # The breaker's warning speaks of jobs run inline, which looking at jobs never does: when Redis is
    # unreachable the command says so itself, in one line (`envoi.cli.support.run`).
    logging.getLogger("envoi.queue").setLevel(logging.ERROR)
    if not settings.queue_enabled:
        fail("QUEUE_ENABLED=false: there is no queue to look at (jobs run inline)", EXIT_USAGE)

    async def main() -> T:
        envoi = Envoi(settings)
        try:
            return await work(envoi.queue.inspector)
        finally:
            await envoi.close()

    try:
        return asyncio.run(main())
    except (JobNotFoundError, JobStateError) as exc:
        fail(str(exc))
    except UnknownQueueError as exc:
        fail(str(exc), EXIT_USAGE)


def _stamp(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment else "—"


def as_json(view: JobView) -> dict[str, Any]:
    return {
        "id": view.id,
        "queue": view.queue,
        "name": view.name,
        "state": view.state,
        "data": mask_payload(view.data),
        "attemptsMade": view.attempts_made,
        "maxAttempts": view.max_attempts,
        "createdAt": view.created_at.isoformat() if view.created_at else None,
        "runAt": view.run_at.isoformat() if view.run_at else None,
        "finishedAt": view.finished_at.isoformat() if view.finished_at else None,
        "failedReason": mask_text(view.failed_reason) if view.failed_reason else None,
    }


@jobs_app.command("list")
def list_jobs(
    state: Annotated[
        str, typer.Option("--state", "-s", help=f"One of {', '.join(LISTED_STATES)}")
    ] = "waiting",
    queue: QueueOpt = NOTIFICATIONS_QUEUE,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 50,
    json_: JsonOpt = False,
) -> None:
    """Jobs in one state: the next to run first; for completed and failed, the latest first."""
    if state not in LISTED_STATES:
        fail(f"unknown state {state!r}; expected one of {', '.join(LISTED_STATES)}", EXIT_USAGE)
    chosen: ListedState = state  # type: ignore[assignment]  # checked just above
    page = _inspect(lambda inspector: inspector.page(queue, chosen, limit=limit))
    if json_:
        print_json([as_json(view) for view in page.items])
        return
    if not page.items:
        typer.echo(f"No {state} jobs in {queue}.")
        return
    table = Table(show_edge=False, pad_edge=False)
    table.add_column("Id", overflow="fold")
    table.add_column("Job", no_wrap=True)
    table.add_column("Run at" if state == "delayed" else "Created", no_wrap=True)
    table.add_column("Tries", justify="right", no_wrap=True)
    table.add_column("Error", overflow="ellipsis", max_width=40)
    for view in page.items:
        when = view.run_at if state == "delayed" else view.created_at
        error = mask_text(view.failed_reason or "").strip().splitlines()
        tries = f"{view.attempts_made}/{view.max_attempts}"
        table.add_row(view.id, view.name, _stamp(when), tries, error[0] if error else "")
    stdout().print(table)
    if page.next_offset is not None:
        typer.echo(f"(first {limit} shown; --limit for more)")


@jobs_app.command()
def add(
    job_name: Annotated[str, typer.Argument(help="envoi's four jobs, or one of ENVOI_JOBS / --jobs")],
    file: Annotated[
        typer.FileText, typer.Option("--file", "-f", help="JSON Lines: one job's data per line; - for stdin")
    ],
    delay: Annotated[float | None, typer.Option(min=0, help="Seconds before the jobs are due")] = None,
    jobs: JobsOption = None,
    json_: JsonOpt = False,
) -> None:
    """Add many jobs of one name, in bulk (`enqueue_many`: one round trip per 500 jobs), and print their
    ids in the order of the lines. Every line is checked first: a bad one is named by its line number and
    nothing is added. With Redis down, the jobs run here, inline, as `enqueue` runs them."""
    lines, items = _json_lines(file)
    settings = load_settings()
    import_jobs_or_exit(settings, jobs)

    async def main() -> list[EnqueueResult]:
        envoi = Envoi(settings)
        try:
            registration = envoi.registry.get(job_name)
            if registration is None:
                known = ", ".join(sorted(envoi.registry))
                fail(f"no job named {job_name!r} here; known: {known}", EXIT_USAGE)
            return await envoi.queue.enqueue_many(registration.queue, job_name, items, delay=delay)
        finally:
            await envoi.close()

    try:
        results = asyncio.run(main())
    except InvalidJobDataError as exc:
        fail("; ".join(_by_line(path, reason, lines) for path, reason in exc.fields.items()), EXIT_USAGE)
    if json_:
        print_json([{"jobId": r.job_id, "mode": r.mode} for r in results])
    else:
        for result in results:
            typer.echo(f"{result.job_id}\t{result.mode}")
    queued = sum(r.mode == "queued" for r in results)
    typer.echo(
        f"Added {len(results)} {job_name} job(s): {queued} queued, {len(results) - queued} run inline",
        err=True,
    )


def _json_lines(file: TextIO) -> tuple[list[int], list[dict[str, Any]]]:
    """The objects of a JSON Lines file and the line number of each (blank lines skipped); a line that is
    not a JSON object is one message and exit 2."""
    lines: list[int] = []
    items: list[dict[str, Any]] = []
    for number, text in enumerate(file, start=1):
        if not text.strip():
            continue
        try:
            item = json.loads(text)
        except ValueError as exc:
            fail(f"line {number}: not JSON ({exc.args[0] if exc.args else exc})", EXIT_USAGE)
        if not isinstance(item, dict):
            fail(f"line {number}: must be a JSON object (one job's data)", EXIT_USAGE)
        lines.append(number)
        items.append(item)
    if not items:
        fail("no job in the file (one job's data per line)", EXIT_USAGE)
    return lines, items


def _by_line(path: str, reason: str, lines: list[int]) -> str:
    """`items.3.to` (enqueue_many's name for a field) as `line 5: to: ...`."""
    index, _, field = path.removeprefix("items.").partition(".")
    where = f"line {lines[int(index)]}" if index.isdigit() and int(index) < len(lines) else path
    return f"{where}: {field}: {reason}" if field else f"{where}: {reason}"


@jobs_app.command()
def show(job_id: JobIdArg, queue: QueueOpt = NOTIFICATIONS_QUEUE, json_: JsonOpt = False) -> None:
    """One job: state, attempts, times, data (recipients masked), last error."""
    view = _inspect(lambda inspector: inspector.get(queue, job_id))
    if json_:
        print_json(as_json(view))
        return
    for label, value in (
        ("Job", f"{view.name} {view.id} ({view.queue})"),
        ("State", view.state),
        ("Attempts", f"{view.attempts_made} of {view.max_attempts}"),
        ("Created", _stamp(view.created_at)),
        ("Run at", _stamp(view.run_at)),
        ("Finished", _stamp(view.finished_at)),
        ("Error", mask_text(view.failed_reason or "—")),
    ):
        typer.echo(f"{label + ':':<10} {value}")
    typer.echo("Data:")
    typer.echo(json.dumps(mask_payload(view.data), indent=2, ensure_ascii=False, default=str))


@jobs_app.command()
def promote(job_id: JobIdArg, queue: QueueOpt = NOTIFICATIONS_QUEUE) -> None:
    """Make a delayed job due now: a worker takes it at once."""
    view = _inspect(lambda inspector: inspector.promote(queue, job_id))
    typer.echo(f"Promoted {view.id}: {view.state} now.")


@jobs_app.command()
def cancel(job_id: JobIdArg, queue: QueueOpt = NOTIFICATIONS_QUEUE) -> None:
    """Remove a job that has not started (waiting or delayed)."""
    view = _inspect(lambda inspector: inspector.cancel(queue, job_id))
    typer.echo(f"Cancelled {view.id} ({view.name}, was {view.state}).")


@queues_app.command()
def pause(queue: QueueArg) -> None:
    """No worker takes a new job from QUEUE (running ones finish); jobs are still accepted."""
    _inspect(lambda inspector: inspector.set_paused(queue, True))
    typer.echo(f"{queue} is paused: jobs wait until `envoi queues resume {queue}`.")


@queues_app.command()
def resume(queue: QueueArg) -> None:
    """Workers take jobs from QUEUE again."""
    _inspect(lambda inspector: inspector.set_paused(queue, False))
    typer.echo(f"{queue} resumed.")
