"""`envoi dlq ...`: list, show, retry, delete and count dead letters."""

from __future__ import annotations

import typer

app = typer.Typer(help="Dead letters: jobs that failed for the last time.", no_args_is_help=True)
