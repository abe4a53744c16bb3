"""Every error leaves the service as JSON `{error, detail, field}` with the right status.

Engine errors carry their own status (`VPError.status`); request validation errors become 422
naming the field in the engine's spelling (`documents[0].vector`); anything unexpected is a 500
whose body never contains a traceback.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Send

from indexer import VPError

log = logging.getLogger("vector_primer.service")

_SOURCES = ("body", "query", "path", "header", "cookie")
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    413: "body_too_large",
    415: "unsupported_media_type",
    429: "too_many_requests",
    503: "not_ready",
}
# An absolute path with at least two parts ('/srv/data/c/store.sqlite'): server errors name no
# files, so a client learns nothing about the layout of the host (the log has them).
_PATH = re.compile(r"(?<![\w.:])/(?:[\w.@+-]+/)+[\w.@+-]*")


class ModelNotFound(VPError):
    """An embeddings request named a model this service does not serve (OpenAI's code)."""

    status = 404
    code = "model_not_found"


def error_body(code: str, detail: str, field: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"error": code, "detail": detail, "field": field, **extra}


def error_response(
    status: int,
    code: str,
    detail: str,
    field: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        error_body(code, detail, field), status_code=status, headers=dict(headers or {})
    )


def redact_paths(text: str) -> str:
    """Replace absolute file paths by `<path>`.

    >>> redact_paths("cannot read /srv/data/c/manifest.json: [Errno 5] I/O error")
    'cannot read <path>: [Errno 5] I/O error'
    >>> redact_paths("PUT /v1/collections needs the key")
    'PUT <path> needs the key'
    >>> redact_paths("a/b and 1/2 stay")
    'a/b and 1/2 stay'
    """
    return _PATH.sub("<path>", text)


async def send_error(
    send: Send,
    status: int,
    code: str,
    detail: str,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """The error shape, straight over ASGI: for middlewares that answer without the app."""
    body = json.dumps(error_body(code, detail), separators=(",", ":")).encode()
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


def field_name(loc: Sequence[str | int]) -> str:
    """Where a value sits, spelled as the engine spells it.

    >>> field_name(("body", "documents", 0, "vector", 3))
    'documents[0].vector[3]'
    >>> field_name(("query", "k"))
    'k'
    >>> field_name(("body",))
    'body'
    """
    parts = list(loc[1:] if loc and loc[0] in _SOURCES else loc)
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or (str(loc[0]) if loc else "body")


def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = []
    json_sent = "json" in request.headers.get("content-type", "")
    for err in exc.errors():
        if err.get("type") == "json_invalid":
            field = "body"
            msg = f"body is not valid JSON ({err.get('ctx', {}).get('error', 'parse error')})"
        elif tuple(err.get("loc", ())) == ("body",) and not json_sent:
            field = "body"
            msg = "expected a JSON object: send it with 'Content-Type: application/json'"
        else:
            field = field_name(err.get("loc", ()))
            msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
        errors.append({"field": field, "detail": msg})
    first = errors[0] if errors else {"field": "body", "detail": "invalid request"}
    body = error_body(
        "invalid_input", f"{first['field']}: {first['detail']}", first["field"], errors=errors
    )
    return JSONResponse(body, status_code=422)


def _engine_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, VPError)
    if exc.status < 500:
        return error_response(exc.status, exc.code, exc.detail, exc.field)
    log.error("engine error %s: %s", exc.code, exc.detail)
    return error_response(exc.status, exc.code, redact_paths(exc.detail), exc.field)


def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    if exc.status_code == 400:  # FastAPI could not decode the body (not UTF-8, not JSON)
        detail = "body: could not be decoded; send UTF-8 JSON with 'Content-Type: application/json'"
        return error_response(400, code, detail, "body")
    return error_response(exc.status_code, code, str(exc.detail), headers=exc.headers)


def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal_error", "internal error; the server log has the details")


def document_errors(schema: dict[str, Any]) -> None:
    """Every 422 in the OpenAPI schema is the service's ErrorResponse: the handler above replaces
    FastAPI's default `HTTPValidationError` body, so the schema must say so too."""
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}
    for ops in schema.get("paths", {}).values():
        for op in ops.values():
            response = op.get("responses", {}).get("422")
            if response is not None and "HTTPValidationError" in json.dumps(response):
                response["content"] = error
    schemas = schema.get("components", {}).get("schemas", {})
    if "HTTPValidationError" not in json.dumps(schema.get("paths", {})):
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(VPError, _engine_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
