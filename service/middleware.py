"""What runs before any route, in this order (outermost first): CORS (only when allow-listed),
API keys (service/auth.py), the body size and time limit (here), the concurrency limit
(service/limits.py).

Each answers in the service's error shape without calling the app, so a refused request cannot
change anything. The order matters: a key is checked before a byte of the body is read, and the
body is read in full before a request takes one of the limited slots, so slow clients cannot
starve the others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from indexer import Settings
from service.auth import KEY_HEADERS, document_security, install_auth, load_keys
from service.errors import document_errors, send_error
from service.limits import ConcurrencyLimitMiddleware, document_limits

__all__ = ["BodyLimitMiddleware", "install_middleware", "send_error"]


class BodyLimitMiddleware:
    """Refuse bodies over `max_bytes` with 413: at once when Content-Length says so, otherwise
    by counting the streamed bytes before the app sees any of them. A body that has not fully
    arrived `timeout` seconds after the request started is refused with 408 (slow clients)."""

    def __init__(self, app: ASGIApp, max_bytes: int, timeout: float = 30.0) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send)
            return
        try:
            async with asyncio.timeout(self.timeout):
                read = await self._read(receive)
        except TimeoutError:
            detail = f"the request body did not arrive within {self.timeout:g} s (VP_BODY_TIMEOUT)"
            await send_error(send, 408, "request_timeout", detail, [(b"connection", b"close")])
            return
        if read is None:
            await self._refuse(send)
            return
        body, last = read
        await self.app(scope, _replay(body, last, receive), send)

    async def _read(self, receive: Receive) -> tuple[bytes, Message | None] | None:
        """The whole body (and the disconnect message if the client left), or None if too big."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return b"".join(chunks), message  # the client went away: let the app see it
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks), None

    async def _refuse(self, send: Send) -> None:
        await send_error(
            send,
            413,
            "body_too_large",
            f"request body exceeds {self.max_bytes} bytes (VP_MAX_BODY_BYTES)",
            [(b"connection", b"close")],
        )


def _replay(body: bytes, last: Message | None, receive: Receive) -> Receive:
    """A `receive` that hands over the buffered body once, then defers to the real one."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            msg: Message = last or {"type": "http.request", "body": body, "more_body": False}
            return msg
        return await receive()

    return replay


def cors_origins(setting: str) -> list[str]:
    """`VP_CORS_ORIGINS` as a list: comma-separated, blanks dropped.

    >>> cors_origins(" https://a.example, http://localhost:3000 ,")
    ['https://a.example', 'http://localhost:3000']
    >>> cors_origins("")
    []
    """
    return [o.strip().rstrip("/") for o in setting.split(",") if o.strip()]


def install_middleware(app: FastAPI, settings: Settings) -> None:
    """Add the middlewares (innermost first: Starlette runs the last added first) and declare
    in the OpenAPI schema what they may answer. Raises ValueError for unusable key settings."""
    keys = load_keys(settings)
    app.add_middleware(
        ConcurrencyLimitMiddleware,
        max_concurrency=settings.max_concurrency,
        queue_timeout=settings.queue_timeout,
    )
    app.add_middleware(
        BodyLimitMiddleware, max_bytes=settings.max_body_bytes, timeout=settings.body_timeout
    )
    install_auth(app, keys)
    origins = cors_origins(settings.cors_origins)
    if origins:  # never with credentials: keys travel in headers, not cookies
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=["content-type", *KEY_HEADERS],
            allow_credentials=False,
            max_age=600,
        )
    patches: list[Callable[[dict[str, Any]], None]] = [document_errors, document_limits]
    if keys.enabled:
        patches.append(document_security)
    _patch_openapi(app, patches)


def _patch_openapi(app: FastAPI, patches: list[Callable[[dict[str, Any]], None]]) -> None:
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            for patch in patches:
                patch(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
