"""A collection split into N shards, searched as one: per-shard top lists, merged, then ranked once.

Layout (written by `index build --ray`, indexer/ray_jobs.py):

    <data_dir>/<name>/shards.json          {"format": 1, "name", "shards": ["shard-0", ...], ...}
    <data_dir>/<name>/shard-<i>/           a complete collection in the usual durable format

A document lives in shard `shard_of(id, n)`; a chunked document's passages are written by its
shard's upsert, so they all live on that shard too. Why merging per-shard top-k is exact: the
global top-k is a set of k documents, and each of them is within the top-k of its own shard (a
shard holds a subset of the corpus, so fewer documents can beat it there). So the union of the
N per-shard top-k lists contains the global top-k, and sorting that union by score finds it.

Every mode is ranked the same way (`search_plan`): each shard returns only its top lists, the
merge happens once, and everything that depends on the whole candidate list happens after it:
- vector: the per-shard vector top lists, merged (exact, as above);
- keyword: the per-shard BM25 top lists, merged by score. Caveat: BM25's IDF (and average
  document length) are each shard's own, as in Milvus Lite where "IDF is segment-local", so a
  word's weight differs a little between shards and the ranking is close to, not equal to, one
  collection's over the same documents;
- hybrid: each shard's vector and keyword top-D (D = max(pool, retrieve.HYBRID_DEPTH)), each
  side merged globally, then fused once (`retrieve.fuse_sides`): min-max ranges and ranks are
  the global ones, not each shard's;
- grouping by document, score thresholds and MMR (diversity) run on the merged list, and only
  the final k hits are fetched from their shards.

Global labels: shard i's label `lab` becomes `lab * n + i`, unique across shards.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from . import retrieve
from .collection import Collection, DocumentIn, Hit, Query
from .errors import CorruptCollection, DocumentNotFound, InvalidInput
from .filters import compile_filter
from .index import higher_is_better
from .store import Doc, fsync_dir

SHARDS_FILE = "shards.json"
FORMAT = 1


def shard_of(doc_id: str, n: int) -> int:
    """The shard of a document: a stable hash of its id, modulo n (the same on every machine
    and Python run, unlike `hash()`).

    >>> [shard_of("a", 2), shard_of("a", 2) == shard_of("a", 2)]
    [1, True]
    """
    return int.from_bytes(hashlib.blake2b(doc_id.encode(), digest_size=8).digest()) % n


def shard_names(n: int) -> list[str]:
    return [f"shard-{i}" for i in range(n)]


def write_shards_file(path: Path, info: dict[str, Any]) -> None:
    """Write `<path>/shards.json` atomically (temp file, fsync, rename)."""
    tmp = path / f".{SHARDS_FILE}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump({"format": FORMAT, **info}, f, indent=2, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path / SHARDS_FILE)
    fsync_dir(path)


def read_shards_file(path: Path) -> dict[str, Any]:
    try:
        info: dict[str, Any] = json.loads((path / SHARDS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise CorruptCollection(f"{path / SHARDS_FILE}: {e}") from e
    names = info.get("shards")
    if info.get("format") != FORMAT or not isinstance(names, list) or not names:
        raise CorruptCollection(f"{path / SHARDS_FILE}: not a format-{FORMAT} shard manifest")
    return info


def merge_top_k(
    scores: list[NDArray[np.float64]], k: int, higher_better: bool
) -> list[tuple[int, int]]:
    """The k best (shard, rank) pairs over per-shard result lists, each already sorted best
    first. Ties keep shard order, then rank order (a stable sort), so the merge is
    deterministic.

    >>> merge_top_k([np.array([0.9, 0.5]), np.array([0.7, 0.6])], 3, True)
    [(0, 0), (1, 0), (1, 1)]
    """
    shard = np.concatenate([np.full(len(s), i) for i, s in enumerate(scores)]).astype(np.int64)
    rank = np.concatenate([np.arange(len(s)) for s in scores]).astype(np.int64)
    flat = np.concatenate([np.asarray(s, dtype=np.float64) for s in scores])
    order = np.argsort(-flat if higher_better else flat, kind="stable")[:k]
    return [(int(shard[j]), int(rank[j])) for j in order]


class _ShardedStore:
    """Just enough of a Store for indexer/analogy.py: documents by global label."""

    def __init__(self, shards: list[Collection]) -> None:
        self.shards = shards

    def get_by_labels(self, labels: list[int]) -> dict[int, Doc]:
        n = len(self.shards)
        out: dict[int, Doc] = {}
        for i, col in enumerate(self.shards):
            mine = [lab for lab in labels if lab % n == i]
            for lab, doc in col.store.get_by_labels([lab // n for lab in mine]).items():
                out[lab * n + i] = doc
        return out


class ShardedCollection(Collection):
    """N collections with the Collection read API. It subclasses Collection only so the engine
    can hand it out where a Collection is expected; every method a caller uses is overridden
    here, and writes are refused (a sharded collection is written by `index build --ray`)."""

    def __init__(self, path: Path, shards: list[Collection], info: dict[str, Any]) -> None:
        # no super().__init__: this object holds no store or index of its own
        self.path, self.name, self.info = path, path.name, info
        self.shards = shards
        first = shards[0]
        self.embedder = first.embedder
        self.metric, self.kind, self.dim = first.metric, first.kind, first.dim
        self.embedder_name, self.params = first.embedder_name, first.params
        self.manifest = {**first.manifest, "name": self.name, "shards": len(shards)}
        for col in shards[1:]:
            if col.spec() != first.spec():
                raise CorruptCollection(
                    f"shards of {self.name!r} disagree: {col.spec()} vs {first.spec()}"
                )
        self.store = _ShardedStore(shards)  # type: ignore[assignment]
        self._maps_seq: tuple[int, ...] = ()
        self.id_by_label, self.label_by_id = {}, {}

    @classmethod
    def open(cls, path: Path, open_collection: Callable[[Path], Collection]) -> ShardedCollection:
        info = read_shards_file(path)
        return cls(path, [open_collection(path / name) for name in info["shards"]], info)

    # ---- bookkeeping --------------------------------------------------------------------------
    def sync(self) -> None:
        for col in self.shards:
            col.sync()
        seqs = tuple(col.seq for col in self.shards)
        if seqs != self._maps_seq:
            n = len(self.shards)
            self.id_by_label = {
                lab * n + i: doc_id
                for i, col in enumerate(self.shards)
                for lab, doc_id in col.id_by_label.items()
            }
            self.label_by_id = {d: lab for lab, d in self.id_by_label.items()}
            self._maps_seq = seqs

    @property
    def read_only(self) -> str | None:
        return "a sharded collection is written by `vector-primer index build --ray`"

    def close(self) -> None:
        for col in self.shards:
            col.close()

    def snapshot(self, force: bool = False) -> Path | None:
        for col in self.shards:
            col.snapshot(force)
        return None

    def rebuild(self) -> None:
        for col in self.shards:
            col.rebuild()

    def upsert(self, docs: list[DocumentIn], skip_unchanged: bool = False) -> dict[str, int]:
        raise InvalidInput(f"collection {self.name!r} is sharded: {self.read_only}", field="name")

    def delete(
        self, ids: list[str] | None = None, where: dict[str, Any] | None = None
    ) -> list[str]:
        raise InvalidInput(f"collection {self.name!r} is sharded: {self.read_only}", field="name")

    def backup(self, dest: Path) -> dict[str, Any]:
        raise InvalidInput(
            f"collection {self.name!r} is sharded: back up its shard folders", field="name"
        )

    # ---- reads --------------------------------------------------------------------------------
    def count(self) -> int:
        return sum(col.count() for col in self.shards)

    def get(self, doc_id: str) -> Doc:
        return shard_get(self.shards[shard_of(doc_id, len(self.shards))], (doc_id, self.name))

    def page(self, limit: int, cursor: str | None) -> tuple[list[Doc], str | None]:
        return merge_pages([shard_page(col, (limit, cursor)) for col in self.shards], limit)

    def describe(self) -> dict[str, Any]:
        parts = [col.describe() for col in self.shards]
        return {
            **parts[0],
            "name": self.name,
            "count": sum(p["count"] for p in parts),
            "seq": sum(p["seq"] for p in parts),
            "generation": max(p["generation"] for p in parts),
            "ann": {**parts[0]["ann"], "shards": len(parts)},
        }

    def query_vectors(self, queries: list[Query]) -> NDArray[np.float32]:
        return self.shards[0].query_vectors(queries)

    def search_batch(self, queries: list[Query]) -> list[list[Hit]]:
        """Embed each query once, then rank it over all shards (see the module doc)."""
        check_queries(queries)
        vectors = self.query_vectors(queries)
        resolved = [resolve(q, v) for q, v in zip(queries, vectors, strict=True)]
        return run_plan(search_plan(resolved, len(self.shards), self.metric), self._call)

    def _call(self, op: str, args: list[Any]) -> list[Any]:
        run = SHARD_OPS[op]
        return [run(col, arg) for col, arg in zip(self.shards, args, strict=True)]

    def unit_vectors(self) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        self.sync()
        n = len(self.shards)
        parts = [col.unit_vectors() for col in self.shards]
        labels = np.concatenate([lab * n + i for i, (lab, _) in enumerate(parts)])
        unit = np.concatenate([u for _, u in parts]).reshape(-1, self.dim)
        return labels.astype(np.int64), unit.astype(np.float32)

    def term_vector(self, term: str) -> tuple[NDArray[np.float32], str, str | None]:
        for key in (term, term.lower()):
            col = self.shards[shard_of(key, len(self.shards))]
            if key in col.label_by_id:
                return col.term_vector(key)
        return self.shards[0].term_vector(term)

    def __iter__(self) -> Iterator[Collection]:
        return iter(self.shards)


# ---- one search over N shards -------------------------------------------------------------------
# The ranking is a plan of rounds (a generator): it yields (op, one argument per shard) and is
# sent back one answer per shard. The plan never talks to a shard itself, so the same code runs
# over local shard collections (`run_plan`) and over Ray Serve deployments on other nodes
# (service/ray_serve.py awaits each round), and both rank exactly alike.
Round = tuple[str, list[Any]]
Plan = Generator[Round, list[Any], list[list[Hit]]]


@dataclass
class SideRequest:
    """What one shard is asked for one query: its top `depth` labels on each side."""

    query: Query  # resolved: the vector for the vector side, the text for the keyword side
    where: str  # "searches[2]" in a batch, "" alone: errors name fields as one collection does
    sides: dict[str, int]  # "vector" / "keyword" -> depth


@dataclass
class Sides:
    """One shard's answer for one query, by its own labels: how many documents the filter lets
    through, each side's (labels, scores) best first, and the labels' documents if grouping."""

    count: int
    lists: dict[str, tuple[NDArray[np.int64], NDArray[np.float32]]]
    documents: dict[int, str]


def check_queries(queries: list[Query]) -> None:
    """Refuse what no shard could rank, before anything is embedded (as Collection does)."""
    for i, q in enumerate(queries):
        if not isinstance(q.k, int) or not 1 <= q.k <= 10_000:
            raise InvalidInput("k must be an integer in [1, 10000]", field=f"searches[{i}].k")
        retrieve.check_query(q, f"searches[{i}]" if len(queries) > 1 else "")
        if q.filter is not None:
            compile_filter(q.filter)


def resolve(q: Query, vector: Any) -> Query:
    """The query as the shards get it: the vector it was embedded to (or was given) for the
    vector side, the text only where BM25 needs it."""
    if q.mode == "keyword":
        return q
    return replace(q, text=q.text if q.mode == "hybrid" else None, vector=vector)


def shard_sides(col: Collection, reqs: list[SideRequest]) -> list[Sides]:
    """Round 1 on one shard: each query's top lists by this shard's labels."""
    queries = [r.query for r in reqs]
    for r in reqs:
        if r.query.mode != "vector" and col.keyword is None:
            col.keyword_search("", 0, None, f"{r.where}.mode".lstrip("."))  # refuses
    preds = [compile_filter(q.filter) if q.filter is not None else None for q in queries]
    vectors = col.query_vectors(queries)  # checks a given vector's dimension; embeds nothing
    col.sync()
    out = []
    with col.lock.read():
        for r, pred, vec in zip(reqs, preds, vectors, strict=True):
            allowed = None
            if pred is not None:
                allowed = np.fromiter(
                    (lab for lab, m in col.meta_by_label.items() if pred(m)), dtype=np.int64
                )
            lists = {}
            for side, depth in r.sides.items():
                ranked = retrieve.rank(col, replace(r.query, mode=side), vec, allowed, depth)
                lists[side] = (
                    np.asarray([x.label for x in ranked], dtype=np.int64),
                    np.asarray([x.score for x in ranked], dtype=np.float32),
                )
            documents = {}
            if r.query.group_by_document:
                documents = {
                    lab: col._document_of(lab) for labels, _ in lists.values() for lab in labels
                }
            count = len(col.id_by_label) if allowed is None else len(allowed)
            out.append(Sides(count, lists, documents))
    return out


def shard_vectors(col: Collection, labels: list[NDArray[np.int64]]) -> list[NDArray[np.float32]]:
    """MMR's round on one shard: the stored vectors of these labels, one array per query."""
    with col.lock.read():
        return [col.index.vectors_of(np.asarray(lab, dtype=np.int64)) for lab in labels]


def shard_hits(
    col: Collection, reqs: list[tuple[list[retrieve.Ranked], bool]]
) -> list[list[Hit | None]]:
    """The last round on one shard: the hits of these ranked labels, aligned with them (None
    for a document replaced since it was ranked)."""
    out: list[list[Hit | None]] = []
    for ranked, with_vectors in reqs:
        hits: list[Hit | None] = list(col._hits(ranked, with_vectors))
        if len(hits) != len(ranked):  # rare: something was dropped; find out which
            hits = [next(iter(col._hits([r], with_vectors)), None) for r in ranked]
        out.append(hits)
    return out


def shard_get(col: Collection, arg: tuple[str, str]) -> Doc:
    """A document from its shard, the error naming the sharded collection (not `shard-1`)."""
    doc_id, name = arg
    try:
        return col.get(doc_id)
    except DocumentNotFound:
        raise DocumentNotFound(
            f"no document {doc_id!r} in collection {name!r}", field="id"
        ) from None


def shard_page(col: Collection, arg: tuple[int, str | None]) -> list[Doc]:
    """One more document than a page holds, after the cursor, in id order."""
    limit, cursor = arg
    return col.store.page(limit + 1, cursor)


def merge_pages(pages: list[list[Doc]], limit: int) -> tuple[list[Doc], str | None]:
    """The first `limit` documents by id over per-shard pages, and the next cursor."""
    docs = sorted((d for page in pages for d in page), key=lambda d: d.id)
    more = len(docs) > limit
    docs = docs[:limit]
    return docs, (docs[-1].id if more and docs else None)


SHARD_OPS: dict[str, Callable[[Collection, Any], Any]] = {
    "sides": shard_sides,
    "vectors": shard_vectors,
    "hits": shard_hits,
    "get": shard_get,
    "page": shard_page,
}


def run_plan(plan: Plan, call: Callable[[str, list[Any]], list[Any]]) -> list[list[Hit]]:
    """Drive a plan: each round goes to `call`, its answers go back into the plan."""
    try:
        op, args = next(plan)
        while True:
            op, args = plan.send(call(op, args))
    except StopIteration as done:
        result: list[list[Hit]] = done.value
        return result


def search_plan(queries: list[Query], n: int, metric: str) -> Plan:
    """Rank resolved queries (`resolve`) over n shards, in at most three rounds plus one per
    deepening of a grouped search: top lists, stored vectors (MMR only), hits.

    It follows Collection._rank step for step, on the merged lists: a pool of candidates
    (retrieve.pool_size), grouped by document and looked at deeper while too few documents
    came back, the score threshold, then MMR or the top k."""
    depth = [retrieve.pool_size(q, retrieve.MAX_POOL) for q in queries]  # capped by n below
    ranked: list[list[retrieve.Ranked]] = [[] for _ in queries]
    todo = list(range(len(queries)))
    while todo:
        reqs = [
            SideRequest(queries[i], _where(i, queries), _sides(queries[i], depth[i])) for i in todo
        ]
        answers: list[list[Sides]] = yield "sides", [reqs] * n
        again = []
        for j, i in enumerate(todo):
            q, parts = queries[i], [a[j] for a in answers]
            total = sum(p.count for p in parts)
            depth[i] = min(depth[i], max(total, 1))
            found = _rank_merged(q, metric, parts, n, depth[i])
            if q.group_by_document:
                docs = {
                    lab * n + s: d for s, p in enumerate(parts) for lab, d in p.documents.items()
                }
                grouped = retrieve.group(found, _document_of(docs))
                if len(grouped) < q.k and len(found) == depth[i] and depth[i] < min(total, 10_000):
                    depth[i] = min(depth[i] * 4, total, 10_000)  # too few documents: look deeper
                    again.append(i)
                    continue
                found = grouped
            if q.score_threshold is not None:
                t, better = q.score_threshold, q.mode != "vector" or higher_is_better(metric)
                found = [r for r in found if (r.score >= t if better else r.score <= t)]
            ranked[i] = found
        todo = again

    mmr = [i for i, q in enumerate(queries) if q.diversity is not None and ranked[i]]
    if mmr:
        asks = [[_on_shard(ranked[i], s, n) for i in mmr] for s in range(n)]
        answers_v: list[list[NDArray[np.float32]]] = yield (
            "vectors",
            [[np.asarray([r.label for r in a], dtype=np.int64) for a in ask] for ask in asks],
        )
        for j, i in enumerate(mmr):
            q, at = queries[i], _positions(ranked[i], n)
            X = np.stack([answers_v[r.label % n][j][at[k]] for k, r in enumerate(ranked[i])])
            vec = np.zeros(X.shape[1], np.float32) if q.vector is None else np.asarray(q.vector)
            order = retrieve.mmr_order(q, metric, vec.astype(np.float32), ranked[i], X, q.k)
            ranked[i] = [ranked[i][o] for o in order]
    ranked = [r[: q.k] for r, q in zip(ranked, queries, strict=True)]

    answers_h: list[list[list[Hit | None]]] = yield (
        "hits",
        [
            [(_on_shard(ranked[i], s, n), q.with_vectors) for i, q in enumerate(queries)]
            for s in range(n)
        ],
    )
    out = []
    for i in range(len(queries)):
        at = _positions(ranked[i], n)
        hits = [answers_h[r.label % n][i][at[k]] for k, r in enumerate(ranked[i])]
        out.append([h for h in hits if h is not None])
    return out


def _where(i: int, queries: list[Query]) -> str:
    return f"searches[{i}]" if len(queries) > 1 else ""


def _sides(q: Query, depth: int) -> dict[str, int]:
    if q.mode == "hybrid":
        side = max(depth, retrieve.HYBRID_DEPTH)
        return {"vector": side, "keyword": side}
    return {q.mode: depth}


def _merge_side(
    parts: list[Sides], side: str, n: int, depth: int, higher_better: bool
) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """One side's global top `depth` (global labels, scores) from the shards' top lists."""
    lists = [p.lists[side] for p in parts]
    best = merge_top_k([scores.astype(np.float64) for _, scores in lists], depth, higher_better)
    labels = np.asarray([int(lists[s][0][r]) * n + s for s, r in best], dtype=np.int64)
    scores = np.asarray([lists[s][1][r] for s, r in best], dtype=np.float32)
    return labels, scores


def _rank_merged(
    q: Query, metric: str, parts: list[Sides], n: int, depth: int
) -> list[retrieve.Ranked]:
    """`retrieve.rank` over the shards: one merged side, or both merged and then fused."""
    if q.mode != "hybrid":
        better = q.mode == "keyword" or higher_is_better(metric)
        labels, scores = _merge_side(parts, q.mode, n, depth, better)
        return [retrieve.Ranked(int(g), float(s)) for g, s in zip(labels, scores, strict=True)]
    side = max(depth, retrieve.HYBRID_DEPTH)
    by_vector = _merge_side(parts, "vector", n, side, higher_is_better(metric))
    by_keyword = _merge_side(parts, "keyword", n, side, True)
    return retrieve.fuse_sides(q, metric, by_vector, by_keyword, depth)


def _document_of(docs: dict[int, str]) -> Callable[[int], str]:
    """A global label's document (a document that is not chunked is its own)."""
    return lambda g: docs.get(g, str(g))


def _on_shard(ranked: list[retrieve.Ranked], shard: int, n: int) -> list[retrieve.Ranked]:
    """The ranked entries that live on `shard`, by that shard's own labels."""
    return [retrieve.Ranked(r.label // n, r.score, r.extra) for r in ranked if r.label % n == shard]


def _positions(ranked: list[retrieve.Ranked], n: int) -> list[int]:
    """Each entry's position among the entries of its own shard (as `_on_shard` lists them)."""
    seen = [0] * n
    at = []
    for r in ranked:
        at.append(seen[r.label % n])
        seen[r.label % n] += 1
    return at


# ---- analogy over N shards ----------------------------------------------------------------------
# indexer/analogy.py scans every vector of a collection. Over shards that live on other nodes
# (service/ray_serve.py), each shard scores its own vectors against the terms' vectors and returns
# its top k; the merge keeps the local order exactly: scores best first, ties in shard order then
# in each shard's label order, as the concatenation of the shards' vectors sorts them.
@dataclass
class AnalogyAsk:
    """What each shard is asked: the positive and negative terms' unit vectors (p, d) and (m, d),
    the method, k, and the ids excluded as inputs (None: keep them)."""

    P: NDArray[np.float32]
    N: NDArray[np.float32] | None
    method: str
    k: int
    excluded: set[str] | None


@dataclass
class AnalogyCandidate:
    score: float
    doc: Doc
    cosines: list[float]  # to each term, positive then negative


def shard_term(col: Collection, key: str) -> tuple[NDArray[np.float32], str, str | None] | None:
    """A term's (unit vector, "document", id) if `key` is a document id on this shard."""
    col.sync()
    return col.term_vector(key) if key in col.label_by_id else None


def shard_analogy(col: Collection, ask: AnalogyAsk) -> list[AnalogyCandidate]:
    """This shard's top k by 3CosAdd (Σ cos p − Σ cos n) or 3CosMul (Π s(p) / (Π s(n) + ε),
    s = (cos + 1) / 2), best first: indexer/analogy.py's scores over this shard's vectors."""
    from .analogy import EPSILON

    labels, unit = col.unit_vectors()  # (n,), (n, d)
    cos_p = unit @ ask.P.T  # (n, p)
    cos_n = unit @ ask.N.T if ask.N is not None else np.zeros((len(unit), 0), np.float32)
    if ask.method == "3cosadd":
        scores = cos_p.sum(axis=1) - cos_n.sum(axis=1)
    else:
        scores = np.prod((cos_p + 1) / 2, axis=1) / (np.prod((cos_n + 1) / 2, axis=1) + EPSILON)
    if ask.excluded is not None:
        for i, lab in enumerate(labels):
            if col.id_by_label.get(int(lab), "").lower() in ask.excluded:
                scores[i] = -np.inf
    order = np.argsort(-scores, kind="stable")[: ask.k]
    order = order[np.isfinite(scores[order])]
    docs = col.store.get_by_labels([int(labels[i]) for i in order])
    cos = np.concatenate([cos_p, cos_n], axis=1)
    return [
        AnalogyCandidate(float(scores[i]), docs[int(labels[i])], [float(c) for c in cos[i]])
        for i in order
        if int(labels[i]) in docs
    ]


def merge_analogy(parts: list[list[AnalogyCandidate]], k: int) -> list[AnalogyCandidate]:
    """The k best candidates over the shards' lists (ties: shard order, then rank)."""
    scores = [np.asarray([c.score for c in p], dtype=np.float64) for p in parts]
    return [parts[s][r] for s, r in merge_top_k(scores, k, True)]


ANALOGY_OPS: dict[str, Callable[[Collection, Any], Any]] = {
    "term": shard_term,
    "analogy": shard_analogy,
}
