"""Where an evaluation runs: through the engine in this process (`EngineBackend`) or through a
running service's HTTP API (`remote.HttpBackend`). Both offer the same four operations, so every
task is written once and measures whichever path it is given.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from ..collection import Collection, DocumentIn, Query
from ..engine import Engine
from ..errors import CollectionNotFound

# Documents per upsert when filling a search collection, here and over HTTP alike, so both paths
# build their ANN index the same way (as a batch job does: trained at 1,000, retrained as it grows).
UPLOAD_BATCH = 1000
ProgressFactory = Callable[[int, str, str], Any]  # (total, desc, unit) -> tqdm-like or None


@dataclass
class Retrieved:
    """What one index kind returned for every query, and what it cost."""

    ranked: list[list[str]]  # per query: doc ids, best first
    search_seconds: float  # searching (and, over HTTP, embedding) every query
    query_embed_seconds: float  # embedding the queries, when measured apart (engine only)
    build_seconds: float  # filling the collection and building its index
    corpus_embed_seconds: float  # embedding the corpus (0 when it came from the cache)
    collection: dict[str, Any] = field(default_factory=dict)  # the collection's description


@dataclass(frozen=True)
class Mode:
    """One way of searching the reference collection, as a row of the retrieval table."""

    name: str  # the row's label
    mode: str = "vector"  # Query.mode: vector | keyword | hybrid
    fusion: str = "rrf"  # hybrid: rrf | convex
    alpha: float = 0.5  # convex: weight of the vector side
    rrf_k: int = 60
    chunked: bool = False  # search passages, one hit per document (group_by_document)

    @property
    def single(self) -> bool:
        """Vector or keyword alone on whole documents: what a fusion must beat."""
        return self.mode != "hybrid" and not self.chunked

    def request(self, text: str, k: int) -> dict[str, Any]:
        """The same search as a `search/batch` entry (the server embeds the text)."""
        body: dict[str, Any] = {"query": text, "k": k}
        if self.mode != "vector":
            body["mode"] = self.mode
        if self.mode == "hybrid":
            body.update(fusion=self.fusion, alpha=self.alpha, rrf_k=self.rrf_k)
        if self.chunked:
            body["group_by_document"] = True
        return body

    def query(self, text: str, vector: NDArray[np.float32], k: int) -> Query:
        return Query(
            text=text if self.mode != "vector" else None,
            vector=vector if self.mode != "keyword" else None,
            k=k,
            mode=self.mode,
            fusion=self.fusion,
            alpha=self.alpha,
            rrf_k=self.rrf_k,
            group_by_document=self.chunked,
        )


# `--modes` names -> modes. "vector" is the reference row every index kind already gives.
MODES: dict[str, Mode] = {
    "vector": Mode("vector"),
    "keyword": Mode("keyword", mode="keyword"),
    "rrf": Mode("hybrid rrf", mode="hybrid", fusion="rrf"),
    "convex": Mode("hybrid convex 0.5", mode="hybrid", fusion="convex", alpha=0.5),
    "chunks": Mode("vector, chunked", chunked=True),
    "rrf-chunks": Mode("hybrid rrf, chunked", mode="hybrid", fusion="rrf", chunked=True),
}
# Passages of at most the model's limit of word pieces, consecutive ones sharing up to 32.
PASSAGE_OVERLAP = 32


class Backend(Protocol):
    @property
    def via(self) -> str:
        """ "engine", or the service's URL."""
        ...

    @property
    def embedder(self) -> str:
        """The name of the model that embeds the texts."""
        ...

    def pair_cosines(self, left: list[str], right: list[str]) -> NDArray[np.float64]:
        """(n,) cosine of left[i] and right[i]."""
        ...

    def word_vectors(self, words: list[str]) -> NDArray[np.float32]:
        """(n, dim) unit vectors of `words`, in order."""
        ...

    def retrieve(
        self,
        dataset: str,
        corpus: dict[str, str],
        queries: list[str],
        metric: str,
        index: str,
        params: dict[str, Any] | None,
        k: int,
    ) -> Retrieved:
        """Index `corpus` in a fresh collection of this metric and kind, search every query."""
        ...

    def supports(self, mode: Mode) -> bool:
        """Whether `retrieve_modes` can search in this mode."""
        ...

    def retrieve_modes(
        self,
        dataset: str,
        corpus: dict[str, str],
        queries: list[str],
        metric: str,
        index: str,
        params: dict[str, Any] | None,
        k: int,
        modes: Sequence[Mode],
    ) -> list[Retrieved]:
        """As `retrieve`, once per mode (whole-document modes share one fresh collection)."""
        ...


def no_progress(total: int, desc: str, unit: str) -> None:
    return None


def collection_name(*parts: str) -> str:
    """A valid collection name (`[A-Za-z0-9][A-Za-z0-9_.-]{0,63}`) made of `parts`."""
    raw = "-".join(re.sub(r"[^A-Za-z0-9_.-]+", "_", p).strip("_.-") for p in parts)
    name = "eval-" + raw
    if len(name) > 64:
        name = name[:55] + "-" + hashlib.sha256(raw.encode()).hexdigest()[:8]
    return name


def chunks(n: int, size: int) -> list[slice]:
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


class EngineBackend:
    """Runs through the engine: its embedder, collections, FAISS indexes and analogy formulas.

    Collections live in the engine's data directory: `eval-words-*` (a words-style collection of
    a test set's vocabulary) and `eval-<dataset>-<embedder>-vectors` (a corpus embedded once,
    reused for every index kind and every later run; in `cache`'s data directory if given) are
    kept; per-kind search collections are dropped after use unless `keep` is set.
    """

    via = "engine"

    def __init__(
        self,
        engine: Engine,
        progress: ProgressFactory = no_progress,
        keep: bool = False,
        cache: Engine | None = None,
    ) -> None:
        self.engine = engine
        self.cache = cache or engine  # where embedded corpora are kept between runs
        self.progress = progress
        self.keep = keep
        self.embedder = engine.embedder().name
        self._queries: dict[str, tuple[NDArray[np.float32], float]] = {}

    # ---- embedding -------------------------------------------------------------------------
    def _embed(self, texts: list[str], desc: str, batch: int = 256) -> NDArray[np.float32]:
        emb = self.engine.embedder()
        out = np.zeros((len(texts), emb.dim), dtype=np.float32)
        bar = self.progress(len(texts), desc, "text")
        for s in chunks(len(texts), batch):
            out[s] = emb.embed(texts[s])
            if bar is not None:
                bar.update(s.stop - s.start)
        if bar is not None:
            bar.close()
        return out

    def pair_cosines(self, left: list[str], right: list[str]) -> NDArray[np.float64]:
        unique = sorted(set(left) | set(right))  # each sentence embedded once
        where = {s: i for i, s in enumerate(unique)}
        X = self._embed(unique, "embedding sentences").astype(np.float64)  # (u, d)
        A = X[[where[s] for s in left]]  # (n, d)
        B = X[[where[s] for s in right]]  # (n, d)
        norms = np.linalg.norm(A, axis=1) * np.linalg.norm(B, axis=1)
        return np.asarray((A * B).sum(axis=1) / np.where(norms == 0, 1.0, norms))

    # ---- words -----------------------------------------------------------------------------
    def words_collection(self, words: list[str]) -> Collection:
        """A words-style collection (id = text = word, flat cosine) holding exactly `words`."""
        unique = sorted(set(words))
        key = hashlib.sha256("\n".join([self.embedder, *unique]).encode()).hexdigest()[:12]
        col = self.engine.create_collection(
            collection_name("words", key), metric="cosine", index="flat", exist_ok=True
        )
        bar = self.progress(len(unique), "embedding words", "word")
        for s in chunks(len(unique), 512):
            col.upsert([DocumentIn(id=w, text=w) for w in unique[s]], skip_unchanged=True)
            if bar is not None:
                bar.update(s.stop - s.start)
        if bar is not None:
            bar.close()
        return col

    def word_vectors(self, words: list[str]) -> NDArray[np.float32]:
        col = self.words_collection(words)
        labels, unit = col.unit_vectors()
        row = {col.id_by_label[int(lab)]: i for i, lab in enumerate(labels)}
        return unit[[row[w] for w in words]]

    # ---- retrieval -------------------------------------------------------------------------
    def corpus_vectors(
        self, dataset: str, corpus: dict[str, str]
    ) -> tuple[dict[str, NDArray[np.float32]], float]:
        """Every document's vector, embedded once into `eval-<dataset>-<embedder>-vectors` and
        read back from there on later runs (a changed text is re-embedded). Returns (vectors,
        seconds spent embedding)."""
        col = self.cache.create_collection(
            collection_name(dataset, self.embedder, "vectors"),
            metric="cosine",
            index="flat",
            embedder=self.embedder,
            exist_ok=True,
        )
        ids = sorted(corpus)
        seconds = self._fill(col, corpus, 128, f"embedding {dataset}")
        vectors: dict[str, NDArray[np.float32]] = {}
        for s in chunks(len(ids), 500):
            vectors.update((d.id, d.vector) for d in col.store.get(ids[s]))
        return vectors, seconds

    def _query_vectors(self, queries: list[str]) -> tuple[NDArray[np.float32], float]:
        key = hashlib.sha256("\n".join(queries).encode()).hexdigest()
        if key not in self._queries:
            t0 = time.perf_counter()
            vectors = self._embed(queries, "embedding queries")
            self._queries = {key: (vectors, time.perf_counter() - t0)}
        return self._queries[key]

    def retrieve(
        self,
        dataset: str,
        corpus: dict[str, str],
        queries: list[str],
        metric: str,
        index: str,
        params: dict[str, Any] | None,
        k: int,
    ) -> Retrieved:
        return self.retrieve_modes(dataset, corpus, queries, metric, index, params, k)[0]

    def supports(self, mode: Mode) -> bool:
        return True

    def retrieve_modes(
        self,
        dataset: str,
        corpus: dict[str, str],
        queries: list[str],
        metric: str,
        index: str,
        params: dict[str, Any] | None,
        k: int,
        modes: Sequence[Mode] = (MODES["vector"],),
    ) -> list[Retrieved]:
        """Search every query in each mode: whole-document modes on one fresh collection of this
        metric and kind, filled from the cached vectors (its keyword index built as it fills);
        chunked modes on the cached passage collection (flat cosine)."""
        vectors, corpus_seconds = self.corpus_vectors(dataset, corpus)
        Q, query_seconds = self._query_vectors(queries)
        out: dict[Mode, Retrieved] = {}
        whole = [m for m in modes if not m.chunked]
        if whole:
            name = collection_name(dataset, metric, index)
            with contextlib.suppress(CollectionNotFound):
                self.engine.drop_collection(name)  # a fresh index every run
            t0 = time.perf_counter()
            col = self.engine.create_collection(name, metric=metric, index=index, params=params)
            ids = list(vectors)
            for s in chunks(len(ids), UPLOAD_BATCH):  # as a batch job fills a collection
                col.upsert([DocumentIn(id=d, text=corpus[d], vector=vectors[d]) for d in ids[s]])
            build_seconds = time.perf_counter() - t0
            try:
                described = col.describe()
                for i, mode in enumerate(whole):
                    ranked, seconds = self._search(col, mode, queries, Q, k)
                    out[mode] = Retrieved(
                        ranked,
                        seconds,
                        query_seconds if mode.mode != "keyword" else 0.0,
                        build_seconds,
                        corpus_seconds if i == 0 else 0.0,
                        described,
                    )
            finally:
                if not self.keep:
                    self.engine.drop_collection(name)
        chunked = [m for m in modes if m.chunked]
        if chunked:
            col, passage_seconds = self.passage_collection(dataset, corpus)
            described = col.describe()
            for i, mode in enumerate(chunked):
                ranked, seconds = self._search(col, mode, queries, Q, k)
                out[mode] = Retrieved(
                    ranked,
                    seconds,
                    query_seconds if mode.mode != "keyword" else 0.0,
                    0.0,  # kept between runs, like the embedded corpus
                    passage_seconds if i == 0 else 0.0,
                    described,
                )
        return [out[m] for m in modes]

    def _search(
        self, col: Collection, mode: Mode, queries: list[str], Q: NDArray[np.float32], k: int
    ) -> tuple[list[list[str]], float]:
        """Each query's hit ids, best first, and the seconds all the searches took."""
        col.search(mode.query(queries[0], Q[0], k))  # warm-up: first-call costs are not per query
        ranked: list[list[str]] = []
        t0 = time.perf_counter()
        for s in chunks(len(queries), 100):
            batch = [mode.query(t, v, k) for t, v in zip(queries[s], Q[s], strict=True)]
            ranked.extend([h.id for h in row] for row in col.search_batch(batch))
        return ranked, time.perf_counter() - t0

    def passage_collection(self, dataset: str, corpus: dict[str, str]) -> tuple[Collection, float]:
        """The corpus split into passages of at most the model's limit of tokens (sharing up to
        PASSAGE_OVERLAP), each embedded, in `eval-<dataset>-<embedder>-passages-<max>-<overlap>`:
        kept between runs like the whole-document vectors. Returns (collection, seconds spent
        embedding)."""
        max_tokens = int(getattr(self.engine.embedder(), "max_tokens", 256))
        col = self.cache.create_collection(
            collection_name(
                dataset, self.embedder, "passages", str(max_tokens), str(PASSAGE_OVERLAP)
            ),
            metric="cosine",
            index="flat",
            embedder=self.embedder,
            chunking={"max_tokens": max_tokens, "overlap": PASSAGE_OVERLAP},
            exist_ok=True,
        )
        return col, self._fill(col, corpus, 64, f"embedding {dataset} passages")

    def _fill(self, col: Collection, corpus: dict[str, str], batch: int, desc: str) -> float:
        """Upsert the corpus's texts that `col` does not hold yet (or holds changed); returns
        the seconds spent, 0.0 when there was nothing to embed."""
        ids = sorted(corpus)
        t0, embedded = time.perf_counter(), 0
        bar = self.progress(len(ids), desc, "doc")
        for s in chunks(len(ids), batch):
            done = col.upsert(
                [DocumentIn(id=d, text=corpus[d]) for d in ids[s]], skip_unchanged=True
            )
            embedded += done["upserted"]
            if bar is not None:
                bar.update(s.stop - s.start)
        if bar is not None:
            bar.close()
        return time.perf_counter() - t0 if embedded else 0.0
