"""The web page at `/`: static HTML, CSS and JS from `service/static/`, no CDN, no build step.

The files are served by a small middleware placed in front of the API key check, like `/docs`:
they hold no data, and the page needs to load before anyone can type a key into it. Every call
the page makes to the API carries the key from its key field (kept in sessionStorage, sent as
`Authorization: Bearer`). A Content-Security-Policy keeps the page to this origin.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

STATIC = Path(__file__).resolve().parents[1] / "static"
PREFIX = "/ui"
CSP = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"cache-control", b"no-cache"),  # revalidate: an upgrade shows at once
]


class PageMiddleware:
    """GET/HEAD `/` is `index.html`; `/ui/<file>` the other files; anything else goes on."""

    def __init__(self, app: ASGIApp, directory: Path = STATIC) -> None:
        self.app = app
        self.files = StaticFiles(directory=directory)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        page = path == "/" or path.startswith(PREFIX + "/")
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD") or not page:
            await self.app(scope, receive, send)
            return
        scope["vp.route"] = "/" if path == "/" else PREFIX + "/{file}"  # for logs and metrics
        root = scope.get("root_path", "")
        child = (
            {**scope, "path": root + "/index.html"}
            if path == "/"
            else {**scope, "root_path": root + PREFIX}
        )

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *HEADERS]
            await send(message)

        try:
            await self.files(child, receive, send_with_headers)
        except HTTPException as e:  # outside the app: its error handlers are not there
            code = "not_found" if e.status_code == 404 else "http_error"
            body = {"error": code, "detail": f"{path}: {e.detail}", "field": None}
            await JSONResponse(body, e.status_code)(scope, receive, send)


def install_page(app: FastAPI) -> None:
    """Serve the page; add after the API key middleware so the page is in front of it."""
    app.add_middleware(PageMiddleware)
