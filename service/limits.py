"""Overload: at most `VP_MAX_CONCURRENCY` requests run at once; the next ones wait up to
`VP_QUEUE_TIMEOUT` seconds for a slot, then get 503 with `Retry-After`.

Past capacity the service answers fast and stays healthy instead of queueing without bound
(every queued request holds memory and a thread, and its client has likely given up). Health
probes are exempt so an orchestrator does not restart a process that is merely busy. The slot is
taken after the body has arrived (the body limit runs outside this), so slow clients trickling a
body hold a connection, never a slot.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from service.errors import send_error

EXEMPT = frozenset({"/livez", "/readyz"})
RETRY_AFTER_S = 1


class ConcurrencyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_concurrency: int, queue_timeout: float) -> None:
        self.app = app
        self.max_concurrency = max_concurrency
        self.queue_timeout = queue_timeout
        self.slots = asyncio.Semaphore(max_concurrency)
        self.in_flight = 0  # for tests and metrics: requests holding a slot now

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in EXEMPT:
            await self.app(scope, receive, send)
            return
        if not await self._acquire():
            detail = (
                f"over capacity: {self.max_concurrency} requests already running "
                "(VP_MAX_CONCURRENCY); retry after a second"
            )
            headers = [(b"retry-after", str(RETRY_AFTER_S).encode())]
            await send_error(send, 503, "overloaded", detail, headers)
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
            self.slots.release()

    async def _acquire(self) -> bool:
        if not self.slots.locked():
            await self.slots.acquire()  # free: returns without waiting
            return True
        if self.queue_timeout <= 0:
            return False
        try:
            async with asyncio.timeout(self.queue_timeout):
                await self.slots.acquire()
        except TimeoutError:
            return False
        return True


# ---- OpenAPI: what any operation may answer before its handler runs ------------------------
LIMIT_RESPONSES: dict[str, str] = {
    "400": "the body is not valid UTF-8 or cannot be parsed",
    "408": "the body did not arrive within VP_BODY_TIMEOUT seconds",
    "413": "the body is larger than VP_MAX_BODY_BYTES",
    "503": "over capacity (VP_MAX_CONCURRENCY), with Retry-After; or not ready",
}


def document_limits(schema: dict[str, Any]) -> None:
    """Declare the middleware answers on every operation but the health probes."""
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}
    retry = {"Retry-After": {"description": "seconds", "schema": {"type": "integer"}}}
    for path, ops in schema.get("paths", {}).items():
        if path in EXEMPT:
            continue
        for op in ops.values():
            responses = op.setdefault("responses", {})
            for code, description in LIMIT_RESPONSES.items():
                responses.setdefault(code, {"description": description, "content": error})
            responses["503"].setdefault("headers", retry)
