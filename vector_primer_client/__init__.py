"""A small typed Python client for the vector-primer HTTP API (httpx).

`Client` mirrors the API one method per endpoint; errors are the exceptions of
`vector_primer_client.errors`; response shapes are the TypedDicts of `vector_primer_client.types`.
This package imports neither `indexer` nor `service`: it only speaks HTTP.
"""

from .client import Client
from .errors import (
    APIError,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    NotReady,
    PayloadTooLarge,
    RateLimited,
    ServerError,
    TransportError,
    Unauthorized,
    VectorPrimerError,
)

__all__ = [
    "APIError",
    "Client",
    "Conflict",
    "Forbidden",
    "InvalidInput",
    "NotFound",
    "NotReady",
    "PayloadTooLarge",
    "RateLimited",
    "ServerError",
    "TransportError",
    "Unauthorized",
    "VectorPrimerError",
]
