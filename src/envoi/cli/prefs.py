"""`envoi prefs show|set RECIPIENT`: a recipient's preferences (`envoi.recipients.PreferencesService`).

    envoi prefs show jane@example.com
    envoi prefs set jane@example.com --channel email --category marketing --off
    envoi prefs set user_42 --email jane@example.com --quiet-hours 22:00-07:00 --timezone Europe/Paris
    envoi prefs set +33612345678 --quiet-hours ""          none for this recipient, whatever QUIET_HOURS says

Exit codes: 0 done, 1 the database is behind its migrations, 2 a bad recipient, channel, category,
quiet hours or time zone (one line per field).
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import typer

from envoi.cli.common import EXIT_FAILURE, EXIT_USAGE, settings_or_exit
from envoi.db.migrate import pending_message
from envoi.recipients import UNSET, InvalidPreferencesError, Preference, PreferencesService
from envoi.recipients.service import RecipientPreferences
from envoi.runtime import Envoi

app = typer.Typer(
    help="Recipients' preferences: opt-outs, quiet hours, digest address.", no_args_is_help=True
)

T = TypeVar("T")
RecipientArg = Annotated[
    str, typer.Argument(metavar="RECIPIENT", help="An email address, +E.164 phone number or user id")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output")]


def _run(work: Callable[[PreferencesService], Awaitable[T]]) -> T:
    settings = settings_or_exit()
    behind = pending_message(settings.database_url, schema=settings.database_schema)
    if behind:
        typer.echo(f"envoi: {behind}", err=True)
        raise typer.Exit(EXIT_FAILURE)

    async def main() -> T:
        envoi = Envoi(settings)
        try:
            return await work(envoi.preferences)
        finally:
            await envoi.close()

    try:
        return asyncio.run(main())
    except InvalidPreferencesError as exc:
        for field, reason in exc.fields.items():
            typer.echo(f"envoi: {field}: {reason}", err=True)
        raise typer.Exit(EXIT_USAGE) from None


def _as_dict(stored: RecipientPreferences) -> dict[str, Any]:
    return {
        "recipient": stored.recipient,
        "preferences": [
            {"channel": p.channel, "category": p.category, "enabled": p.enabled, "source": p.source}
            for p in stored.preferences
        ],
        "quietHours": stored.quiet_hours,
        "timezone": stored.timezone,
        "email": stored.email,
    }


def _print(stored: RecipientPreferences, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(_as_dict(stored), indent=2) + "\n")
        return
    typer.echo(f"Recipient    {stored.recipient}")
    for p in stored.preferences:
        typer.echo(f"  {p.channel:<9}{p.category:<14}{'on' if p.enabled else 'off'}  (set by {p.source})")
    if not stored.preferences:
        typer.echo("  everything on (nothing set)")
    quiet = "QUIET_HOURS" if stored.quiet_hours is None else (stored.quiet_hours or "none")
    typer.echo(f"Quiet hours  {quiet}")
    typer.echo(f"Time zone    {stored.timezone or 'DEFAULT_TIMEZONE'}")
    typer.echo(f"Digest to    {stored.email or '-'}")


@app.command()
def show(recipient: RecipientArg, as_json: JsonOpt = False) -> None:
    """What is stored for RECIPIENT (a channel and category not listed is on)."""
    _print(_run(lambda service: service.get(recipient)), as_json)


@app.command("set")
def set_(
    recipient: RecipientArg,
    channel: Annotated[str | None, typer.Option(help="email, sms or whatsapp")] = None,
    category: Annotated[str, typer.Option(help="marketing (transactional is always on)")] = "marketing",
    enabled: Annotated[
        bool | None, typer.Option("--on/--off", help="Turn the channel's category on or off")
    ] = None,
    quiet_hours: Annotated[str | None, typer.Option(help='HH:MM-HH:MM; "" for none')] = None,
    timezone: Annotated[str | None, typer.Option(help="IANA time zone (Europe/Paris)")] = None,
    email: Annotated[str | None, typer.Option(help="Where a user id's in-app digest goes")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Change what is given; everything else stays as it is."""
    if (channel is None) != (enabled is None):
        typer.echo("envoi: --channel and --on/--off go together", err=True)
        raise typer.Exit(EXIT_USAGE)
    entries = [Preference(channel, category, enabled, "cli")] if channel and enabled is not None else []
    stored = _run(
        lambda service: service.update(
            recipient,
            entries,
            quiet_hours=UNSET if quiet_hours is None else quiet_hours,
            timezone=UNSET if timezone is None else timezone,
            email=UNSET if email is None else email,
        )
    )
    _print(stored, as_json)
