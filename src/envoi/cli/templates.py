"""`envoi templates list|preview`: where each message template is read from (built-in or TEMPLATES_DIR),
and a message rendered with sample data and the brand settings, as its recipient would read it.

Needs no Redis and no database: only the settings. Exit codes: 0 ok, 1 the template failed to render,
2 bad arguments or configuration.
"""

from __future__ import annotations

from typing import Annotated

import typer

from envoi.cli.common import EXIT_USAGE, settings_or_exit
from envoi.config import LOCALES, Settings
from envoi.errors import ConfigError, TemplateError
from envoi.notifications.previews import BY_NAME, LAYOUT, MESSAGES, preview
from envoi.notifications.rendering import Renderer

app = typer.Typer(help="Message templates: list them, preview them with sample data.", no_args_is_help=True)


def _setup(**overrides: object) -> tuple[Settings, Renderer]:
    """The settings and a renderer over TEMPLATES_DIR, or the reason they are invalid and exit 2."""
    settings = settings_or_exit(**overrides)
    try:
        return settings, Renderer.from_settings(settings)
    except ConfigError as exc:
        typer.echo(f"envoi: {exc}", err=True)
        raise typer.Exit(EXIT_USAGE) from None


@app.command("list")
def list_templates() -> None:
    """Every message, what sends it, and which of its files TEMPLATES_DIR replaces."""
    settings, renderer = _setup()
    if settings.templates_dir is None:
        typer.echo("TEMPLATES_DIR not set: every template is built in.")
    else:
        typer.echo(f"TEMPLATES_DIR {renderer.templates_dir}: {len(renderer.overrides)} file(s).")
    width = max(len(message.name) for message in MESSAGES)
    for message in MESSAGES:
        files = [name for locale in LOCALES for name in message.files(locale)]
        replaced = [name for name in files if name in renderer.overrides]
        origin = f"overridden: {', '.join(replaced)}" if replaced else "built-in"
        typer.echo(f"{message.name:<{width}}  {message.kind:<5}  {origin}  ({message.sent_by})")
    layout = [name for name in LAYOUT if name in renderer.overrides]
    origin = f"overridden: {', '.join(layout)}" if layout else "built-in"
    typer.echo(f"{'layout':<{width}}  {'':<5}  {origin}  ({', '.join(LAYOUT)})")
    known = {*LAYOUT, *(name for m in MESSAGES for loc in LOCALES for name in m.files(loc))}
    unknown = sorted(set(renderer.overrides) - known)
    if unknown:
        typer.echo(f"Not a built-in template (used only if an override includes it): {', '.join(unknown)}")


@app.command("preview")
def preview_template(
    flow: Annotated[str, typer.Argument(help="The message, as `envoi templates list` names it")],
    locale: Annotated[str | None, typer.Option(help="fr or en (default: DEFAULT_LOCALE)")] = None,
    html: Annotated[bool, typer.Option("--html", help="Print the HTML instead of the text")] = False,
) -> None:
    """Render one message with sample data: its subject and text (or HTML)."""
    settings, renderer = _setup()
    if flow not in BY_NAME:
        typer.echo(f"envoi: unknown template {flow!r}; expected one of {', '.join(BY_NAME)}", err=True)
        raise typer.Exit(2)
    chosen = locale or settings.default_locale
    if chosen not in LOCALES:
        typer.echo(f"envoi: unknown locale {chosen!r}; expected one of {', '.join(LOCALES)}", err=True)
        raise typer.Exit(2)
    try:
        result = preview(renderer, settings, flow, chosen)
    except TemplateError as exc:
        typer.echo(f"envoi: {exc}", err=True)
        raise typer.Exit(1) from None
    if result.subject is not None:
        typer.echo(f"Subject: {result.subject}\n")
    if html and result.html is None:
        typer.echo(f"envoi: {flow} is a text message: no HTML", err=True)
    typer.echo(result.html if html and result.html is not None else result.text)
