"""Message templates: files under `templates/{locale}/`, rendered with Jinja2, replaceable one by one.

An email is three files: `{name}.subject.txt`, `{name}.html` (extends `base.html`) and `{name}.txt`.
A text message (SMS, WhatsApp) is one file, `{name}.txt`. HTML is autoescaped, so a first name such as
`<script>` arrives as text; subjects and text bodies are not HTML and are not escaped.

TEMPLATES_DIR names a folder whose files replace the built-in templates of the same relative name
(`en/verification.html`, `base.html`): a Jinja2 `ChoiceLoader` looks there first, then in the built-ins.
Its files are compiled when the renderer is built, so a syntax error stops start-up with the file and
line. Every template receives the brand (`brand`, `brand_url`, `brand_logo_url`, `support_email`),
`locale` and `timezone`, and may use the filters of `envoi.notifications.filters`. Whatever goes wrong
while rendering is a `TemplateError` naming the template and the line (docs/templates.md).
"""

from __future__ import annotations

import logging
import traceback
from dataclasses import dataclass
from email.utils import parseaddr
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import (
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    StrictUndefined,
    TemplateSyntaxError,
    select_autoescape,
)

from envoi.config import LOCALES, Settings
from envoi.errors import ConfigError, TemplateError
from envoi.notifications.filters import FILTERS

log = logging.getLogger("envoi.notifications")

BUILTIN_TEMPLATES = Path(__file__).parent / "templates"

#: Babel puts no-break spaces in some formats ("2:30\u202fPM"); a text message keeps plain spaces, as
#: one character outside the GSM alphabet turns an SMS into UCS-2 and halves what a segment holds.
_PLAIN_SPACES = str.maketrans({"\u202f": " ", "\u00a0": " "})


@dataclass(frozen=True, slots=True)
class Rendered:
    subject: str
    html: str
    text: str


@dataclass(frozen=True, slots=True)
class Brand:
    """What every template says about the product: BRAND_NAME (else EMAIL_FROM's display name, else
    "envoi"), BRAND_URL, BRAND_LOGO_URL, SUPPORT_EMAIL."""

    name: str = "envoi"
    url: str | None = None
    logo_url: str | None = None
    support_email: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Brand:
        return cls(
            name=settings.brand_name or parseaddr(settings.email_from)[0] or "envoi",
            url=str(settings.brand_url) if settings.brand_url else None,
            logo_url=str(settings.brand_logo_url) if settings.brand_logo_url else None,
            support_email=settings.support_email,
        )

    def context(self) -> dict[str, Any]:
        return {
            "brand": self.name,
            "brand_url": self.url,
            "brand_logo_url": self.logo_url,
            "support_email": self.support_email,
        }


#: What a template file is named: anything else in TEMPLATES_DIR (an image, a README) is left alone.
TEMPLATE_SUFFIXES = (".html", ".txt")


def template_files(folder: Path) -> list[str]:
    """The templates under `folder`, by relative name (`en/verification.html`); hidden files skipped."""
    return sorted(
        path.relative_to(folder).as_posix()
        for path in folder.rglob("*")
        if path.is_file()
        and path.suffix in TEMPLATE_SUFFIXES
        and not any(part.startswith(".") for part in path.relative_to(folder).parts)
    )


@cache
def _environment(templates_dir: Path | None) -> Environment:
    folders = [templates_dir, BUILTIN_TEMPLATES] if templates_dir is not None else [BUILTIN_TEMPLATES]
    env = Environment(
        loader=ChoiceLoader([FileSystemLoader(folder) for folder in folders]),
        autoescape=select_autoescape(["html"], default_for_string=False, default=False),
        # A variable missing from the context is a bug in the flow, not an empty string in a mail.
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )
    env.filters.update(FILTERS)
    return env


class Renderer:
    """`render("verification", "fr", first_name=...)`; the time zone defaults to `default_timezone`."""

    def __init__(
        self,
        *,
        default_timezone: str = "Europe/Paris",
        templates_dir: Path | None = None,
        brand: Brand | None = None,
    ) -> None:
        self.default_timezone = default_timezone
        self.templates_dir = templates_dir.resolve() if templates_dir is not None else None
        self.brand = brand or Brand()
        self.env = _environment(self.templates_dir)
        self.overrides = template_files(self.templates_dir) if self.templates_dir is not None else []
        self._check_overrides()

    @classmethod
    def from_settings(cls, settings: Settings) -> Renderer:
        return cls(
            default_timezone=settings.default_timezone,
            templates_dir=settings.templates_dir,
            brand=Brand.from_settings(settings),
        )

    def _check_overrides(self) -> None:
        """Compile every file of TEMPLATES_DIR now: a syntax error stops start-up, not a job later."""
        builtin = set(template_files(BUILTIN_TEMPLATES))
        for name in self.overrides:
            try:
                self.env.get_template(name)
            except TemplateSyntaxError as exc:
                raise ConfigError(
                    f"Invalid setting TEMPLATES_DIR: {name}, line {exc.lineno}: {exc.message}"
                ) from None
            except UnicodeDecodeError:
                raise ConfigError(f"Invalid setting TEMPLATES_DIR: {name} is not UTF-8 text") from None
        unused = [name for name in self.overrides if name not in builtin]
        if unused:
            # Partials an override includes are legitimate; a misspelt name replaces nothing.
            log.warning("TEMPLATES_DIR files with no built-in of that name: %s", ", ".join(unused))

    def origin(self, name: str) -> Path:
        """The file `name` is read from: the override when there is one, else the built-in."""
        if name in self.overrides and self.templates_dir is not None:
            return self.templates_dir / name
        return BUILTIN_TEMPLATES / name

    def _context(self, locale: str, context: dict[str, Any]) -> dict[str, Any]:
        if locale not in LOCALES:
            raise ValueError(f"unknown locale {locale!r}; expected one of {', '.join(LOCALES)}")
        # `unsubscribe_url`: set for marketing emails only (the footer links to it when present).
        defaults = {"timezone": self.default_timezone, "unsubscribe_url": None}
        return {**self.brand.context(), **defaults, **context, "locale": locale}

    def _run(self, name: str, values: dict[str, Any]) -> str:
        """One template rendered; any failure becomes a `TemplateError` saying where it happened."""
        try:
            return self.env.get_template(name).render(values)
        except TemplateSyntaxError as exc:
            where = exc.name or name
            raise TemplateError(
                where, exc.lineno, exc.message or "syntax error", overridden=where in self.overrides
            ) from exc
        except Exception as exc:
            where, line = self._locate(exc, name)
            reason = " ".join((str(exc) or type(exc).__name__).split())
            raise TemplateError(where, line, reason, overridden=where in self.overrides) from exc

    def _locate(self, exc: BaseException, name: str) -> tuple[str, int | None]:
        """The innermost template frame of the traceback: Jinja2 rewrites frames to the template file and
        line, so `{% extends %}`, blocks and includes point at the file that failed."""
        roots = [folder for folder in (self.templates_dir, BUILTIN_TEMPLATES) if folder is not None]
        found: tuple[str, int | None] = (name, None)
        for frame in traceback.extract_tb(exc.__traceback__):
            path = Path(frame.filename)
            for root in roots:
                if path.is_relative_to(root):
                    found = (path.relative_to(root).as_posix(), frame.lineno)
        return found

    def render(self, template: str, locale: str, **context: Any) -> Rendered:
        """An email: subject (one line), HTML and plain text."""
        values = self._context(locale, context)
        subject = self._run(f"{locale}/{template}.subject.txt", values)
        return Rendered(
            # Folded to one line: a newline in a header would be a header injection.
            subject=" ".join(subject.split()),
            html=self._run(f"{locale}/{template}.html", values),
            text=self._run(f"{locale}/{template}.txt", values).strip() + "\n",
        )

    def render_text(self, template: str, locale: str, **context: Any) -> str:
        """A text message (SMS, WhatsApp): one `.txt` file, trimmed."""
        values = self._context(locale, context)
        return self._run(f"{locale}/{template}.txt", values).strip().translate(_PLAIN_SPACES)
