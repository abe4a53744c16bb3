"""The service's errors as exceptions: one class per HTTP status family, each carrying the API's
`{error, detail, field}` (and the status), so callers catch what they can handle:

    try:
        client.get_document("articles", "a1")
    except NotFound as e:
        print(e.error, e.detail)   # document_not_found  no document 'a1' in ...
"""

from __future__ import annotations

from typing import Any

import httpx


class VectorPrimerError(Exception):
    """Anything this client raises."""


class TransportError(VectorPrimerError):
    """The service could not be reached, or the connection broke part-way (no HTTP status)."""


class APIError(VectorPrimerError):
    """The service answered with an error status. `error` is the machine-readable code
    (`collection_not_found`), `detail` the sentence for people, `field` the offending input."""

    status: int = 0

    def __init__(
        self,
        status: int,
        error: str,
        detail: str,
        field: str | None = None,
        body: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(f"HTTP {status} {error}: {detail}")
        self.status, self.error, self.detail, self.field = status, error, detail, field
        self.body: dict[str, Any] = body or {}


class InvalidInput(APIError):
    """400 / 422: the request was refused as written; `field` names the culprit."""


class Unauthorized(APIError):
    """401: no API key, or the wrong one."""


class Forbidden(APIError):
    """403: the key is valid but may not do this (for example a read-only key writing)."""


class NotFound(APIError):
    """404: no such collection, document, topic or route."""


class Conflict(APIError):
    """409: it exists already, or exists with another spec."""


class PayloadTooLarge(APIError):
    """413: the body is over the server's VP_MAX_BODY_BYTES."""


class RateLimited(APIError):
    """429: too many requests; `retry_after` is the server's hint in seconds, if it gave one."""

    retry_after: float | None = None


class ServerError(APIError):
    """5xx: the service failed; the server log has the details."""


class NotReady(ServerError):
    """503: the service is still starting (loading the model, building `words`)."""


_BY_STATUS: dict[int, type[APIError]] = {
    400: InvalidInput,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    422: InvalidInput,
    429: RateLimited,
    503: NotReady,
}


def error_class(status: int) -> type[APIError]:
    """The exception for a status.

    >>> error_class(404).__name__, error_class(502).__name__, error_class(418).__name__
    ('NotFound', 'ServerError', 'APIError')
    """
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    return ServerError if status >= 500 else APIError


def from_response(r: httpx.Response) -> APIError:
    """The exception for an error response, reading `{error, detail, field}` when the body has
    it and falling back to the status line when it does not (a proxy's HTML page, say)."""
    try:
        body = r.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        body = {"error": "http_error", "detail": r.text[:200] or r.reason_phrase}
    detail = body.get("detail")
    field = body.get("field")
    exc = error_class(r.status_code)(
        r.status_code,
        str(body.get("error") or "http_error"),
        detail if isinstance(detail, str) else str(detail),
        field if isinstance(field, str) else None,
        body,
    )
    if isinstance(exc, RateLimited):
        try:
            exc.retry_after = float(r.headers.get("retry-after", ""))
        except ValueError:
            exc.retry_after = None
    return exc
