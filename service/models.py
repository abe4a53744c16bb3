"""Request and response bodies: `XRequest` / `XResponse`, with a bound on every list and string.

Request models are strict (no "3" for 3, no true for 1), refuse unknown fields (a typo such as
`top_k` is an error, not a silent default) and refuse NaN/Infinity. Bounds that depend on the
settings (`VP_MAX_K`, `VP_MAX_BATCH`) are checked by `check_limits`, naming the field the same way.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

import pydantic_core
from fastapi import Query as QueryParam
from fastapi import Request as HTTPRequest
from fastapi.responses import Response as HTTPResponse
from fastapi.routing import APIRoute
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SkipValidation,
    StrictFloat,
)

from indexer import DocumentIn as EngineDocument
from indexer import Hit, Query, Settings, parse_expression
from indexer.analogy import AnalogyResult
from indexer.errors import InvalidInput
from indexer.store import Doc

MAX_TEXT_CHARS = 100_000
MAX_ID_CHARS = 512
MAX_DIM = 65_536
MAX_K = 10_000
MAX_DOCUMENTS = 100_000  # hard cap; VP_MAX_BATCH is usually lower
MAX_SEARCHES = 256
MAX_TERMS = 16
MAX_SIMILARITY_TEXTS = 256
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


def _not_blank(text: str) -> str:
    if not text.strip():
        raise ValueError("must not be empty or only whitespace")
    return text


Text = Annotated[str, Field(min_length=1, max_length=MAX_TEXT_CHARS), AfterValidator(_not_blank)]
Term = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_not_blank)]
DocId = Annotated[str, Field(min_length=1, max_length=MAX_ID_CHARS)]
Vector = Annotated[list[StrictFloat], Field(min_length=1, max_length=MAX_DIM)]
CollectionName = Annotated[str, Field(pattern=NAME_PATTERN, examples=["articles"])]

# query parameters of routes that both the service and the Ray Serve ingress answer: declared
# once, so the two APIs cannot drift apart
WithVectors = Annotated[bool, QueryParam(description="include each document's stored vector")]
PageLimit = Annotated[int, QueryParam(ge=1, le=1000)]
PageCursor = Annotated[
    str | None, QueryParam(max_length=512, description="next_cursor of the previous page")
]
AnalogyExpression = Annotated[
    str,
    QueryParam(
        min_length=1,
        max_length=500,
        examples=["king-man+woman"],
        description="terms joined by + and -; URL-encode + as %2B",
    ),
]
AnalogyCollection = Annotated[str, QueryParam(pattern=NAME_PATTERN)]
AnalogyK = Annotated[int, QueryParam(ge=1, le=MAX_K)]
Metric = Literal["cosine", "l2", "dot"]


class Request(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)


class Response(BaseModel):
    model_config = ConfigDict(extra="ignore")


def check_at_most(value: int, limit: int, field: str, setting: str) -> None:
    if value > limit:
        raise InvalidInput(
            f"{field} is {value}, more than the limit {limit} ({setting})", field=field
        )


class FieldError(Response):
    field: str
    detail: str


class ErrorResponse(Response):
    error: str = Field(examples=["collection_not_found"])
    detail: str = Field(examples=["no collection named 'articles'"])
    field: str | None = Field(None, examples=["name"])
    errors: list[FieldError] | None = Field(None, exclude_if=lambda v: v is None)


# ---- health --------------------------------------------------------------------------------
class LiveResponse(Response):
    status: Literal["ok"] = "ok"


class ReadyResponse(Response):
    """Details only for callers with a key when API keys are on: probes learn nothing else."""

    status: Literal["ready"] = "ready"
    collections: list[str] | None = Field(None, exclude_if=lambda v: v is None)
    words: str | None = Field(
        None, exclude_if=lambda v: v is None, description="state of the 'words' collection"
    )
    problems: dict[str, str] | None = Field(
        None,
        exclude_if=lambda v: v is None,
        description="collections that could not be opened, and why",
    )


# ---- collections ---------------------------------------------------------------------------
class ChunkingSpec(Request):
    max_tokens: int | None = Field(None, description="passage budget in model tokens")
    overlap: int | None = Field(None, description="tokens shared by consecutive passages")

    def to_engine(self) -> dict[str, int]:
        return {k: v for k, v in self.model_dump().items() if v is not None}


class CreateCollectionRequest(Request):
    name: CollectionName
    metric: Metric = "cosine"
    index: Literal["flat", "hnsw", "ivf", "ivfpq", "sq8"] = "flat"
    params: dict[str, int] | None = Field(None, examples=[{"M": 32, "ef_construction": 200}])
    embedder: str | None = Field(None, max_length=256, description="default: the service's")
    dim: int | None = Field(None, ge=1, le=MAX_DIM, description="only for vector-only collections")
    get_or_create: bool = Field(
        False,
        description="if the collection exists with the same metric, index, embedder and dim, "
        "return it (200) instead of 409; a different spec is still 409",
    )
    keyword_index: bool = Field(
        True, description="keep a BM25 keyword index of the texts (search modes keyword, hybrid)"
    )
    # validated by the engine, which names the field (`chunking.max_tokens`); pydantic would
    # name the union branch it tried (`chunking.bool`)
    chunking: SkipValidation[bool | ChunkingSpec | None] = Field(
        None,
        description="split texts longer than the model takes into passages (true: the model's "
        "limit and 32 tokens of overlap); search with group_by_document for one hit per document",
    )


class CollectionResponse(Response):
    name: str
    metric: str
    index: str
    dim: int
    embedder: str | None
    params: dict[str, Any]
    count: int
    score: str = Field(description="how to read hit scores for this metric")
    seq: int
    generation: int
    ann: dict[str, Any]
    keyword_index: dict[str, Any] | None = Field(None, description="null: none kept")
    chunking: dict[str, Any] | None = None


class CollectionListResponse(Response):
    collections: list[CollectionResponse]


class DropCollectionResponse(Response):
    name: str
    dropped: bool = True


# ---- documents -----------------------------------------------------------------------------
class DocumentIn(Request):
    id: DocId
    text: Text | None = None
    vector: Vector | None = None
    metadata: dict[str, Any] | None = None

    def to_engine(self) -> EngineDocument:
        return EngineDocument(self.id, self.text, self.vector, self.metadata)


class UpsertRequest(Request):
    documents: list[DocumentIn] = Field(min_length=1, max_length=MAX_DOCUMENTS)
    skip_unchanged: bool = Field(
        False,
        description="skip documents stored with the same "
        "text, metadata and vector (for resumable batch jobs)",
    )

    def check_limits(self, settings: Settings) -> None:
        check_at_most(len(self.documents), settings.max_batch, "documents", "VP_MAX_BATCH")


class UpsertResponse(Response):
    collection: str
    upserted: int
    skipped: int
    count: int
    passages: int | None = Field(
        None, description="chunked collections: passages written", exclude_if=lambda v: v is None
    )


class DocumentResponse(Response):
    id: str
    text: str | None
    metadata: dict[str, Any]
    vector: list[float] | None = Field(None, exclude_if=lambda v: v is None)

    @classmethod
    def from_doc(cls, doc: Doc, with_vector: bool) -> DocumentResponse:
        vector = doc.vector.tolist() if with_vector else None
        return cls(id=doc.id, text=doc.text, metadata=doc.metadata, vector=vector)


class DocumentListResponse(Response):
    documents: list[DocumentResponse]
    next_cursor: str | None = Field(
        description="pass as ?cursor= for the next page; null at the end"
    )


class DeleteRequest(Request):
    ids: list[DocId] | None = Field(None, max_length=MAX_DOCUMENTS)
    filter: dict[str, Any] | None = Field(None, min_length=1, examples=[{"source": "news"}])

    def check_limits(self, settings: Settings) -> None:
        check_at_most(len(self.ids or []), settings.max_batch, "ids", "VP_MAX_BATCH")


class DeleteResponse(Response):
    deleted: list[str]
    count: int


# ---- search --------------------------------------------------------------------------------
class SearchParams(Request):
    ef_search: int | None = Field(None, ge=1, le=100_000, description="HNSW breadth")
    nprobe: int | None = Field(None, ge=1, le=100_000, description="IVF lists probed")


class SearchRequest(Request):
    query: Text | None = Field(None, description="text, embedded with the collection's embedder")
    vector: Vector | None = None
    k: int = Field(10, ge=1, le=MAX_K)
    filter: dict[str, Any] | None = Field(None, examples=[{"year": {"$gte": 2020}}])
    score_threshold: float | None = Field(None, description="keep scores at least this good")
    exact: bool = Field(False, description="brute force, even on an ANN index")
    with_vectors: bool = False
    params: SearchParams | None = None
    mode: Literal["vector", "keyword", "hybrid"] = Field(
        "vector",
        description="vector: nearest vectors; keyword: BM25 over the texts; hybrid: both, fused "
        "(query is the text for BM25; vector, if given, is used for the vector side)",
    )
    fusion: Literal["rrf", "convex"] = Field(
        "convex",
        description="hybrid: convex, a blend of min-max scaled scores (alpha); or rrf, reciprocal "
        "rank fusion (rrf_k)",
    )
    rrf_k: int = Field(60, ge=1, le=10_000, description="rrf: score = sum of 1 / (rrf_k + rank)")
    alpha: float = Field(0.5, ge=0, le=1, description="convex: weight of the vector side")
    diversity: float | None = Field(
        None, ge=0, le=1, description="MMR: 0 = plain relevance order, 1 = most diverse"
    )
    candidates: int | None = Field(
        None, ge=2, le=10_000, description="MMR / grouping pool, more than k (default 4k, >= 40)"
    )
    group_by_document: bool = Field(
        False, description="chunked collections: one hit per document, its best passage"
    )

    def check_limits(self, settings: Settings, prefix: str = "") -> None:
        check_at_most(self.k, settings.max_k, f"{prefix}k", "VP_MAX_K")
        if self.mode == "vector" and (self.query is None) == (self.vector is None):
            raise InvalidInput("give exactly one of query (text) or vector", field=f"{prefix}query")
        if self.mode != "vector" and self.query is None:
            raise InvalidInput(f"mode {self.mode!r} needs a query text", field=f"{prefix}query")
        if self.candidates is not None and self.candidates <= self.k:
            raise InvalidInput(
                f"candidates must be greater than k ({self.k})", field=f"{prefix}candidates"
            )

    def to_query(self) -> Query:
        p = self.params
        return Query(
            text=self.query,
            vector=self.vector,
            k=self.k,
            filter=self.filter,
            score_threshold=self.score_threshold,
            exact=self.exact,
            with_vectors=self.with_vectors,
            ef_search=p.ef_search if p else None,
            nprobe=p.nprobe if p else None,
            mode=self.mode,
            fusion=self.fusion,
            rrf_k=self.rrf_k,
            alpha=self.alpha,
            diversity=self.diversity,
            candidates=self.candidates,
            group_by_document=self.group_by_document,
        )


class BatchSearchRequest(Request):
    searches: list[SearchRequest] = Field(min_length=1, max_length=MAX_SEARCHES)

    def check_limits(self, settings: Settings) -> None:
        for i, s in enumerate(self.searches):
            s.check_limits(settings, prefix=f"searches[{i}].")


class PassageInfo(Response):
    document: str
    id: str = Field(description="the passage's own id")
    index: int
    start: int = Field(description="character offsets of the passage in the document's text")
    end: int


class SearchHit(Response):
    id: str = Field(description="with group_by_document: the document's id")
    score: float = Field(description="hybrid: the fused score; MMR keeps the relevance score")
    text: str | None = Field(description="a passage's text for a hit on a passage")
    metadata: dict[str, Any]
    vector: list[float] | None = Field(None, exclude_if=lambda v: v is None)
    vector_score: float | None = Field(None, exclude_if=lambda v: v is None)
    vector_rank: int | None = Field(None, exclude_if=lambda v: v is None)
    keyword_score: float | None = Field(None, exclude_if=lambda v: v is None)
    keyword_rank: int | None = Field(None, exclude_if=lambda v: v is None)
    passage: PassageInfo | None = Field(
        None, description="the passage that matched (chunked)", exclude_if=lambda v: v is None
    )
    passages_matched: int | None = Field(None, exclude_if=lambda v: v is None)

    @classmethod
    def from_hit(cls, h: Hit) -> SearchHit:
        return cls(
            id=h.id, score=h.score, text=h.text, metadata=h.metadata, vector=h.vector, **h.extra
        )


class SearchResponse(Response):
    metric: str
    higher_is_better: bool = Field(
        description="false for a vector search of an l2 collection (a distance), true otherwise "
        "(BM25 and fused scores are higher-is-better whatever the metric)"
    )
    hits: list[SearchHit] = Field(description="best first")

    @classmethod
    def from_hits(cls, metric: str, hits: list[Hit], mode: str = "vector") -> SearchResponse:
        return cls(
            metric=metric,
            higher_is_better=metric != "l2" or mode != "vector",
            hits=[SearchHit.from_hit(h) for h in hits],
        )


def hits_json(hits: list[Hit]) -> list[dict[str, Any]]:
    """Hits as `SearchHit` writes them (the vector only when asked), without building models:
    for k=10 over a large collection this is most of what a search costs in Python."""
    out: list[dict[str, Any]] = []
    for h in hits:
        hit = {"id": h.id, "score": h.score, "text": h.text, "metadata": h.metadata}
        if h.vector is not None:
            hit["vector"] = h.vector
        if h.extra:  # hybrid scores and ranks, the matched passage
            hit.update(h.extra)
        out.append(hit)
    return out


try:  # orjson, when installed, writes the same JSON several times faster
    import orjson

    def dumps(content: Any) -> bytes:
        out: bytes = orjson.dumps(content)
        return out

except ImportError:  # pragma: no cover - depends on the environment

    def dumps(content: Any) -> bytes:
        return json.dumps(
            content, ensure_ascii=False, allow_nan=False, separators=(",", ":")
        ).encode()


class FastJSONRequest(HTTPRequest):
    """A request whose JSON body is parsed by pydantic-core's parser: 9x faster than `json`
    for a 384-float query (33 vs 291 us), 7x for a 1,000-vector upsert. Anything it refuses
    goes to `json.loads`, so malformed bodies fail exactly as before (FastAPI's 422)."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            try:
                self._json = pydantic_core.from_json(body)
            except ValueError:
                self._json = json.loads(body)  # raises the JSONDecodeError FastAPI expects
        return self._json


class FastJSONRoute(APIRoute):
    """Routes whose handlers see a `FastJSONRequest` (FastAPI's custom route class recipe)."""

    def get_route_handler(self) -> Any:
        handler = super().get_route_handler()

        async def route(request: HTTPRequest) -> HTTPResponse:
            response: HTTPResponse = await handler(FastJSONRequest(request.scope, request.receive))
            return response

        return route


class JSONBytes(HTTPResponse):
    """A JSON response from plain data, written once (no response-model re-validation)."""

    media_type = "application/json"

    @classmethod
    def of(cls, content: Any, status_code: int = 200) -> JSONBytes:
        return cls(dumps(content), status_code=status_code)


class SearchResults(Response):
    higher_is_better: bool = Field(description="this search's scores (see SearchResponse)")
    hits: list[SearchHit] = Field(description="best first")


class BatchSearchResponse(Response):
    metric: str
    higher_is_better: bool = Field(description="of the collection's metric (vector searches)")
    results: list[SearchResults] = Field(description="one per search, in request order")


# ---- analogy -------------------------------------------------------------------------------
class AnalogyRequest(Request):
    positive: list[Term] = Field(min_length=1, max_length=MAX_TERMS, examples=[["king", "woman"]])
    negative: list[Term] = Field(default_factory=list, max_length=MAX_TERMS, examples=[["man"]])
    collection: CollectionName = "words"
    k: int = Field(5, ge=1, le=MAX_K)
    method: Literal["3cosadd", "3cosmul"] = "3cosadd"
    exclude_inputs: bool = True

    @classmethod
    def from_expression(
        cls,
        q: str,
        collection: str,
        k: int,
        method: Literal["3cosadd", "3cosmul"],
        exclude_inputs: bool,
    ) -> AnalogyRequest:
        """`GET /v1/analogy?q=king-man%2Bwoman`'s request, its other fields already validated
        by the route's query parameters (the terms are checked where they are used)."""
        positive, negative = parse_expression(q)
        return cls.model_construct(
            positive=positive,
            negative=negative,
            collection=collection,
            k=k,
            method=method,
            exclude_inputs=exclude_inputs,
        )


class AnalogyTerm(Response):
    term: str
    source: str = Field(description="'document' (the term is a document id) or 'embedded'")
    document: str | None


class AnalogyHit(Response):
    id: str
    score: float
    text: str | None
    metadata: dict[str, Any]
    cosines: dict[str, float] = Field(description="cosine of this hit to each input term")


class AnalogyResponse(Response):
    collection: str
    method: str
    expression: str = Field(examples=["king - man + woman"])
    terms: list[AnalogyTerm]
    hits: list[AnalogyHit]

    @classmethod
    def from_result(
        cls, collection: str, positive: list[str], negative: list[str], r: AnalogyResult
    ) -> AnalogyResponse:
        # written the way people say it: king - man + woman
        expr = (
            positive[0]
            + "".join(f" - {t}" for t in negative)
            + "".join(f" + {t}" for t in positive[1:])
        )
        hits = [
            AnalogyHit(id=h.id, score=h.score, text=h.text, metadata=h.metadata, cosines=h.cosines)
            for h in r.hits
        ]
        terms = [AnalogyTerm(**t) for t in r.terms]
        return cls(collection=collection, method=r.method, expression=expr, terms=terms, hits=hits)


# ---- similarity ----------------------------------------------------------------------------
class SimilarityRequest(Request):
    texts: list[Text] = Field(
        min_length=2,
        max_length=MAX_SIMILARITY_TEXTS,
        examples=[["a cat sat on the mat", "a kitten rested on the rug"]],
    )


class PairSimilarity(Response):
    cosine: float
    l2: float
    dot: float
    angle_degrees: float


class SimilarityResponse(Response):
    embedder: str
    dim: int
    texts: list[str]
    cosine: list[list[float]] = Field(description="cos(a, b) = a.b / (|a||b|), higher is closer")
    l2: list[list[float]] = Field(description="|a - b|, lower is closer")
    dot: list[list[float]] = Field(description="a.b, higher is closer")
    angle_degrees: list[list[float]] = Field(description="arccos(cosine) in degrees")
    pair: PairSimilarity | None = Field(
        None, exclude_if=lambda v: v is None, description="the four numbers, for two texts"
    )


# ---- embeddings (the OpenAI wire format) ----------------------------------------------------
MAX_EMBEDDING_INPUTS = 2048  # OpenAI's own limit per request
TOKEN_ARRAYS = (
    "token arrays are not supported, send strings (LangChain: "
    "OpenAIEmbeddings(..., check_embedding_ctx_length=False))"
)


def _check_input(value: Any) -> Any:
    """Clear messages for what OpenAI clients may send: a string, a list of strings, or
    (which we cannot decode: the token ids are another tokenizer's) lists of token ids."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list):
        raise ValueError("input must be a string or a list of strings")
    if not 1 <= len(items) <= MAX_EMBEDDING_INPUTS:
        raise ValueError(f"input must hold 1 to {MAX_EMBEDDING_INPUTS} strings")
    for i, item in enumerate(items):
        if isinstance(item, (int, list)):
            raise ValueError(TOKEN_ARRAYS)
        if not isinstance(item, str) or not item.strip():
            raise ValueError(f"input[{i}] must be a non-empty string")
        if len(item) > MAX_TEXT_CHARS:
            raise ValueError(f"input[{i}] is longer than {MAX_TEXT_CHARS} characters")
    return value


class EmbeddingsRequest(Request):
    input: Annotated[str | list[str], BeforeValidator(_check_input)] = Field(
        examples=["The food was delicious", ["first text", "second text"]]
    )
    model: str | None = Field(None, max_length=256, description="default: the service's embedder")
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, ge=1, description="must equal the model's dimension")
    user: str | None = Field(None, max_length=256, description="accepted and ignored")

    def texts(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)


class Embedding(Response):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str = Field(description="floats, or base64 of little-endian float32")


class Usage(Response):
    prompt_tokens: int
    total_tokens: int


class EmbeddingsResponse(Response):
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: Usage
