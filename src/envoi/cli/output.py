"""How `envoi dlq` shows things: JSON for scripts, tables for people, progress bars for long jobs.

Everything a person sees of a dead letter goes through `row_as_dict` (recipients masked in the payload,
the error and the stack traces, unless the operator asked `--reveal`).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from rich import box
from rich.cells import cell_len
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from envoi.db.models import FailedJob
from envoi.dead_letters.service import row_as_dict

#: Bulk operations over more rows than this show a progress bar (on a terminal).
PROGRESS_FROM = 500
#: From this terminal width the list shows the queue and the tries too.
WIDE_FROM = 120
#: Job names are cut (…) beyond this width; an id never is.
JOB_WIDTH = 26
#: Under this width the error column is left out (`envoi dlq show ID` has it in full).
MIN_ERROR_WIDTH = 10
#: Between two columns (collapsed padding, and the space SIMPLE_HEAD draws as its divider).
GAP = 2


def stdout() -> Console:
    # Made per call, never at import: rich reads COLUMNS when a console is made.
    return Console(highlight=False)


def stderr() -> Console:
    return Console(stderr=True, highlight=False)


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False, default=str) + "\n")


def failed_at(row: FailedJob) -> str:
    if row.finished_on:
        return datetime.fromtimestamp(row.finished_on / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
    return row.created_at.strftime("%Y-%m-%d %H:%M:%S")


def first_line(text: str, width: int = 60) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= width else line[: width - 1] + "…"


@contextmanager
def progress(total: int, label: str) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr for bulk operations over many rows; silent otherwise."""
    errors = stderr()
    shown = total > PROGRESS_FROM and errors.is_terminal
    with Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=errors,
        disable=not shown,
        transient=True,
    ) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)


def page_table(rows: list[FailedJob], *, width: int, reveal: bool = False) -> Table:
    """One line per dead letter, fitted to `width` columns (cells are plain text, never rich markup).

    The id is what every other command takes: it is never cut; the time, the job and the status always
    show. On a narrow terminal the queue and the tries go (under `WIDE_FROM`), and the error takes what
    is left, cut to fit, or is left out when less than `MIN_ERROR_WIDTH` is left.
    """
    wide = width >= WIDE_FROM
    columns: list[tuple[str, list[str]]] = [("ID", [row.id for row in rows])]
    columns.append(("Failed (UTC)", [failed_at(row)[:16] if wide else failed_at(row)[5:16] for row in rows]))
    if wide:
        columns.append(("Queue", [row.queue_name for row in rows]))
    columns.append(("Job", [row.job_name for row in rows]))
    if wide:
        columns.append(("Tries", [str(row.attempts_made) for row in rows]))
    columns.append(("Status", [row.status for row in rows]))

    widths = {title: max(cell_len(v) for v in [title, *values]) for title, values in columns}
    widths["Job"] = min(widths["Job"], JOB_WIDTH)
    used = sum(widths.values()) + GAP * (len(columns) - 1)
    if used > width:  # a very narrow terminal: the job name gives way (the id never does)
        widths["Job"] = max(widths["Job"] - (used - width), 8)
        used = width
    error_width = width - used - GAP
    if error_width >= MIN_ERROR_WIDTH:
        errors = [row_as_dict(row, reveal=reveal)["error_message"] for row in rows]
        columns.append(("Error", [first_line(text, error_width) for text in errors]))
        widths["Error"] = error_width

    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, collapse_padding=True)
    for title, _ in columns:
        table.add_column(
            title,
            no_wrap=True,
            overflow="ellipsis",
            justify="right" if title == "Tries" else "left",
            min_width=widths[title] if title in ("ID", "Job") else None,
            max_width=widths[title],
        )
    for cells in zip(*(values for _, values in columns), strict=True):
        table.add_row(*(Text(cell) for cell in cells))
    return table


def dead_letter_details(row: FailedJob, *, reveal: bool = False) -> None:
    """`envoi dlq show ID`: the fields, the payload and options, and the last stack trace."""
    data = row_as_dict(row, reveal=reveal)
    console = stdout()
    table = Table(show_header=False, box=None)
    for key in ("id", "queue_name", "job_name", "job_id", "status", "retried_job_id", "attempts_made"):
        table.add_row(key, Text(str(data[key]) if data[key] is not None else "-"))
    table.add_row("failed_at", failed_at(row) + " UTC")
    table.add_row("error", Text(data["error_message"]))
    console.print(table)
    console.print("job_data:", json.dumps(data["job_data"], indent=2, ensure_ascii=False), markup=False)
    console.print("job_options:", json.dumps(data["job_options"], indent=2), markup=False)
    if data["stacktrace"]:
        console.print("last stack trace:\n" + data["stacktrace"][-1], markup=False)
