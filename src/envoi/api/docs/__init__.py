"""`/docs` (Swagger UI) and `/redoc` (ReDoc) served from the package, so they work without internet.

The Swagger UI and ReDoc bundles come from the `fastapi-offline` wheel (its `static/` folder: MIT, kept
current with swagger-ui-dist 5 and redoc 2); the pages and Swagger UI's start-up script are envoi's, with
no inline script. Their Content-Security-Policy allows nothing from elsewhere: scripts from this origin
only; inline styles, `data:` images and `blob:` workers, which both bundles use.
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape

HERE = Path(__file__).parent
#: swagger-ui-bundle.js, swagger-ui.css, redoc.standalone.js, favicon.png
ASSETS = Path(fastapi_offline.__file__).parent / "static"
ASSETS_URL = "/docs/assets"
STATIC_URL = "/docs/static"
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; frame-ancestors 'none'; "
        "base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}

_pages = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]))
router = APIRouter(include_in_schema=False)


def _page(request: Request, name: str) -> HTMLResponse:
    openapi_url = request.app.openapi_url or "/openapi.json"
    html = _pages.get_template(name).render(
        title=request.app.title, openapi_url=openapi_url, assets=ASSETS_URL, static=STATIC_URL
    )
    return HTMLResponse(html, headers=SECURITY_HEADERS)


@router.get("/docs")
async def swagger(request: Request) -> HTMLResponse:
    return _page(request, "swagger.html")


@router.get("/redoc")
async def redoc(request: Request) -> HTMLResponse:
    return _page(request, "redoc.html")


def install(app: FastAPI) -> None:
    """For an app created with `docs_url=None, redoc_url=None` (FastAPI's own pages load from a CDN)."""
    app.include_router(router)
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS), name="docs-assets")
    app.mount(STATIC_URL, StaticFiles(directory=HERE / "static"), name="docs-static")
