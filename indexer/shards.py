"""A collection split into N shards, searched as one: per-shard top-k, merged into the global top-k.

Layout (written by `index build --ray`, indexer/ray_jobs.py):

    <data_dir>/<name>/shards.json          {"format": 1, "name", "shards": ["shard-0", ...], ...}
    <data_dir>/<name>/shard-<i>/           a complete collection in the usual durable format

A document lives in shard `shard_of(id, n)`. Why merging per-shard top-k is exact: the global
top-k is a set of k documents, and each of them is within the top-k of its own shard (a shard
holds a subset of the corpus, so fewer documents can beat it there). So the union of the N
per-shard top-k lists contains the global top-k, and sorting that union by score finds it.

Global labels for analogy: shard i's label `lab` becomes `lab * n + i`, unique across shards.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .collection import Collection, DocumentIn, Hit, Query
from .errors import CorruptCollection, DocumentNotFound, InvalidInput
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
        n = len(self.shards)
        try:
            return self.shards[shard_of(doc_id, n)].get(doc_id)
        except DocumentNotFound:
            raise DocumentNotFound(
                f"no document {doc_id!r} in collection {self.name!r}", field="id"
            ) from None

    def page(self, limit: int, cursor: str | None) -> tuple[list[Doc], str | None]:
        docs = sorted(
            (d for col in self.shards for d in col.store.page(limit + 1, cursor)),
            key=lambda d: d.id,
        )
        more = len(docs) > limit
        docs = docs[:limit]
        return docs, (docs[-1].id if more and docs else None)

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
        """Embed each query once, ask every shard for its top-k, merge (see the module doc)."""
        for i, q in enumerate(queries):
            if not isinstance(q.k, int) or not 1 <= q.k <= 10_000:
                raise InvalidInput("k must be an integer in [1, 10000]", field=f"searches[{i}].k")
        vectors = self.query_vectors(queries)
        by_vector = [replace(q, text=None, vector=v) for q, v in zip(queries, vectors, strict=True)]
        per_shard = [col.search_batch(by_vector) for col in self.shards]  # [shard][query]
        better = higher_is_better(self.metric)
        out = []
        for qi, q in enumerate(queries):
            lists = [hits[qi] for hits in per_shard]
            scores = [np.array([h.score for h in hits], dtype=np.float64) for hits in lists]
            out.append([lists[s][r] for s, r in merge_top_k(scores, q.k, better)])
        return out

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
