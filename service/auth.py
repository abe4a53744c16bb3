"""API keys: a read-write key and a read-only key, checked before any route runs or any body is
read, as Qdrant does it.

A key is sent as `Authorization: Bearer <key>`, `api-key: <key>` (Qdrant's clients) or
`X-API-Key: <key>`; never in the URL. Keys are compared in constant time (SHA-256 digests through
`hmac.compare_digest`, so even the length does not leak). No key or a wrong key is 401; the
read-only key on a write is 403. Whether a route writes is decided by method and route template
in the tables below; a route missing from them is a write, so a new route is protected by
default and needs the read-write key until someone decides otherwise.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.routing import iter_route_contexts
from pydantic import SecretStr
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from indexer import Settings
from service.errors import send_error

Access = Literal["open", "read", "write"]
Grant = Literal["rw", "ro", "anonymous"]

# Answer without a key: probes and the documentation (the schema is no secret).
OPEN_ROUTES = frozenset(
    {
        "/livez",
        "/readyz",
        "/openapi.json",
        "/docs",
        "/docs/oauth2-redirect",
        "/redoc",
        "/static-offline-docs/{path}",
    }
)
_COLLECTION = "/v1/collections/{name}"
# Change nothing, so the read-only key may call them; POSTs here only carry a query.
READ_ROUTES = frozenset(
    {
        ("GET", "/v1/collections"),
        ("GET", _COLLECTION),
        ("GET", f"{_COLLECTION}/documents"),
        ("GET", f"{_COLLECTION}/documents/{{doc_id}}"),
        ("POST", f"{_COLLECTION}/search"),
        ("POST", f"{_COLLECTION}/search/batch"),
        ("GET", "/v1/analogy"),
        ("POST", "/v1/analogy"),
        ("POST", "/v1/similarity"),
        ("POST", "/v1/embeddings"),
        ("POST", "/v1/math/softmax"),
        ("POST", "/v1/math/attention"),
        ("POST", "/v1/math/descent"),
        ("GET", "/v1/math/explain"),
        ("GET", "/v1/math/explain/{topic}"),
        ("GET", "/v1/math/plot/softmax"),
        ("GET", "/v1/math/plot/attention"),
        ("GET", "/v1/math/plot/descent"),
        ("GET", "/v1/math/plot/complexity"),
        ("GET", "/metrics"),  # Prometheus scrapes with the read-only key
    }
)
KEY_HEADERS = ("authorization", "api-key", "x-api-key")
HEADERS_HINT = "send 'Authorization: Bearer <key>' or 'api-key: <key>'"
_CONVERTER = re.compile(r"\{(\w+):\w+\}")


def access_of(method: str, route: str) -> Access:
    """Open, read or write, by method and route template; anything not listed writes.

    >>> access_of("POST", "/v1/collections/{name}/search")
    'read'
    >>> access_of("PUT", "/v1/collections/{name}/documents")
    'write'
    >>> access_of("GET", "/v1/collections/{name}/documents/{doc_id:path}")
    'read'
    >>> access_of("GET", "/v1/something-new")
    'write'
    """
    route = _CONVERTER.sub(r"{\1}", route)
    if route in OPEN_ROUTES:
        return "open"
    method = "GET" if method == "HEAD" else method
    return "read" if (method, route) in READ_ROUTES else "write"


# ---- the keys -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Keys:
    """SHA-256 digests of the configured keys; the keys themselves are not kept."""

    rw: bytes | None
    ro: bytes | None

    @property
    def enabled(self) -> bool:
        return self.rw is not None

    def grant(self, presented: bytes | None) -> Grant:
        if presented is None or not self.enabled:
            return "anonymous"
        digest = hashlib.sha256(presented).digest()
        is_rw = hmac.compare_digest(digest, self.rw or b"")
        is_ro = self.ro is not None and hmac.compare_digest(digest, self.ro)
        return "rw" if is_rw else "ro" if is_ro else "anonymous"


def _key(value: SecretStr | str | None, file: Path | None, name: str) -> str | None:
    """One key from its setting or its file; empty (or whitespace) means unset, as in Qdrant."""
    if value is not None and file is not None:
        raise ValueError(f"set VP_{name} or VP_{name}_FILE, not both")
    if file is not None:
        try:
            text = file.read_text(encoding="utf-8")
        except OSError as e:
            raise ValueError(f"VP_{name}_FILE: cannot read {file}: {e.strerror}") from None
        return text.strip() or None
    raw = value.get_secret_value() if isinstance(value, SecretStr) else value
    return raw.strip() or None if raw is not None else None


def load_keys(settings: Settings) -> Keys:
    """The keys from settings or files; refuses configurations that cannot mean what they say."""
    rw = _key(settings.api_key, settings.api_key_file, "API_KEY")
    ro = _key(settings.read_only_api_key, settings.read_only_api_key_file, "READ_ONLY_API_KEY")
    if ro is not None and rw is None:
        raise ValueError("VP_READ_ONLY_API_KEY needs VP_API_KEY too (who else could write?)")
    if ro is not None and ro == rw:
        raise ValueError("VP_READ_ONLY_API_KEY must differ from VP_API_KEY")

    def digest(k: str | None) -> bytes | None:
        return hashlib.sha256(k.encode()).digest() if k is not None else None

    return Keys(digest(rw), digest(ro))


def presented_key(scope: Scope) -> bytes | None:
    """The key a request carries: `api-key`, `X-API-Key`, or `Authorization: Bearer`."""
    headers: dict[bytes, bytes] = dict(scope.get("headers") or [])
    for name in (b"api-key", b"x-api-key"):
        if name in headers:
            return headers[name].strip()
    auth = headers.get(b"authorization", b"")
    if auth[:7].lower() == b"bearer ":
        return auth[7:].strip()
    return None


def route_of(scope: Scope) -> str | None:
    """The template of the route that will answer (first full match, as Starlette picks it)."""
    app = scope.get("app")
    if app is None:
        return None
    for route in iter_route_contexts(app.router.routes):
        match, _ = route.matches(scope)
        if match == Match.FULL:
            return str(route.path_format)
    return None


# ---- the middleware -------------------------------------------------------------------------
class AuthMiddleware:
    """401 without a valid key, 403 for the read-only key on a write; open routes pass. The
    grant is left in the request state so open routes (`/readyz`) can hide details."""

    def __init__(self, app: ASGIApp, keys: Keys) -> None:
        self.app = app
        self.keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.keys.enabled:
            await self.app(scope, receive, send)
            return
        grant = self.keys.grant(presented_key(scope))
        scope.setdefault("state", {})["grant"] = grant
        route = route_of(scope)
        access = access_of(scope["method"], route) if route is not None else "read"
        if access == "open" or (grant == "rw") or (grant == "ro" and access == "read"):
            await self.app(scope, receive, send)  # no route: the app's 404/405, nothing runs
        elif grant == "anonymous":
            given = presented_key(scope) is not None
            detail = f"{'wrong' if given else 'missing'} API key: {HEADERS_HINT}"
            await send_error(send, 401, "unauthorized", detail, [(b"www-authenticate", b"Bearer")])
        else:
            detail = f"the read-only key cannot {scope['method']} {route} (a write)"
            await send_error(send, 403, "forbidden", detail)


def may_see_details(request: Request) -> bool:
    """True when keys are off or the request carried a valid one (for open routes)."""
    keys: Keys | None = getattr(request.app.state, "keys", None)
    if keys is None or not keys.enabled:
        return True
    grant: str = request.scope.get("state", {}).get("grant", "anonymous")
    return grant != "anonymous"


# ---- OpenAPI: the security schemes, so /docs has an Authorize button -----------------------
SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    "bearer": {"type": "http", "scheme": "bearer", "description": "the API key as a token"},
    "apiKey": {"type": "apiKey", "in": "header", "name": "api-key"},
}
AUTH_RESPONSES: dict[str, dict[str, Any]] = {
    "401": {"description": "missing or wrong API key"},
    "403": {"description": "the read-only key cannot write"},
}


def document_security(schema: dict[str, Any]) -> None:
    """Declare the schemes, and on every operation that needs a key: `security`, 401 and 403."""
    schema.setdefault("components", {}).setdefault("securitySchemes", {}).update(SECURITY_SCHEMES)
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}
    for path, ops in schema.get("paths", {}).items():
        for method, op in ops.items():
            access = access_of(method.upper(), path)
            if access == "open":
                continue
            op["security"] = [{"bearer": []}, {"apiKey": []}]
            codes = ("401",) if access == "read" else ("401", "403")
            for code in codes:
                body = {**AUTH_RESPONSES[code], "content": error}
                op.setdefault("responses", {}).setdefault(code, body)


def install_auth(app: FastAPI, keys: Keys) -> None:
    app.state.keys = keys
    if keys.enabled:
        app.add_middleware(AuthMiddleware, keys=keys)
