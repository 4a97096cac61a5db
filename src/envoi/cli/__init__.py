"""The `envoi` command (console script `envoi = "envoi.cli:main"`). One module per command group:

- `serve`: `envoi migrate`, `envoi worker`, `envoi api`;
- `dev`: `envoi dev` (the local stack);
- `dlq`: `envoi dlq list|show|retry|delete|stats`, with `output` for its tables, JSON and progress bars;
- `webhooks`: `envoi webhooks list|create|update|delete|rotate-secret|test|attempts`;
- `imports`: `envoi import-failed-jobs` (the original NestJS system's dead letters);
- `providers`: `envoi providers` (circuits, rate limits, throttled waits);
- `common`: logging set-up, `settings_or_exit` and the exit codes: 0 ok, 1 failure, 2 usage/config.
"""

from __future__ import annotations

import sys

import typer

from envoi.cli import dev, dlq, imports, providers, serve, webhooks
from envoi.cli.common import EXIT_USAGE, configure_logging, settings_or_exit
from envoi.errors import ConfigError

__all__ = ["app", "configure_logging", "main", "settings_or_exit"]

app = typer.Typer(help="envoi: background delivery of email, SMS, WhatsApp and in-app notifications.")
app.add_typer(dlq.app, name="dlq")
app.add_typer(webhooks.app, name="webhooks")
app.command()(serve.migrate)
app.command()(serve.worker)
app.command()(serve.api)
app.command()(dev.dev)
app.command("import-failed-jobs")(imports.import_failed_jobs)
app.command()(providers.providers)


def main() -> None:
    try:
        app()
    except ConfigError as exc:
        typer.echo(f"envoi: {exc}", err=True)
        sys.exit(EXIT_USAGE)
