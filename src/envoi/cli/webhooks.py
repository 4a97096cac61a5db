"""`envoi webhooks ...`: list, create, update, delete, rotate-secret, test, attempts.

A secret is printed by `create` and `rotate-secret` only, once. Exit codes: 0 done, 1 an id was not
found (or the endpoint is disabled, or the database is behind), 2 bad arguments (a url refused, an
unknown event).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import typer
from rich import box
from rich.table import Table

from envoi.cli.common import settings_or_exit
from envoi.cli.output import print_json, stderr, stdout
from envoi.db.migrate import pending_message
from envoi.db.models import WebhookAttempt, WebhookEndpoint
from envoi.events import EVENT_TYPES
from envoi.runtime import Envoi
from envoi.webhooks.service import (
    ATTEMPTS_MAX_LIMIT,
    EndpointDisabledError,
    EndpointNotFoundError,
    EndpointSecret,
    InvalidEndpointError,
    WebhookEndpointService,
)

app = typer.Typer(help="Outbound webhooks: the endpoints envoi POSTs its events to.", no_args_is_help=True)

T = TypeVar("T")

EventsOpt = Annotated[
    list[str] | None,
    typer.Option("--event", "-e", help=f"An event to subscribe to (repeatable): {', '.join(EVENT_TYPES)}"),
]
DescriptionOpt = Annotated[str | None, typer.Option(help="What the endpoint is for")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output")]


def _run(work: Callable[[WebhookEndpointService], Awaitable[T]]) -> T:
    """Run `work` over DATABASE_URL and the queue; exit 1 when not found or not migrated, 2 when invalid."""
    settings = settings_or_exit()
    behind = pending_message(settings.database_url)
    if behind:
        stderr().print(f"envoi: {behind}")
        raise typer.Exit(1)

    async def main() -> T:
        envoi = Envoi(settings)
        try:
            return await work(envoi.webhooks)
        finally:
            await envoi.close()

    try:
        return asyncio.run(main())
    except InvalidEndpointError as exc:
        for field, reason in exc.fields.items():
            stderr().print(f"envoi: {field}: {reason}")
        raise typer.Exit(2) from None
    except (EndpointNotFoundError, EndpointDisabledError) as exc:
        stderr().print(f"envoi: {exc}")
        raise typer.Exit(1) from None


def _endpoint(row: WebhookEndpoint) -> dict[str, Any]:
    return {
        "id": row.id,
        "url": row.url,
        "events": row.events,
        "description": row.description,
        "enabled": row.enabled,
        "disabledReason": row.disabled_reason,
        "failingSince": row.failing_since,
        "createdAt": row.created_at,
    }


def _attempt(row: WebhookAttempt) -> dict[str, Any]:
    return {
        "id": row.id,
        "eventId": row.event_id,
        "eventType": row.event_type,
        "statusCode": row.status_code,
        "durationMs": row.duration_ms,
        "error": row.error,
        "createdAt": row.created_at,
    }


def _print_secret(created: EndpointSecret, as_json: bool) -> None:
    if as_json:
        print_json({"id": created.id, "secret": created.secret})
        return
    stdout().print(f"Endpoint {created.id}")
    stdout().print(f"Secret   {created.secret}")
    stdout().print(
        "Keep the secret now: it is not shown again (envoi webhooks rotate-secret makes a new one)."
    )


@app.command("list")
def list_endpoints(as_json: JsonOpt = False) -> None:
    """Every endpoint (secrets are never listed)."""
    rows = _run(lambda service: service.list())
    if as_json:
        print_json([_endpoint(row) for row in rows])
        return
    if not rows:
        stdout().print("No webhook endpoints.")
        return
    table = Table(box=box.SIMPLE_HEAD)
    for column in ("id", "url", "events", "state", "description"):
        table.add_column(column)
    for row in rows:
        state = "enabled" if row.enabled else f"disabled: {row.disabled_reason}"
        if row.enabled and row.failing_since:
            state = f"failing since {row.failing_since:%Y-%m-%d %H:%M} UTC"
        table.add_row(row.id, row.url, ", ".join(row.events), state, row.description or "")
    stdout().print(table)


@app.command()
def create(
    url: Annotated[str, typer.Argument(help="https:// URL of the receiver")],
    event: EventsOpt = None,
    description: DescriptionOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Add an endpoint; prints its signing secret, once."""
    if not event:
        raise typer.BadParameter("at least one --event", param_hint="--event")
    created = _run(lambda service: service.create(url=url, events=event, description=description))
    _print_secret(created, as_json)


@app.command()
def update(
    endpoint_id: Annotated[str, typer.Argument(metavar="ID")],
    url: Annotated[str | None, typer.Option(help="A new URL")] = None,
    event: EventsOpt = None,
    enabled: Annotated[
        bool | None, typer.Option("--enable/--disable", help="Resume or stop deliveries")
    ] = None,
    description: DescriptionOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Change an endpoint (--event replaces the whole list)."""
    row = _run(
        lambda service: service.update(
            endpoint_id, url=url, events=event or None, enabled=enabled, description=description
        )
    )
    if as_json:
        print_json(_endpoint(row))
    else:
        stdout().print(f"Endpoint {row.id} updated ({'enabled' if row.enabled else 'disabled'}).")


@app.command()
def delete(endpoint_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """Delete an endpoint and its attempts."""
    if not _run(lambda service: service.delete(endpoint_id)):
        stderr().print(f"envoi: No webhook endpoint with id {endpoint_id}")
        raise typer.Exit(1)
    stdout().print(f"Endpoint {endpoint_id} deleted.")


@app.command("rotate-secret")
def rotate_secret(
    endpoint_id: Annotated[str, typer.Argument(metavar="ID")], as_json: JsonOpt = False
) -> None:
    """A new signing secret, printed once; the old one keeps signing beside it for 24 hours."""
    _print_secret(_run(lambda service: service.rotate_secret(endpoint_id)), as_json)


@app.command()
def test(endpoint_id: Annotated[str, typer.Argument(metavar="ID")], as_json: JsonOpt = False) -> None:
    """Queue a `webhook.test` event to one endpoint (a worker on the webhooks queue delivers it)."""
    published = _run(lambda service: service.send_test(endpoint_id))
    if as_json:
        print_json({"eventId": published.event_id, "jobIds": published.job_ids})
    else:
        stdout().print(f"Test event {published.event_id} queued (job {published.job_ids[0]}).")


@app.command()
def attempts(
    endpoint_id: Annotated[str, typer.Argument(metavar="ID")],
    limit: Annotated[int, typer.Option(min=1, max=ATTEMPTS_MAX_LIMIT, help="How many, newest first")] = 20,
    as_json: JsonOpt = False,
) -> None:
    """An endpoint's latest delivery attempts."""
    rows = _run(lambda service: service.attempts(endpoint_id, limit=limit))
    if as_json:
        print_json([_attempt(row) for row in rows])
        return
    table = Table(box=box.SIMPLE_HEAD)
    for column in ("when (UTC)", "event", "type", "status", "ms", "error"):
        table.add_column(column)
    for row in rows:
        status = str(row.status_code) if row.status_code is not None else "-"
        table.add_row(
            f"{row.created_at:%Y-%m-%d %H:%M:%S}",
            row.event_id,
            row.event_type,
            status,
            str(row.duration_ms),
            row.error or "",
        )
    stdout().print(table)
