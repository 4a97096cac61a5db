"""`envoi providers`: each provider's circuit (this process's view), rate limit and shared waits.

Exit codes: 0 printed, 2 bad settings. The throttled/refused/paused counts come from Redis and read `-`
when it cannot be asked.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict
from typing import Annotated

import typer
from rich import box
from rich.table import Table

from envoi.channels import ProviderReport, provider_report
from envoi.cli.common import settings_or_exit
from envoi.cli.output import stdout
from envoi.runtime import Envoi


async def _reports() -> list[ProviderReport]:
    envoi = Envoi(settings_or_exit())
    try:
        states = envoi.channels.provider_states() if envoi.channels is not None else []
        return await provider_report(states, envoi.queue.rate_limits, envoi.settings.rate_limits)
    finally:
        await envoi.close()


def providers(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
) -> None:
    """Print each provider: channel, circuit, rate limit, sends throttled, refused, paused by a 429."""
    reports = asyncio.run(_reports())
    if as_json:
        typer.echo(json.dumps([asdict(report) for report in reports]))
        return
    table = Table(box=box.SIMPLE)
    for column in ("channel", "provider", "circuit", "rate limit", "throttled", "refused", "paused"):
        table.add_column(column)

    def shown(value: object) -> str:
        return "-" if value is None else str(value)

    for r in reports:
        rate = f"{r.rate_limit:g}/s" if r.rate_limit else "none"
        table.add_row(
            r.channel, r.provider, r.circuit, rate, shown(r.throttled), shown(r.refused), shown(r.paused)
        )
    stdout().print(table)
