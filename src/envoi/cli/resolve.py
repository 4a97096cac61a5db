"""`envoi dlq resolve ID...`: mark dead letters RESOLVED (handled by hand; they can no longer be retried),
as `POST /v1/admin/failed-jobs/{id}/resolve` does. Needs the database only.

Exit codes: 0 every id resolved (or already RESOLVED), 1 an id unknown or RETRIED, 2 bad arguments.
Registered by the lead in the `dlq` group: `app.command("resolve")(resolve)`.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from envoi.cli.common import EXIT_FAILURE
from envoi.cli.support import fail
from envoi.config import load_settings
from envoi.db.migrate import pending_message
from envoi.db.session import Database
from envoi.dead_letters.service import (
    FailedJobNotFoundError,
    FailedJobNotResolvableError,
    FailedJobService,
)


def resolve(
    ids: Annotated[list[str], typer.Argument(help="Dead-letter ids (as `envoi dlq list` shows)")],
) -> None:
    """Mark dead letters RESOLVED: handled by hand, not to be retried."""
    settings = load_settings()
    behind = pending_message(settings.database_url)
    if behind:
        fail(behind)

    async def main() -> list[str]:
        db = Database(settings.database_url)
        service = FailedJobService(db=db)
        problems = []
        try:
            for id_ in ids:
                try:
                    await service.resolve(id_)
                    typer.echo(f"Resolved {id_}")
                except (FailedJobNotFoundError, FailedJobNotResolvableError) as exc:
                    problems.append(str(exc))
        finally:
            await db.dispose()
        return problems

    problems = asyncio.run(main())
    for problem in problems:
        typer.echo(f"envoi: {problem}", err=True)
    if problems:
        raise typer.Exit(EXIT_FAILURE)
