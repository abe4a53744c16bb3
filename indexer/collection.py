"""A collection in memory: the store (truth), the index (derived) and the locks between them.

Writes go to the store first (durable), then the in-memory index catches up by replaying the
store's changes since the seq it last applied. The same replay picks up what another process (a
batch job) wrote, so the service sees it without a restart. Searches hold a shared lock and
writers apply under an exclusive one: a search never sees half of an upsert batch.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .embed import Embedder
from .errors import (
    CollectionNotFound,
    CorruptCollection,
    DimensionMismatch,
    DocumentNotFound,
    InvalidInput,
    VPError,
)
from .filters import compile_filter
from .index import VectorIndex, higher_is_better
from .store import (
    Doc,
    NewDoc,
    Store,
    content_hash,
    read_manifest,
    remove_stale_temp_files,
)

MAX_ID_LEN = 512
log = logging.getLogger("vector_primer.collection")


class RWLock:
    """Many readers or one writer; a waiting writer blocks new readers (no writer starvation)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False
        self._waiting = 0

    @contextlib.contextmanager
    def read(self) -> Iterator[None]:
        with self._cond:
            while self._writer or self._waiting:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                self._cond.notify_all()

    @contextlib.contextmanager
    def write(self) -> Iterator[None]:
        with self._cond:
            self._waiting += 1
            while self._writer or self._readers:
                self._cond.wait()
            self._waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


@dataclass
class DocumentIn:
    id: str
    text: str | None = None
    vector: Any = None
    metadata: dict[str, Any] | None = None


@dataclass
class Query:
    text: str | None = None
    vector: Any = None
    k: int = 10
    filter: dict[str, Any] | None = None
    score_threshold: float | None = None
    exact: bool = False
    with_vectors: bool = False
    ef_search: int | None = None
    nprobe: int | None = None


@dataclass
class Hit:
    id: str
    score: float
    text: str | None
    metadata: dict[str, Any]
    vector: list[float] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Collection:
    def __init__(
        self, path: Path, embedder: Embedder | None, write_lock_timeout_s: float = 2.0
    ) -> None:
        self.path = path
        self.name = path.name
        self.embedder = embedder
        self.write_lock_timeout_s = write_lock_timeout_s
        self.lock = RWLock()
        self._write_mutex = threading.Lock()
        self._load()

    # ---- loading and catching up ------------------------------------------------------------
    def _load(self) -> None:
        m = read_manifest(self.path)
        self.manifest = m
        self.metric: str = m["metric"]
        self.kind: str = m["index"]
        self.dim: int = int(m["dim"])
        self.embedder_name: str | None = m.get("embedder")
        self.params: dict[str, Any] = dict(m.get("params") or {})
        old: Store | None = getattr(self, "store", None)
        self.store = Store(self.path, self.dim, self.write_lock_timeout_s)
        self.store.verify_rows()
        if old is not None and old.read_only is not None:  # read-only lasts until restart
            self.store.read_only = old.read_only
        if self.store.read_only is None:
            for folder in (self.path, self.path / "snapshots"):
                remove_stale_temp_files(folder)
        try:
            self.index = VectorIndex(self.kind, self.metric, self.dim, self.params)
        except InvalidInput as e:
            raise CorruptCollection(f"manifest of {self.name!r}: {e.detail}") from e
        self.id_by_label: dict[int, str] = {}
        self.label_by_id: dict[str, int] = {}
        self.meta_by_label: dict[int, dict[str, Any]] = {}
        self.seq, self.generation = 0, -1
        self.snapshot_seq = -1
        self._unit_cache: tuple[int, NDArray[np.int64], NDArray[np.float32]] | None = None
        self._apply(self.store.changes_since(0), rebuild=False)
        if self.kind != "flat":
            self._adopt_snapshot()

    def _adopt_snapshot(self) -> None:
        """Newest valid snapshot, brought up to date; else build from the documents."""
        if self.index.wants_ann():
            for seq, built_n, labels, payload in self.store.read_snapshots(self.spec()):
                try:
                    self.index.load_ann(labels, payload, built_n)
                    self.snapshot_seq = seq
                    break
                except (ValueError, RuntimeError):
                    continue  # damaged or foreign: try the previous one, then rebuild
        if self.index.needs_rebuild():
            self.index.build_ann()
            self._publish()

    def spec(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "index": self.kind,
            "dim": self.dim,
            "params": self.params,
            "embedder": self.embedder_name,
        }

    def _apply(self, ch: Any, rebuild: bool = True) -> None:
        """Apply store changes to the in-memory index. Caller holds the write lock (or owns
        the collection exclusively while loading)."""
        if self.generation != -1 and ch.generation != self.generation:
            self.store.close()
            self._load()  # the spec changed under us (a rebuild elsewhere): start over
            return
        gone = [int(lab) for lab in ch.removed if int(lab) in self.id_by_label]
        self.index.remove(np.asarray(gone, dtype=np.int64))
        for lab in gone:
            self.label_by_id.pop(self.id_by_label.pop(lab), None)
            self.meta_by_label.pop(lab, None)
        fresh = [i for i, lab in enumerate(ch.labels) if int(lab) not in self.id_by_label]
        if fresh:
            self.index.add(ch.labels[fresh], ch.vectors[fresh])
            for i in fresh:
                lab = int(ch.labels[i])
                self.id_by_label[lab] = ch.ids[i]
                self.label_by_id[ch.ids[i]] = lab
                self.meta_by_label[lab] = ch.metadata[i]
        self.seq, self.generation = ch.seq, ch.generation
        if rebuild and self.index.needs_rebuild():
            self.index.build_ann()
            self._publish()

    def sync(self) -> None:
        """Catch up with writes made by anyone (this process or another) since our seq."""
        self._check_present()
        seq, gen = self.store.state()
        if seq == self.seq and gen == self.generation:
            return
        with self.lock.write():
            if (seq, gen) != (self.seq, self.generation):
                self._apply(self.store.changes_since(self.seq))

    def _check_present(self) -> None:
        """A store dropped (or replaced) by another process is gone, not silently stale."""
        try:
            same = os.stat(self.store.db_path).st_ino == self.store.inode
        except FileNotFoundError:
            same = False
        if not same:
            raise CollectionNotFound(
                f"collection {self.name!r} was dropped or replaced; open it again", field="name"
            )

    @property
    def read_only(self) -> str | None:
        """Why writes are refused (read-only disk, or an I/O error until restart), or None."""
        return self.store.read_only

    def close(self) -> None:
        with self.lock.write():
            self.store.close()

    def _publish(self) -> None:
        """A snapshot after a rebuild, best effort: the documents are already durable, and a
        missing snapshot only costs a rebuild at the next open (disk full, say)."""
        if self.store.read_only is not None:
            return
        try:
            self.snapshot(force=True)
        except VPError as e:
            log.warning("collection %s: snapshot not published: %s", self.name, e.detail)

    def backup(self, dest: Path) -> dict[str, Any]:
        """A consistent, checksummed copy of this collection in the new folder `dest` (see
        indexer/backup.py); returns the backup's description."""
        from .backup import backup_collection

        return backup_collection(self, dest)

    def snapshot(self, force: bool = False) -> Path | None:
        """Publish the ANN index (if any) so the next open need not rebuild it. Without
        `force`, a collection unchanged since its last snapshot writes nothing."""
        state = self.index.serialize_ann()
        if state is None or (not force and self.seq == self.snapshot_seq):
            return None
        labels, payload = state
        path = self.store.write_snapshot(
            self.seq, self.index.ann_built_n, labels, payload, self.spec()
        )
        self.snapshot_seq = self.seq
        return path

    def rebuild(self) -> None:
        """Rebuild the ANN index from the exact vectors and publish a snapshot."""
        self.sync()
        with self.lock.write():
            self.index.build_ann()
            self.snapshot(force=True)

    # ---- validation -------------------------------------------------------------------------
    def _check_vector(self, v: Any, where: str) -> NDArray[np.float32]:
        try:
            arr = np.asarray(v, dtype=np.float64)
        except (TypeError, ValueError):
            raise InvalidInput(f"{where} must be a list of numbers", field=where) from None
        if arr.ndim != 1:
            raise InvalidInput(f"{where} must be a flat list of numbers", field=where)
        if arr.shape[0] != self.dim:
            raise DimensionMismatch(
                f"{where} has dimension {arr.shape[0]}, "
                f"collection {self.name!r} expects {self.dim}",
                field=where,
            )
        if not np.all(np.isfinite(arr)) or np.any(np.abs(arr) > np.finfo(np.float32).max):
            raise InvalidInput(
                f"{where} contains NaN, Infinity or values beyond float32", field=where
            )
        if self.metric == "cosine" and not np.any(arr):
            raise InvalidInput(
                f"{where} is the zero vector, which has no direction (cosine)", field=where
            )
        return arr.astype(np.float32)

    def _embed(self, texts: list[str], where: list[str]) -> NDArray[np.float32]:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self.embedder is None:
            raise InvalidInput(
                f"collection {self.name!r} stores vectors only: send a vector", field=where[0]
            )
        return self.embedder.embed(texts)

    # ---- writes -----------------------------------------------------------------------------
    def upsert(self, docs: list[DocumentIn], skip_unchanged: bool = False) -> dict[str, int]:
        """Insert or replace documents by id, all or nothing. Texts without a vector are
        embedded. Returns counts of written and (with skip_unchanged) skipped documents."""
        if not docs:
            return {"upserted": 0, "skipped": 0}
        self.store.check_writable()
        seen: set[str] = set()
        vectors: list[NDArray[np.float32] | None] = []
        for i, d in enumerate(docs):
            where = f"documents[{i}]"
            if not isinstance(d.id, str) or not d.id or len(d.id) > MAX_ID_LEN:
                raise InvalidInput(
                    f"{where}.id must be a non-empty string of at most {MAX_ID_LEN} characters",
                    field=f"{where}.id",
                )
            if d.id in seen:
                raise InvalidInput(
                    f"{where}.id {d.id!r} appears twice in the batch", field=f"{where}.id"
                )
            seen.add(d.id)
            if d.text is not None and (not isinstance(d.text, str) or not d.text.strip()):
                raise InvalidInput(
                    f"{where}.text must be a non-empty string", field=f"{where}.text"
                )
            if d.text is None and d.vector is None:
                raise InvalidInput(f"{where} needs a text or a vector", field=where)
            if d.metadata is not None and not isinstance(d.metadata, dict):
                raise InvalidInput(f"{where}.metadata must be an object", field=f"{where}.metadata")
            try:
                json.dumps(d.metadata, allow_nan=False)
            except (TypeError, ValueError):
                raise InvalidInput(
                    f"{where}.metadata must be JSON (no NaN)", field=f"{where}.metadata"
                ) from None
            vectors.append(
                None if d.vector is None else self._check_vector(d.vector, f"{where}.vector")
            )
        hashes = [
            content_hash(d.text, d.metadata or {}, v) for d, v in zip(docs, vectors, strict=True)
        ]
        keep = list(range(len(docs)))
        if skip_unchanged:
            stored = self.store.content_hashes([d.id for d in docs])
            keep = [i for i in keep if stored.get(docs[i].id) != hashes[i]]
        to_embed = [i for i in keep if vectors[i] is None]
        embedded = self._embed(
            [docs[i].text or "" for i in to_embed], [f"documents[{i}].vector" for i in to_embed]
        )
        for j, i in enumerate(to_embed):
            vectors[i] = embedded[j]
        new = [
            NewDoc(docs[i].id, docs[i].text, docs[i].metadata or {}, v, hashes[i])
            for i in keep
            if (v := vectors[i]) is not None
        ]
        if new:
            with self._write_mutex:
                self.store.upsert(new)
                self.sync()
        return {"upserted": len(new), "skipped": len(docs) - len(new)}

    def delete(
        self, ids: list[str] | None = None, where: dict[str, Any] | None = None
    ) -> list[str]:
        """Delete by ids and/or by metadata filter; returns the ids that existed and are gone."""
        if ids is None and where is None:
            raise InvalidInput("give ids or a filter", field="ids")
        self.store.check_writable()
        targets = set(ids or [])
        if where is not None:
            self.sync()
            pred = compile_filter(where)
            with self.lock.read():
                targets |= {
                    self.id_by_label[lab] for lab, m in self.meta_by_label.items() if pred(m)
                }
        if not targets:
            return []
        with self._write_mutex:
            _, deleted = self.store.delete(sorted(targets))
            self.sync()
        return deleted

    # ---- reads ------------------------------------------------------------------------------
    def count(self) -> int:
        self.sync()
        return len(self.id_by_label)

    def get(self, doc_id: str) -> Doc:
        docs = self.store.get([doc_id])
        if not docs:
            raise DocumentNotFound(
                f"no document {doc_id!r} in collection {self.name!r}", field="id"
            )
        return docs[0]

    def page(self, limit: int, cursor: str | None) -> tuple[list[Doc], str | None]:
        docs = self.store.page(limit + 1, cursor)
        more = len(docs) > limit
        docs = docs[:limit]
        return docs, (docs[-1].id if more and docs else None)

    def describe(self) -> dict[str, Any]:
        self.sync()
        return {
            "name": self.name,
            "metric": self.metric,
            "index": self.kind,
            "dim": self.dim,
            "embedder": self.embedder_name,
            "params": self.params,
            "count": len(self.id_by_label),
            "seq": self.seq,
            "generation": self.generation,
            "score": "distance (lower is better)"
            if self.metric == "l2"
            else "similarity (higher is better)",
            "ann": self.index.ann_state(),
        }

    def query_vectors(self, queries: list[Query]) -> NDArray[np.float32]:
        """One vector per query: given, or embedded in a single batch."""
        out = np.zeros((len(queries), self.dim), dtype=np.float32)
        texts, where = [], []
        for i, q in enumerate(queries):
            pfx = f"searches[{i}]" if len(queries) > 1 else ""
            if (q.text is None) == (q.vector is None):
                raise InvalidInput(
                    "give exactly one of query (text) or vector", field=f"{pfx}.query".lstrip(".")
                )
            if q.vector is not None:
                out[i] = self._check_vector(q.vector, f"{pfx}.vector".lstrip("."))
            elif not isinstance(q.text, str) or not q.text.strip():
                raise InvalidInput(
                    "query must be a non-empty string", field=f"{pfx}.query".lstrip(".")
                )
            else:
                texts.append(q.text)
                where.append(i)
        if texts:
            emb = self._embed(texts, [f"searches[{i}].query" for i in where])
            out[where] = emb
        return out

    def search(self, query: Query) -> list[Hit]:
        return self.search_batch([query])[0]

    def search_batch(self, queries: list[Query]) -> list[list[Hit]]:
        for i, q in enumerate(queries):
            if not isinstance(q.k, int) or not 1 <= q.k <= 10_000:
                raise InvalidInput("k must be an integer in [1, 10000]", field=f"searches[{i}].k")
        filters = [compile_filter(q.filter) if q.filter is not None else None for q in queries]
        vectors = self.query_vectors(queries)
        self.sync()
        results: list[list[tuple[int, float]]] = []
        with self.lock.read():
            for q, pred, vec in zip(queries, filters, vectors, strict=True):
                allowed = None
                if pred is not None:
                    allowed = np.fromiter(
                        (lab for lab, m in self.meta_by_label.items() if pred(m)), dtype=np.int64
                    )
                (res,) = self.index.search(
                    vec[None, :],
                    q.k,
                    allowed=allowed,
                    exact=q.exact,
                    ef_search=q.ef_search,
                    nprobe=q.nprobe,
                )
                pairs = [
                    (int(lab), float(s)) for lab, s in zip(res.labels, res.scores, strict=True)
                ]
                if q.score_threshold is not None:
                    t = q.score_threshold
                    better = higher_is_better(self.metric)
                    pairs = [(lab, s) for lab, s in pairs if (s >= t if better else s <= t)]
                results.append(pairs)
        return [
            self._hits(pairs, q.with_vectors) for pairs, q in zip(results, queries, strict=True)
        ]

    def _hits(self, pairs: list[tuple[int, float]], with_vectors: bool) -> list[Hit]:
        docs = self.store.get_by_labels([lab for lab, _ in pairs])
        # a hit whose document was replaced between search and fetch is dropped, not misreported
        return [
            Hit(d.id, s, d.text, d.metadata, d.vector.tolist() if with_vectors else None)
            for lab, s in pairs
            if (d := docs.get(lab)) is not None
        ]

    # ---- analogy ----------------------------------------------------------------------------
    def unit_vectors(self) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        """(labels, unit-length vectors) of every live document, cached per seq."""
        self.sync()
        with self.lock.read():
            if self._unit_cache is None or self._unit_cache[0] != self.seq:
                labels, x = self.index.labels(), self.index.vectors()
                norms = np.linalg.norm(x, axis=1, keepdims=True)
                unit = (x / np.where(norms == 0, 1, norms)).astype(np.float32)
                self._unit_cache = (self.seq, labels, unit)
            return self._unit_cache[1], self._unit_cache[2]

    def term_vector(self, term: str) -> tuple[NDArray[np.float32], str, str | None]:
        """A term's unit vector: the document whose id is the term, else the embedded term.
        Returns (vector, source, document id)."""
        lab = self.label_by_id.get(term)
        if lab is None:
            lab = self.label_by_id.get(term.lower())
        if lab is not None:
            v = self.store.get_by_labels([lab]).get(lab)
            if v is not None:
                return _unit(v.vector), "document", v.id
        if self.embedder is None:
            raise DocumentNotFound(
                f"term {term!r} is not a document id of {self.name!r} and "
                "the collection has no embedder",
                field="terms",
            )
        return _unit(self.embedder.embed([term])[0]), "embedded", None


def _unit(v: NDArray[np.float32]) -> NDArray[np.float32]:
    n = float(np.linalg.norm(v))
    if n == 0 or not math.isfinite(n):
        raise InvalidInput("term vector has zero length", field="terms")
    return (v / n).astype(np.float32)
