"""`Client`: the HTTP API as Python methods, one per endpoint, over httpx.

    from vector_primer_client import Client

    with Client("http://127.0.0.1:8000", api_key="s3cret") as vp:
        vp.create_collection("notes", get_or_create=True)
        vp.upsert("notes", ({"id": str(i), "text": t} for i, t in enumerate(texts)))
        hits = vp.search("notes", "a quiet evening at home", k=3)["hits"]

Errors come back as exceptions from `vector_primer_client.errors` (`NotFound`, `Conflict`,
`InvalidInput`, ...), each with the API's `error`, `detail` and `field`.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, Literal, cast
from urllib.parse import quote

import httpx

from . import types as t
from .errors import APIError, NotReady, TransportError, from_response
from .types import Fusion, Mode

DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_BATCH = 256  # documents per upsert request
DEFAULT_BATCH_BYTES = 8 * 1024 * 1024  # well under the server's default 32 MiB body limit
_DOC_INDEX = re.compile(r"^documents\[(\d+)\]")

Metric = Literal["cosine", "l2", "dot"]
IndexKind = Literal["flat", "hnsw", "ivf", "ivfpq", "sq8"]
Method = Literal["3cosadd", "3cosmul"]
Plot = Literal["softmax", "attention", "descent", "complexity"]


class Client:
    """A vector-primer service at `url`. `api_key` goes as `Authorization: Bearer <key>`.

    Pass `http` to reuse an httpx client you already have (a `TestClient`, a client with a
    `MockTransport`, proxies...); this client then never closes it.
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        api_key: str | None = None,
        *,
        timeout: float = 60.0,
        batch_size: int = DEFAULT_BATCH,
        batch_bytes: int = DEFAULT_BATCH_BYTES,
        http: httpx.Client | None = None,
    ) -> None:
        if batch_size < 1 or batch_bytes < 1:
            raise ValueError("batch_size and batch_bytes must be positive")
        self.url = url.rstrip("/")
        self.batch_size, self.batch_bytes = batch_size, batch_bytes
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._own = http is None
        self._http = http if http is not None else httpx.Client(timeout=timeout)

    # ---- plumbing ---------------------------------------------------------------------------
    def close(self) -> None:
        if self._own:
            self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
    ) -> httpx.Response:
        """One call; an error status raises the matching `APIError`, a network failure
        `TransportError`."""
        try:
            r = self._http.request(
                method, self.url + path, json=json, params=params, headers=self._headers
            )
        except httpx.HTTPError as e:
            raise TransportError(f"{method} {self.url}{path}: {e}") from e
        if r.status_code >= 400:
            raise from_response(r)
        return r

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.request(method, path, **kwargs).json()

    @staticmethod
    def _seg(value: str) -> str:
        return quote(value, safe="")

    def _col(self, name: str) -> str:
        return f"/v1/collections/{self._seg(name)}"

    # ---- health -----------------------------------------------------------------------------
    def livez(self) -> dict[str, str]:
        return cast(dict[str, str], self._json("GET", "/livez"))

    def readyz(self) -> t.Ready:
        """Collections open and `words` built; raises `NotReady` (503) while starting."""
        return cast(t.Ready, self._json("GET", "/readyz"))

    def wait_ready(self, timeout: float = 120.0, interval: float = 0.25) -> t.Ready:
        """Poll `/readyz` until it answers 200; `NotReady` or `TransportError` after `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.readyz()
            except (NotReady, TransportError):
                if time.monotonic() >= deadline:
                    raise
            time.sleep(interval)

    def metrics(self) -> str:
        """The Prometheus text exposition of `GET /metrics`."""
        return self.request("GET", "/metrics").text

    # ---- collections ------------------------------------------------------------------------
    def list_collections(self) -> list[t.Collection]:
        return cast(list[t.Collection], self._json("GET", "/v1/collections")["collections"])

    def create_collection(
        self,
        name: str,
        *,
        metric: Metric = "cosine",
        index: IndexKind = "flat",
        params: Mapping[str, int] | None = None,
        embedder: str | None = None,
        dim: int | None = None,
        get_or_create: bool = False,
        keyword_index: bool = True,
        chunking: bool | Mapping[str, int] | None = None,
    ) -> t.Collection:
        """A new empty collection; `Conflict` if it exists (unless `get_or_create` and the same
        spec). With `dim` and no embedder it stores only the vectors you send.

        `keyword_index=False` keeps no BM25 index (then only `mode="vector"` searches).
        `chunking=True` (or `{"max_tokens": n, "overlap": m}`) stores texts longer than the
        model takes as passages; search them with `group_by_document=True` for one hit each."""
        body: dict[str, Any] = {"name": name, "metric": metric, "index": index}
        for key, value in (("params", params), ("embedder", embedder), ("dim", dim)):
            if value is not None:
                body[key] = dict(value) if isinstance(value, Mapping) else value
        if get_or_create:
            body["get_or_create"] = True
        # only what differs from the server's defaults, so older calls send the same body
        if not keyword_index:
            body["keyword_index"] = False
        if chunking is not None and chunking is not False:
            body["chunking"] = dict(chunking) if isinstance(chunking, Mapping) else chunking
        return cast(t.Collection, self._json("POST", "/v1/collections", json=body))

    def get_collection(self, name: str) -> t.Collection:
        return cast(t.Collection, self._json("GET", self._col(name)))

    def drop_collection(self, name: str) -> None:
        self.request("DELETE", self._col(name))

    # ---- documents --------------------------------------------------------------------------
    def upsert(
        self,
        collection: str,
        documents: Iterable[t.Document | Mapping[str, Any]],
        *,
        skip_unchanged: bool = False,
        batch_size: int | None = None,
    ) -> t.UpsertResult:
        """Insert or replace documents, sent in batches of at most `batch_size` documents and
        `batch_bytes` of JSON (any iterable: a generator is read one batch at a time).

        Each batch is stored all or nothing and durably before the next is sent. On an error,
        the batches before it are stored and the exception's `field` counts from the first
        document of the whole call (`documents[300].text`); re-run with `skip_unchanged=True`
        to resume without re-embedding what was stored."""
        out: t.UpsertResult = {
            "collection": collection,
            "upserted": 0,
            "skipped": 0,
            "count": 0,
            "batches": 0,
        }
        offset = 0
        for batch in self._batches(documents, batch_size or self.batch_size):
            body = {"documents": batch, "skip_unchanged": skip_unchanged}
            try:
                r = self._json("PUT", f"{self._col(collection)}/documents", json=body)
            except APIError as e:
                _shift_field(e, offset)
                raise
            out["upserted"] += int(r["upserted"])
            out["skipped"] += int(r["skipped"])
            out["count"] = int(r.get("count", out["count"]))
            if "passages" in r:  # chunked collections: rows written, passages included
                out["passages"] = out.get("passages", 0) + int(r["passages"])
            out["batches"] += 1
            offset += len(batch)
        if out["batches"] == 0:
            out["count"] = self.get_collection(collection)["count"]
        return out

    def _batches(
        self, documents: Iterable[t.Document | Mapping[str, Any]], size: int
    ) -> Iterator[list[dict[str, Any]]]:
        batch: list[dict[str, Any]] = []
        nbytes = 0
        for doc in documents:
            d = dict(doc)
            n = len(json.dumps(d, separators=(",", ":"))) + 1
            if batch and (len(batch) >= size or nbytes + n > self.batch_bytes):
                yield batch
                batch, nbytes = [], 0
            batch.append(d)
            nbytes += n
        if batch:
            yield batch

    def get_document(
        self, collection: str, doc_id: str, *, with_vector: bool = False
    ) -> t.StoredDocument:
        path = f"{self._col(collection)}/documents/{self._seg(doc_id)}"
        params = {"with_vectors": "true"} if with_vector else None
        return cast(t.StoredDocument, self._json("GET", path, params=params))

    def list_documents(
        self,
        collection: str,
        *,
        limit: int = 100,
        cursor: str | None = None,
        with_vectors: bool = False,
    ) -> t.DocumentPage:
        """One page in id order; pass its `next_cursor` for the next (None at the end)."""
        params: dict[str, Any] = {"limit": limit}
        if cursor is not None:
            params["cursor"] = cursor
        if with_vectors:
            params["with_vectors"] = "true"
        path = f"{self._col(collection)}/documents"
        return cast(t.DocumentPage, self._json("GET", path, params=params))

    def iter_documents(
        self, collection: str, *, page_size: int = 1000, with_vectors: bool = False
    ) -> Iterator[t.StoredDocument]:
        """Every document, page by page."""
        cursor: str | None = None
        while True:
            page = self.list_documents(
                collection, limit=page_size, cursor=cursor, with_vectors=with_vectors
            )
            yield from page["documents"]
            cursor = page["next_cursor"]
            if cursor is None:
                return

    def delete_document(self, collection: str, doc_id: str) -> t.DeleteResult:
        """Delete one document; `NotFound` if it is not there."""
        path = f"{self._col(collection)}/documents/{self._seg(doc_id)}"
        return cast(t.DeleteResult, self._json("DELETE", path))

    def delete_documents(
        self,
        collection: str,
        ids: Sequence[str] | None = None,
        *,
        filter: Mapping[str, Any] | None = None,
    ) -> t.DeleteResult:
        """Delete by ids and/or a metadata filter; `deleted` lists the ids that were there."""
        body: dict[str, Any] = {}
        if ids is not None:
            body["ids"] = list(ids)
        if filter is not None:
            body["filter"] = dict(filter)
        path = f"{self._col(collection)}/documents/delete"
        return cast(t.DeleteResult, self._json("POST", path, json=body))

    # ---- search -----------------------------------------------------------------------------
    def search(
        self,
        collection: str,
        query: str | None = None,
        *,
        vector: Sequence[float] | None = None,
        k: int = 10,
        filter: Mapping[str, Any] | None = None,
        score_threshold: float | None = None,
        exact: bool = False,
        with_vectors: bool = False,
        ef_search: int | None = None,
        nprobe: int | None = None,
        mode: Mode = "vector",
        fusion: Fusion | None = None,
        rrf_k: int | None = None,
        alpha: float | None = None,
        diversity: float | None = None,
        candidates: int | None = None,
        group_by_document: bool = False,
    ) -> t.SearchResult:
        """Nearest documents to a text (`query`) or a `vector`, best first.

        `mode="keyword"` ranks by BM25 over the texts; `mode="hybrid"` fuses both (`query` is
        the text for BM25, `vector`, if given, the vector side) by `fusion` "convex" (the server's
        default; `alpha`, the vector side's weight, default 0.5) or "rrf" (`rrf_k`, default 60); its
        hits carry `vector_score`/`vector_rank` and `keyword_score`/`keyword_rank`.
        `diversity` (0..1) reorders by MMR among `candidates` (more than k); with
        `group_by_document` a chunked collection answers one hit per document, its best
        passage in `passage`. Unset options are not sent: the server's defaults apply."""
        body = _search_body(
            query, vector, k, filter, score_threshold, exact, with_vectors, ef_search, nprobe
        )
        body |= _retrieval_options(
            mode, fusion, rrf_k, alpha, diversity, candidates, group_by_document
        )
        path = f"{self._col(collection)}/search"
        return cast(t.SearchResult, self._json("POST", path, json=body))

    def search_batch(self, collection: str, searches: Sequence[t.Search]) -> t.BatchSearchResult:
        """Several searches in one request; `results[i]["hits"]` answers `searches[i]`."""
        body = {"searches": [dict(s) for s in searches]}
        path = f"{self._col(collection)}/search/batch"
        return cast(t.BatchSearchResult, self._json("POST", path, json=body))

    # ---- analogy, similarity, embeddings ----------------------------------------------------
    def analogy(
        self,
        positive: Sequence[str],
        negative: Sequence[str] = (),
        *,
        collection: str = "words",
        k: int = 5,
        method: Method = "3cosadd",
        exclude_inputs: bool = True,
    ) -> t.AnalogyResult:
        """`analogy(["king", "woman"], ["man"])`: queen first, with each hit's cosines."""
        body = {
            "positive": list(positive),
            "negative": list(negative),
            "collection": collection,
            "k": k,
            "method": method,
            "exclude_inputs": exclude_inputs,
        }
        return cast(t.AnalogyResult, self._json("POST", "/v1/analogy", json=body))

    def analogy_expression(
        self,
        expression: str,
        *,
        collection: str = "words",
        k: int = 5,
        method: Method = "3cosadd",
        exclude_inputs: bool = True,
    ) -> t.AnalogyResult:
        """The same written as arithmetic: `analogy_expression("king - man + woman")`."""
        params = {
            "q": expression,
            "collection": collection,
            "k": k,
            "method": method,
            "exclude_inputs": str(exclude_inputs).lower(),
        }
        return cast(t.AnalogyResult, self._json("GET", "/v1/analogy", params=params))

    def similarity(self, texts: Sequence[str]) -> t.Similarity:
        """Cosine, L2, dot and angle between every pair of texts."""
        return cast(t.Similarity, self._json("POST", "/v1/similarity", json={"texts": list(texts)}))

    def embeddings(
        self,
        input: str | Sequence[str],
        *,
        model: str | None = None,
        encoding_format: Literal["float", "base64"] = "float",
    ) -> t.Embeddings:
        """OpenAI's embeddings format: `data[i]["embedding"]` for `input[i]`."""
        body: dict[str, Any] = {
            "input": input if isinstance(input, str) else list(input),
            "encoding_format": encoding_format,
        }
        if model is not None:
            body["model"] = model
        return cast(t.Embeddings, self._json("POST", "/v1/embeddings", json=body))

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Just the vectors, in input order."""
        data = self.embeddings(list(texts))["data"]
        return [d["embedding"] for d in sorted(data, key=lambda d: int(d["index"]))]

    # ---- math -------------------------------------------------------------------------------
    def softmax(
        self,
        logits: Sequence[float],
        temperature: float = 1.0,
        *,
        top_p: float | None = None,
        top_k: int | None = None,
    ) -> t.Softmax:
        body: dict[str, Any] = {"logits": list(logits), "temperature": temperature}
        if top_p is not None:
            body["top_p"] = top_p
        if top_k is not None:
            body["top_k"] = top_k
        return cast(t.Softmax, self._json("POST", "/v1/math/softmax", json=body))

    def attention(
        self,
        text: str | None = None,
        *,
        Q: Sequence[Sequence[float]] | None = None,
        K: Sequence[Sequence[float]] | None = None,
        V: Sequence[Sequence[float]] | None = None,
        causal: bool = False,
    ) -> t.Attention:
        """Self-attention over a text's tokens, or softmax(Q K^T / sqrt(d)) V for matrices."""
        body: dict[str, Any] = {"causal": causal}
        if text is not None:
            body["text"] = text
        for key, m in (("Q", Q), ("K", K), ("V", V)):
            if m is not None:
                body[key] = [list(row) for row in m]
        return cast(t.Attention, self._json("POST", "/v1/math/attention", json=body))

    def descent(
        self,
        surface: Literal["bowl", "rosenbrock", "saddle"] = "rosenbrock",
        optimizer: Literal["sgd", "momentum", "adam", "adamw"] = "adam",
        *,
        lr: float | None = None,
        steps: int = 200,
        start: tuple[float, float] | None = None,
        weight_decay: float | None = None,
    ) -> t.Descent:
        body: dict[str, Any] = {"surface": surface, "optimizer": optimizer, "steps": steps}
        for key, value in (("lr", lr), ("start", start), ("weight_decay", weight_decay)):
            if value is not None:
                body[key] = list(value) if isinstance(value, tuple) else value
        return cast(t.Descent, self._json("POST", "/v1/math/descent", json=body))

    def topics(self) -> list[str]:
        return cast(list[str], self._json("GET", "/v1/math/explain")["topics"])

    def explain(self, topic: str) -> t.Explanation:
        path = f"/v1/math/explain/{self._seg(topic)}"
        return cast(t.Explanation, self._json("GET", path))

    def plot(self, name: Plot, **params: Any) -> bytes:
        """A primer_math plot as PNG bytes, e.g. `plot("descent", optimizer="sgd")`."""
        return self.request("GET", f"/v1/math/plot/{name}", params=params or None).content


def _search_body(
    query: str | None,
    vector: Sequence[float] | None,
    k: int,
    filter: Mapping[str, Any] | None,
    score_threshold: float | None,
    exact: bool,
    with_vectors: bool,
    ef_search: int | None,
    nprobe: int | None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"k": k, "exact": exact, "with_vectors": with_vectors}
    if query is not None:
        body["query"] = query
    if vector is not None:
        body["vector"] = [float(x) for x in vector]
    if filter is not None:
        body["filter"] = dict(filter)
    if score_threshold is not None:
        body["score_threshold"] = score_threshold
    params = {k: v for k, v in (("ef_search", ef_search), ("nprobe", nprobe)) if v is not None}
    if params:
        body["params"] = params
    return body


def _retrieval_options(
    mode: Mode,
    fusion: Fusion | None,
    rrf_k: int | None,
    alpha: float | None,
    diversity: float | None,
    candidates: int | None,
    group_by_document: bool,
) -> dict[str, Any]:
    """The hybrid / MMR / grouping fields a search sends: only those not left at the default,
    so a plain vector search sends the same body as before they existed.

    >>> _retrieval_options("vector", None, None, None, None, None, False)
    {}
    >>> _retrieval_options("hybrid", "convex", None, 0.7, None, None, True)
    {'mode': 'hybrid', 'fusion': 'convex', 'alpha': 0.7, 'group_by_document': True}
    """
    body: dict[str, Any] = {} if mode == "vector" else {"mode": mode}
    given = (
        ("fusion", fusion),
        ("rrf_k", rrf_k),
        ("alpha", alpha),
        ("diversity", diversity),
        ("candidates", candidates),
    )
    body |= {key: value for key, value in given if value is not None}
    if group_by_document:
        body["group_by_document"] = True
    return body


def _shift_field(e: APIError, offset: int) -> None:
    """`documents[3].text` of the third batch is `documents[515].text` of the whole call.

    >>> e = APIError(422, "invalid_input", "documents[3].text: too long", "documents[3].text")
    >>> _shift_field(e, 512); e.field, e.detail
    ('documents[515].text', 'documents[515].text: too long')
    """
    if not offset or e.field is None:
        return
    m = _DOC_INDEX.match(e.field)
    if m is None:
        return
    shifted = f"documents[{int(m.group(1)) + offset}]"
    old = m.group(0)
    e.field = shifted + e.field[len(old) :]
    e.detail = e.detail.replace(old, shifted, 1)
    e.args = (f"HTTP {e.status} {e.error}: {e.detail}",)
