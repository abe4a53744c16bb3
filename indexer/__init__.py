"""vector-primer's engine: embedders, FAISS indexes, durable collections, analogy, batch jobs."""

from .analogy import AnalogyResult, analogy, parse_expression
from .collection import Collection, DocumentIn, Hit, Query
from .engine import Engine
from .errors import VPError
from .settings import Settings

__all__ = [
    "AnalogyResult",
    "Collection",
    "DocumentIn",
    "Engine",
    "Hit",
    "Query",
    "Settings",
    "VPError",
    "analogy",
    "parse_expression",
]
