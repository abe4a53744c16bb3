"""Two small ASGI middlewares that run before any route: an API key check and a body size limit.

Both answer in the service's error shape without ever calling the app, so a refused request
cannot change anything.
"""

from __future__ import annotations

import hmac
import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

OPEN_PATHS = ("/livez", "/readyz", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json")
OPEN_PREFIXES = ("/static-offline-docs/",)


async def send_error(
    send: Send,
    status: int,
    code: str,
    detail: str,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    error = {"error": code, "detail": detail, "field": None}
    body = json.dumps(error, separators=(",", ":")).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class ApiKeyMiddleware:
    """When a key is configured, every path but health and docs needs it, as
    `Authorization: Bearer <key>` or `X-API-Key: <key>` (compared in constant time)."""

    def __init__(self, app: ASGIApp, api_key: str) -> None:
        self.app = app
        self.key = api_key.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._is_open(scope["path"]) or self._authorised(scope):
            await self.app(scope, receive, send)
            return
        await send_error(
            send,
            401,
            "unauthorized",
            "missing or wrong API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'",
            [(b"www-authenticate", b"Bearer")],
        )

    @staticmethod
    def _is_open(path: str) -> bool:
        return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)

    def _authorised(self, scope: Scope) -> bool:
        headers = dict(scope.get("headers") or [])
        given = headers.get(b"x-api-key")
        auth = headers.get(b"authorization", b"")
        if given is None and auth[:7].lower() == b"bearer ":
            given = auth[7:].strip()
        return given is not None and hmac.compare_digest(given, self.key)


class BodyLimitMiddleware:
    """Refuse bodies over `max_bytes` with 413: at once when Content-Length says so, otherwise
    by counting the streamed bytes before the app sees any of them."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send)
            return
        chunks, size, last = [], 0, None
        while True:
            message = await receive()
            if message["type"] != "http.request":
                last = message  # the client went away: let the app see it
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(b"".join(chunks), last, receive), send)

    async def _refuse(self, send: Send) -> None:
        await send_error(
            send,
            413,
            "body_too_large",
            f"request body exceeds {self.max_bytes} bytes (VP_MAX_BODY_BYTES)",
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
