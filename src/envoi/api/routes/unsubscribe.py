"""RFC 8058 one-click unsubscribe: `/v1/unsubscribe/{token}`, the URL of a marketing email's
`List-Unsubscribe` header and of its footer link.

    GET   a small page with a button (a link scanner's GET changes nothing)
    POST  opts the token's recipient out of the token's category by email: 200, idempotent; the mail
          client's own POST (`List-Unsubscribe=One-Click`) and the page's button are the same request

No credential but the token (`envoi.recipients.tokens`: signed, verified without the database). A token
that is not one answers 400, a forged or altered one 404, and neither changes anything. The page is
served under a CSP that allows nothing but its own form (no script, no style, no frame), in the
email's language (`?lang=`, else DEFAULT_LOCALE). The token never reaches a log line.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from envoi.api.deps import EnvoiDep
from envoi.config import LOCALES
from envoi.masking import mask_recipient
from envoi.recipients import BadTokenError, ForgedTokenError, UnsubscribeToken
from envoi.runtime import Envoi

log = logging.getLogger("envoi.api.unsubscribe")

router = APIRouter(prefix="/v1/unsubscribe", tags=["recipients"])

#: The page runs nothing and loads nothing; its form posts to this origin only; nobody may frame it.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
TEXTS = {
    "en": {
        "title": "Unsubscribe",
        "ask": "Stop receiving marketing emails at",
        "button": "Unsubscribe",
        "done": "You will no longer receive marketing emails at",
        "invalid": "This unsubscribe link is not valid.",
    },
    "fr": {
        "title": "Se désinscrire",
        "ask": "Ne plus recevoir d'emails commerciaux à l'adresse",
        "button": "Me désinscrire",
        "done": "Vous ne recevrez plus d'emails commerciaux à l'adresse",
        "invalid": "Ce lien de désinscription n'est pas valide.",
    },
}
_pages = Environment(
    loader=FileSystemLoader(Path(__file__).parent.parent / "pages"),
    autoescape=select_autoescape(["html"]),
    auto_reload=False,
)
Lang = Annotated[str | None, Query(max_length=5)]
REFUSED: dict[int | str, dict[str, Any]] = {
    400: {"description": "Not an unsubscribe token (an HTML page)"},
    404: {"description": "A forged or altered token, or UNSUBSCRIBE_SECRET unset (an HTML page)"},
}


def _page(state: str, locale: str, recipient: str = "", *, status_code: int = 200) -> HTMLResponse:
    html = _pages.get_template("unsubscribe.html").render(
        state=state, locale=locale, t=TEXTS[locale], recipient=recipient
    )
    return HTMLResponse(html, status_code=status_code, headers=PAGE_HEADERS)


def _locale(envoi: Envoi, lang: str | None) -> str:
    return lang if lang in LOCALES else envoi.settings.default_locale


def _read(envoi: Envoi, token: str, locale: str) -> UnsubscribeToken | HTMLResponse:
    if envoi.unsubscribe_tokens is None:
        return _page("invalid", locale, status_code=404)
    try:
        return envoi.unsubscribe_tokens.read(token)
    except BadTokenError:
        return _page("invalid", locale, status_code=400)
    except ForgedTokenError:
        log.warning("Unsubscribe refused: a token whose signature does not match")
        return _page("invalid", locale, status_code=404)


@router.get(
    "/{token}",
    response_class=HTMLResponse,
    responses=REFUSED,
    summary="The unsubscribe page (changes nothing)",
)
async def unsubscribe_page(token: str, envoi: EnvoiDep, lang: Lang = None) -> HTMLResponse:
    locale = _locale(envoi, lang)
    read = _read(envoi, token, locale)
    if isinstance(read, HTMLResponse):
        return read
    return _page("ask", locale, mask_recipient(read.recipient))


@router.post(
    "/{token}", response_class=HTMLResponse, responses=REFUSED, summary="One-click unsubscribe (RFC 8058)"
)
async def unsubscribe(token: str, envoi: EnvoiDep, lang: Lang = None) -> HTMLResponse:
    locale = _locale(envoi, lang)
    read = _read(envoi, token, locale)
    if isinstance(read, HTMLResponse):
        return read
    changed = await envoi.preferences.opt_out(read.recipient, "email", read.category, source="unsubscribe")
    if changed:
        log.info("%s unsubscribed from %s email", mask_recipient(read.recipient), read.category)
    return _page("done", locale, mask_recipient(read.recipient))
