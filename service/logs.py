"""Logs: one line per request, JSON for machines and plain text for people at a terminal.

Every request gets a request id: the caller's `X-Request-ID` when it is short and made of safe
characters, else a fresh one. It is returned in the response's `X-Request-ID` header and carried
by every log line written while the request runs, so a client's report can be matched with the
server's lines.

What a request line holds: method, route template (`/v1/collections/{name}/search`, never the
raw path or the query string, which may carry ids or texts), status, the API's error code if
any, duration in ms and the request id. Never headers (API keys), bodies or document texts.
Health checks and scrapes that succeed are logged at DEBUG, so a healthcheck every few seconds
does not drown the rest.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import random
import re
import sys
import time
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Any, Literal

from fastapi.routing import iter_route_contexts
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from service.metrics import Metrics

LOGGER = "vector_primer"
REQUEST_ID_HEADER = "x-request-id"
MAX_REQUEST_ID = 128
QUIET_ROUTES = frozenset({"/livez", "/readyz", "/metrics"})
_SAFE_ID = re.compile(rf"^[A-Za-z0-9._:-]{{1,{MAX_REQUEST_ID}}}$")
_ERROR_CODE = re.compile(rb'"error"\s*:\s*"([a-z0-9_]{1,64})"')

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
access_log = logging.getLogger(f"{LOGGER}.access")
LogFormat = Literal["auto", "json", "text"]


# Request ids need to be unique, not secret: a generator seeded from the OS (again in a forked
# child), where uuid4() read os.urandom per request, a system call that hands the GIL to the
# other thread and waits to get it back (7% of the event loop's samples under load).
_ids = random.Random(os.urandom(32))
os.register_at_fork(after_in_child=lambda: _ids.seed(os.urandom(32)))


def accept_request_id(given: bytes | None) -> str:
    """The caller's id if it is 1-128 characters of `A-Z a-z 0-9 . _ : -`, else a new one (so a
    header cannot inject newlines or fake fields into the logs).

    >>> accept_request_id(b"job-42:batch.7")
    'job-42:batch.7'
    >>> len(accept_request_id(b"bad id\\n{}")), len(accept_request_id(None))
    (32, 32)
    """
    if given is not None:
        try:
            text = given.decode("ascii")
        except UnicodeDecodeError:
            text = ""
        if _SAFE_ID.match(text):
            return text
    return f"{_ids.getrandbits(128):032x}"


# ---- formatting -----------------------------------------------------------------------------
_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "color_message",  # uvicorn's ANSI-coloured copy of msg
}


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    """What a call put in `extra=`, plus the request id of the request being served."""
    out = {k: v for k, v in vars(record).items() if k not in _RESERVED and not k.startswith("_")}
    rid = out.get("request_id") or request_id.get()
    if rid:
        out["request_id"] = rid
    return out


class JsonFormatter(logging.Formatter):
    """`{"ts", "level", "logger", "msg", ...extra fields}` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "pid": record.process,  # which worker, with `serve --workers N`
            **_fields(record),
        }
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """`12:00:01.234 INFO  GET /v1/collections/{name}/search 200 3.1 ms  rid=9f2c…`"""

    def format(self, record: logging.LogRecord) -> str:
        clock = time.strftime("%H:%M:%S", time.localtime(record.created))
        fields = _fields(record)
        rid = fields.pop("request_id", None)
        if record.name == access_log.name:
            text = (
                f"{fields.get('method')} {fields.get('route')} {fields.get('status')} "
                f"{fields.get('duration_ms')} ms"
            )
            if fields.get("error"):
                text += f" {fields['error']}"
        else:
            text = record.getMessage()
            if fields:
                text += "  " + " ".join(f"{k}={v}" for k, v in fields.items())
        if rid:
            text += f"  rid={rid}"
        line = f"{clock}.{int(record.msecs):03d} {record.levelname:<5} {text}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class _StderrHandler(logging.StreamHandler[IO[str]]):
    """Writes to whatever `sys.stderr` is at the time (test runners swap it)."""

    @property
    def stream(self) -> IO[str]:
        return sys.stderr

    @stream.setter
    def stream(self, _: IO[str]) -> None:
        pass


def configure_logging(
    level: str = "info", fmt: LogFormat = "auto", stream: IO[str] | None = None
) -> logging.Handler:
    """Send the service's logs (`vector_primer.*`, and uvicorn's from start-up on) to stderr (or
    `stream`): JSON lines, or text when `fmt` is "text" or "auto" on a terminal. Calling it
    again replaces the handler.

    uvicorn's own access log is turned down: the request line here replaces it, without the
    query string (which may hold texts) and with the route template and request id."""
    out = stream if stream is not None else sys.stderr
    tty = hasattr(out, "isatty") and out.isatty()
    handler: logging.Handler = (
        logging.StreamHandler(stream) if stream is not None else _StderrHandler()
    )
    text = fmt == "text" or (fmt == "auto" and tty)
    handler.setFormatter(TextFormatter() if text else JsonFormatter())
    handler.set_name("vector-primer")
    logger = logging.getLogger(LOGGER)
    for old in [h for h in logger.handlers if h.get_name() == "vector-primer"]:
        logger.removeHandler(old)
    logger.addHandler(handler)
    logger.setLevel(level.upper())
    logger.propagate = False  # the root logger's handler would print each line twice
    # uvicorn's own lines from here on ("Uvicorn running on ...", shutdown) in the same format
    server = logging.getLogger("uvicorn")
    for old in list(server.handlers):
        server.removeHandler(old)
    server.addHandler(handler)
    server.propagate = False
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    return handler


# ---- the middleware -------------------------------------------------------------------------
def route_template(scope: Scope) -> tuple[str, dict[str, Any]]:
    """The template of the route that will answer (`/v1/collections/{name}`) and its path
    parameters, found before the request runs, so requests refused before routing (401, 413)
    carry it too and no raw path reaches the metrics or the logs; `<unmatched>` if none."""
    app = scope.get("app")
    partial: str | None = None
    for route in iter_route_contexts(getattr(getattr(app, "router", None), "routes", [])):
        match, child = route.matches(scope)
        if match == Match.FULL:
            return str(route.path_format), dict(child.get("path_params") or {})
        if match == Match.PARTIAL and partial is None:
            partial = str(route.path_format)  # the path exists, not with this method: 405
    return (partial or "<unmatched>"), {}


class RequestLogMiddleware:
    """Outermost: times every request, tags it with a request id, logs one line and feeds the
    metrics. Error codes are read from the error bodies the service sends (`{"error": ...}`)."""

    ROUTES_CACHED = 4096  # (method, path) pairs remembered; forgotten all at once past this

    def __init__(self, app: ASGIApp, metrics: Metrics | None = None) -> None:
        self.app = app
        self.metrics = metrics
        # route_template tries every route in turn: a path answered once is looked up here
        self._routes: dict[tuple[str, str, str], tuple[str, dict[str, Any]]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        rid = accept_request_id(headers.get(REQUEST_ID_HEADER.encode()))
        token = request_id.set(rid)
        key = (str(scope["method"]), str(scope["path"]), str(scope.get("root_path", "")))
        found = self._routes.get(key)
        if found is None:
            if len(self._routes) >= self.ROUTES_CACHED:
                self._routes.clear()
            found = self._routes[key] = route_template(scope)
        route, params = found  # the page middleware inside may set vp.route
        start = time.perf_counter()
        status, error, head = 500, "", b""
        if self.metrics is not None:
            self.metrics.in_progress.inc()

        async def send_with_id(message: Message) -> None:
            nonlocal status, head
            if message["type"] == "http.response.start":
                status = int(message["status"])
                message["headers"] = [
                    *message.get("headers", []),
                    (REQUEST_ID_HEADER.encode(), rid.encode()),
                ]
            elif message["type"] == "http.response.body" and status >= 400 and len(head) < 256:
                head += message.get("body", b"")[:256]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - start
            if status >= 400:
                m = _ERROR_CODE.search(head)
                error = m.group(1).decode() if m else "http_error"
            route = str(scope.get("vp.route", route))
            if self.metrics is not None:
                self.metrics.in_progress.dec()
                self.metrics.observe_request(scope, route, params, status, seconds, error)
            quiet = route in QUIET_ROUTES and status < 400
            fields: dict[str, Any] = {
                "method": scope["method"],
                "route": route,
                "status": status,
                "duration_ms": round(seconds * 1000, 2),
            }
            if error:
                fields["error"] = error
            access_log.log(logging.DEBUG if quiet else logging.INFO, "request", extra=fields)
            request_id.reset(token)
