"""What the API sends back, as TypedDicts: plain dicts at run time (nothing to convert, nothing
to fall out of date silently), typed for editors and mypy. Field meanings are in `/docs`."""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict

Mode = Literal["vector", "keyword", "hybrid"]  # search: nearest vectors, BM25, or both fused
Fusion = Literal["rrf", "convex"]  # hybrid: reciprocal rank fusion, or a blend of scores


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


class KeywordIndex(TypedDict):
    documents: int


class Chunking(TypedDict):
    """A chunked collection's passage budget, in the embedder's tokens."""

    max_tokens: int
    overlap: int


class Collection(TypedDict):
    """`keyword_index` is None when the collection keeps none, `chunking` None when it stores
    texts whole (both absent from services older than hybrid search)."""

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
    keyword_index: NotRequired[KeywordIndex | None]
    chunking: NotRequired[Chunking | None]


class UpsertResult(TypedDict):
    """Summed over the batches the client sent; `count` is the collection's size afterwards.
    `passages` (chunked collections only): the rows written, a long text's passages each."""

    collection: str
    upserted: int
    skipped: int
    count: int
    batches: int
    passages: NotRequired[int]


class DeleteResult(TypedDict):
    deleted: list[str]
    count: int


class Passage(TypedDict):
    """The passage of a chunked document that a hit matched; `start`, `end` are its character
    offsets in the document's text."""

    document: str
    id: str
    index: int
    start: int
    end: int


class Hit(TypedDict):
    """`score` is the fused score in hybrid mode (its sides in `vector_*` and `keyword_*`, rank
    1 = best, absent for a side that did not find the hit). A hit on a passage carries it in
    `passage` and its text; with `group_by_document` `id` is the document's and
    `passages_matched` counts its passages among the candidates."""

    id: str
    score: float
    text: str | None
    metadata: dict[str, Any]
    vector: NotRequired[list[float]]
    vector_score: NotRequired[float]
    vector_rank: NotRequired[int]
    keyword_score: NotRequired[float]
    keyword_rank: NotRequired[int]
    passage: NotRequired[Passage]
    passages_matched: NotRequired[int]


class SearchResult(TypedDict):
    metric: str
    higher_is_better: bool
    hits: list[Hit]


class SearchResults(TypedDict):
    higher_is_better: NotRequired[bool]  # this search's scores (BM25/fused: always higher)
    hits: list[Hit]


class BatchSearchResult(TypedDict):
    metric: str
    higher_is_better: bool
    results: list[SearchResults]


class Search(TypedDict, total=False):
    """One search of a batch, with the fields of `Client.search`: exactly one of `query` (text)
    or `vector` in mode "vector"; modes "keyword" and "hybrid" need `query` (hybrid may add a
    `vector` for its vector side)."""

    query: str
    vector: list[float]
    k: int
    filter: dict[str, Any]
    score_threshold: float
    exact: bool
    with_vectors: bool
    params: dict[str, int]
    mode: Mode
    fusion: Fusion
    rrf_k: int
    alpha: float
    diversity: float
    candidates: int
    group_by_document: bool


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
