"""Message templates: files under `templates/{locale}/`, rendered with Jinja2.

An email is three files: `{name}.subject.txt`, `{name}.html` (extends `base.html`) and `{name}.txt`.
A text message (SMS, WhatsApp) is one file, `{name}.txt`. HTML is autoescaped, so a first name such as
`<script>` arrives as text; subjects and text bodies are not HTML and are not escaped.

Dates go through Babel in the recipient's `timezone` and `locale` (both context variables):
`{{ starts_at|date }}`, `{{ starts_at|time }}`, `{{ starts_at|datetime }}`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_datetime, format_time
from jinja2 import Environment, FileSystemLoader, StrictUndefined, pass_context, select_autoescape
from jinja2.runtime import Context

from envoi.config import LOCALES

TEMPLATES_DIR = Path(__file__).parent / "templates"

#: Babel puts no-break spaces in some formats ("2:30\u202fPM"); a text message keeps plain spaces, as
#: one character outside the GSM alphabet turns an SMS into UCS-2 and halves what a segment holds.
_PLAIN_SPACES = str.maketrans({"\u202f": " ", "\u00a0": " "})


@dataclass(frozen=True, slots=True)
class Rendered:
    subject: str
    html: str
    text: str


def _local(context: Context, value: datetime) -> datetime:
    return value.astimezone(ZoneInfo(context["timezone"]))


@pass_context
def _date(context: Context, value: datetime, format: str = "full") -> str:
    return format_date(_local(context, value).date(), format, locale=context["locale"])


@pass_context
def _time(context: Context, value: datetime, format: str = "short") -> str:
    return format_time(_local(context, value), format, locale=context["locale"])


@pass_context
def _datetime(context: Context, value: datetime, format: str = "medium") -> str:
    return format_datetime(_local(context, value), format, locale=context["locale"])


@cache
def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=select_autoescape(["html"], default_for_string=False, default=False),
        # A variable missing from the context is a bug in the flow, not an empty string in a mail.
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )
    env.filters.update(date=_date, time=_time, datetime=_datetime)
    return env


class Renderer:
    """`render("verification", "fr", first_name=...)`; the time zone defaults to `default_timezone`."""

    def __init__(self, *, default_timezone: str = "Europe/Paris") -> None:
        self.default_timezone = default_timezone
        self.env = environment()

    def _context(self, locale: str, context: dict[str, Any]) -> dict[str, Any]:
        if locale not in LOCALES:
            raise ValueError(f"unknown locale {locale!r}; expected one of {', '.join(LOCALES)}")
        return {"timezone": self.default_timezone, **context, "locale": locale}

    def render(self, template: str, locale: str, **context: Any) -> Rendered:
        """An email: subject (one line), HTML and plain text."""
        values = self._context(locale, context)
        subject = self.env.get_template(f"{locale}/{template}.subject.txt").render(values)
        return Rendered(
            # Folded to one line: a newline in a header would be a header injection.
            subject=" ".join(subject.split()),
            html=self.env.get_template(f"{locale}/{template}.html").render(values),
            text=self.env.get_template(f"{locale}/{template}.txt").render(values).strip() + "\n",
        )

    def render_text(self, template: str, locale: str, **context: Any) -> str:
        """A text message (SMS, WhatsApp): one `.txt` file, trimmed."""
        values = self._context(locale, context)
        text = self.env.get_template(f"{locale}/{template}.txt").render(values)
        return text.strip().translate(_PLAIN_SPACES)
