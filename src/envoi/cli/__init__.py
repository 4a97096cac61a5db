"""The `envoi` command (console script `envoi = "envoi.cli:main"`). One module per command group:

- `serve`: `envoi migrate`, `envoi worker`, `envoi api`;
- `dev`: `envoi dev` (the local stack);
- `dlq`: `envoi dlq list|show|retry|delete|stats`, with `output` for its tables, JSON and progress bars;
- `webhooks`: `envoi webhooks list|create|update|delete|rotate-secret|test|attempts`;
- `imports`: `envoi import-failed-jobs` (the original NestJS system's dead letters);
- `templates`: `envoi templates list|preview FLOW` (the messages and TEMPLATES_DIR's overrides);
- `jobs`: `envoi jobs list|show|promote|cancel` and `envoi queues pause|resume`; `resolve`: `envoi dlq resolve`;
- `support`: finding `envoi dev`'s instance (`var/dev.env`), one-line errors for Redis and the database;
- `providers`: `envoi providers` (circuits, rate limits, throttled waits);
- `prefs`: `envoi prefs show|set RECIPIENT` (opt-outs, quiet hours, digest address);
- `common`: logging set-up, `settings_or_exit` and the exit codes: 0 ok, 1 failure, 2 usage/config.
"""

from __future__ import annotations

import typer

from envoi.cli import dev, dlq, imports, jobs, prefs, providers, resolve, serve, templates, webhooks
from envoi.cli.common import configure_logging, settings_or_exit
from envoi.cli.support import find_instance, run

__all__ = ["app", "configure_logging", "main", "settings_or_exit"]

app = typer.Typer(help="envoi: background delivery of email, SMS, WhatsApp and in-app notifications.")
app.callback()(find_instance)
dlq.app.command("resolve")(resolve.resolve)
app.add_typer(dlq.app, name="dlq")
app.add_typer(jobs.jobs_app, name="jobs")
app.add_typer(jobs.queues_app, name="queues")
app.add_typer(webhooks.app, name="webhooks")
app.add_typer(templates.app, name="templates")
app.add_typer(prefs.app, name="prefs")
app.command()(serve.migrate)
app.command()(serve.worker)
app.command()(serve.api)
app.command()(dev.dev)
app.command("import-failed-jobs")(imports.import_failed_jobs)
app.command()(providers.providers)


def main() -> None:
    # Infrastructure failures (Redis or the database unreachable, bad settings) as one line and an exit code.
    run(app)
