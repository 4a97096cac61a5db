"""What every `envoi` command shares: logging, settings, and the exit codes.

Exit codes: `EXIT_OK` 0 done; `EXIT_FAILURE` 1 the work failed (an id not found, a retry that failed
again, a database behind its migrations for `envoi dlq`); `EXIT_USAGE` 2 bad arguments or configuration
(typer's own usage errors are 2 as well).
"""

from __future__ import annotations

import logging
import os

import typer

from envoi import tracing
from envoi.config import Settings, load_settings
from envoi.errors import ConfigError
from envoi.masking import MaskingFilter

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


def log_level(default: str = "INFO") -> str:
    """LOG_LEVEL, or `default`: "INFO", "WARNING"..."""
    return os.environ.get("LOG_LEVEL", default).upper()


def configure_logging(level: str = "INFO") -> None:
    logging.basicConfig(
        level=log_level(level),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    # httpx logs every request URL at INFO, and Twilio's URLs carry the account SID; aiosqlite logs every
    # statement's parameters at DEBUG.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("aiosqlite").setLevel(logging.INFO)
    for handler in logging.getLogger().handlers:
        handler.addFilter(MaskingFilter())


def settings_or_exit(**overrides: object) -> Settings:
    """The settings, or the reason they are invalid on stderr and exit 2."""
    try:
        settings = load_settings(**overrides)
        # Tracing asked for and impossible (no `otel` extra, no such exporter): also one line and exit 2.
        tracing.configure(enabled=settings.tracing_enabled, exporter=settings.otel_traces_exporter)
        return settings
    except ConfigError as exc:
        typer.echo(f"envoi: {exc}", err=True)
        raise typer.Exit(EXIT_USAGE) from None
