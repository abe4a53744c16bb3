"""What the API sends back, as TypedDicts: plain dicts at run time (nothing to convert, nothing
to fall out of date silently), typed for editors and mypy. Field meanings are in `/docs`."""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict


class Document(TypedDict):
    """A document to upsert. `text` is embedded by the server unless `vector` is given."""

    id: str
    text: NotRequired[str | None]
    vector: NotRequired[list[float] | None]
    metadata: NotRequired[dict[str, Any] | None]


class StoredDocument(TypedDict):
    id: str
    text: str | None
    metadata: dict[str, Any]
    vector: NotRequired[list[float]]


class DocumentPage(TypedDict):
    documents: list[StoredDocument]
    next_cursor: str | None


class Collection(TypedDict):
    name: str
    metric: str
    index: str
    dim: int
    embedder: str | None
    params: dict[str, Any]
    count: int
    score: str
    seq: int
    generation: int
    ann: dict[str, Any]


class UpsertResult(TypedDict):
    """Summed over the batches the client sent; `count` is the collection's size afterwards."""

    collection: str
    upserted: int
    skipped: int
    count: int
    batches: int


class DeleteResult(TypedDict):
    deleted: list[str]
    count: int


class Hit(TypedDict):
    id: str
    score: float
    text: str | None
    metadata: dict[str, Any]
    vector: NotRequired[list[float]]


class SearchResult(TypedDict):
    metric: str
    higher_is_better: bool
    hits: list[Hit]


class BatchSearchResult(TypedDict):
    metric: str
    higher_is_better: bool
    results: list[dict[str, list[Hit]]]


class Search(TypedDict, total=False):
    """One search of a batch: exactly one of `query` (text) or `vector`."""

    query: str
    vector: list[float]
    k: int
    filter: dict[str, Any]
    score_threshold: float
    exact: bool
    with_vectors: bool
    params: dict[str, int]


class AnalogyHit(TypedDict):
    id: str
    score: float
    text: str | None
    metadata: dict[str, Any]
    cosines: dict[str, float]


class AnalogyResult(TypedDict):
    collection: str
    method: str
    expression: str
    terms: list[dict[str, Any]]
    hits: list[AnalogyHit]


class Similarity(TypedDict):
    embedder: str
    dim: int
    texts: list[str]
    cosine: list[list[float]]
    l2: list[list[float]]
    dot: list[list[float]]
    angle_degrees: list[list[float]]
    pair: NotRequired[dict[str, float]]


class Embeddings(TypedDict):
    object: str
    data: list[dict[str, Any]]
    model: str
    usage: dict[str, int]


class Softmax(TypedDict):
    probs: list[float]
    kept: list[int]
    sampled_probs: list[float]
    entropy: float
    kept_entropy: float
    temperature: float
    top_p: float | None
    top_k: int | None


class Attention(TypedDict):
    weights: list[list[float]]
    output: list[list[float]]
    tokens: list[str] | None
    embedder: str | None
    causal: bool
    scale: float


class Descent(TypedDict):
    surface: str
    optimizer: str
    lr: float
    trajectory: list[list[float]]
    losses: list[float]
    diverged: bool
    minimum: list[float]


class Explanation(TypedDict):
    topic: str
    title: str
    intuition: str
    formula: str
    for_llm_apps: str
    try_it: list[str]


class Ready(TypedDict):
    """With API keys on, only `status` unless the request carried a key."""

    status: str
    collections: NotRequired[list[str]]
    words: NotRequired[str]
    problems: NotRequired[dict[str, str]]
