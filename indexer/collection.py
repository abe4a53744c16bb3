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
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from . import passages as chunks
from . import retrieve
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
from .index import MAX_GONE, VectorIndex, higher_is_better
from .keyword import KeywordIndex
from .load import read_verified
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
    def try_read(self) -> Iterator[bool]:
        """A read lock if one is free now (no writer holds or awaits it): yields whether."""
        with self._cond:
            ok = not (self._writer or self._waiting)
            if ok:
                self._readers += 1
        try:
            yield ok
        finally:
            if ok:
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
    mode: str = "vector"  # vector | keyword | hybrid
    fusion: str = "convex"  # convex | rrf (hybrid; convex measured better on SciFact)
    rrf_k: int = 60
    alpha: float = 0.5  # convex: weight of the vector side
    diversity: float | None = None  # MMR, in [0, 1]
    candidates: int | None = None  # pool for MMR / grouping (> k)
    group_by_document: bool = False


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
        self._publisher: threading.Thread | None = None  # a background snapshot, if running
        self._saved_lock = threading.Lock()  # snapshot_seq and keyword_snapshot_seq updates
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
        self.chunking = (
            chunks.Chunking(**m["chunking"]) if isinstance(m.get("chunking"), dict) else None
        )
        self.keyword: KeywordIndex | None = KeywordIndex() if m.get("keyword_index", True) else None
        self.keyword_snapshot_seq = -1  # seq of the keyword index last published
        self.keyword_snapshot_n = 0  # how many documents it held
        old: Store | None = getattr(self, "store", None)
        self.store = Store(self.path, self.dim, self.write_lock_timeout_s)
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
        self.passages_of: dict[str, set[str]] = {}  # chunked: document id -> passage ids
        self.seq, self.generation = 0, -1
        self.snapshot_seq = -1
        self._older_form = False  # the adopted snapshot holds its vectors: rewrite it at close
        self._unit_cache: tuple[int, NDArray[np.int64], NDArray[np.float32]] | None = None
        first = read_verified(self.store)  # every row's checksum, before anything is served
        self._keyword_labels: set[int] | None = None
        self._adopt_keyword_snapshot(first.labels)
        self._apply(first, rebuild=False)
        with self._texts_lock:  # the texts were read anyway: the hits' cache starts full
            self._texts = dict(zip(first.labels.tolist(), first.texts, strict=True))
        if self.kind != "flat":
            self._adopt_snapshot()

    KEYWORD_SPEC: ClassVar[dict[str, str]] = {
        "keyword": "bm25s lucene k1=1.5 b=0.75, en stopwords, snowball english"
    }

    def _adopt_keyword_snapshot(self, live: NDArray[np.int64]) -> None:
        """Start the keyword index from its newest valid snapshot, minus labels that are gone;
        `_apply` then adds the live ones it lacks. Labels are never reused and a label's text
        never changes, so this reconciliation by label is exact."""
        if self.keyword is None:
            return
        for seq, _, labels, payload, _ in self.store.read_snapshots(self.KEYWORD_SPEC, "keyword"):
            try:
                kw = KeywordIndex.from_bytes(payload)
            except ValueError:
                continue
            alive = set(live.tolist())
            kw.apply([int(lab) for lab in labels if int(lab) not in alive], [], [])
            self.keyword, self.keyword_snapshot_seq = kw, seq
            self.keyword_snapshot_n = len(labels)
            self._keyword_labels = {int(lab) for lab in labels if int(lab) in alive}
            return

    def _adopt_snapshot(self) -> None:
        """Newest valid snapshot, brought up to date; else build from the documents."""
        if self.index.wants_ann():
            for seq, built_n, labels, payload, form in self.store.read_snapshots(self.spec()):
                try:
                    self.index.load_ann(labels, payload, built_n, form)
                    self.snapshot_seq = seq
                    self._older_form = self.kind == "hnsw" and form is None
                    break
                except (ValueError, RuntimeError):
                    continue  # damaged or foreign: try the previous one, then rebuild
        if self.index.needs_rebuild():
            self.index.build_ann()
            self._publish()
        elif self._snapshot_due():  # much replayed after a crash: not again next time
            self._snapshot_in_background()

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
            doc_id = self.id_by_label.pop(lab)
            self.label_by_id.pop(doc_id, None)
            meta = self.meta_by_label.pop(lab, None) or {}
            if (doc := meta.get(chunks.DOC)) is not None and doc in self.passages_of:
                self.passages_of[doc].discard(doc_id)
                if not self.passages_of[doc]:
                    del self.passages_of[doc]
        labels: list[int] = ch.labels.tolist()
        known_ids = self.id_by_label
        fresh = [i for i, lab in enumerate(labels) if lab not in known_ids]
        if len(fresh) == len(labels):  # all of them (always when loading): no copies
            self.index.add(ch.labels, ch.vectors)
        elif fresh:
            self.index.add(ch.labels[fresh], ch.vectors[fresh])
        ids, metadata, doc_key = ch.ids, ch.metadata, chunks.DOC
        for i in fresh:
            lab, doc_id, meta = labels[i], ids[i], metadata[i]
            known_ids[lab] = doc_id
            self.label_by_id[doc_id] = lab
            self.meta_by_label[lab] = meta
            if meta and (doc := meta.get(doc_key)) is not None:
                self.passages_of.setdefault(doc, set()).add(doc_id)
        if self.keyword is not None:
            known = self._keyword_labels  # already in a just-adopted keyword snapshot
            add = [i for i in fresh if known is None or labels[i] not in known]
            self.keyword.apply(gone, [labels[i] for i in add], [ch.texts[i] for i in add])
            self._keyword_labels = None
        self.seq, self.generation = ch.seq, ch.generation
        if rebuild and self.index.needs_rebuild():
            self.index.build_ann()
            self._publish()
        elif rebuild and self._snapshot_due():
            self._snapshot_in_background()

    def sync(self) -> None:
        """Catch up with writes made by anyone (this process or another) since our seq."""
        self._check_present()
        seq, gen = self.store.state()
        if seq == self.seq and gen == self.generation:
            return
        with self.lock.write():
            if (seq, gen) != (self.seq, self.generation):
                self._apply(self.store.changes_since(self.seq))

    def _catch_up(self) -> None:
        """`sync` after our own upsert: when it is the only write since our seq, apply it from
        what was written (Store.last_write) rather than reading it back."""
        ch = self.store.last_write()
        if ch is None or (ch.seq, ch.generation) != (self.seq + 1, self.generation):
            self.sync()
            return
        with self.lock.write():
            if (self.seq, self.generation) == (ch.seq - 1, ch.generation):
                self._apply(ch)
        self.sync()  # anything written meanwhile (nothing, usually: one read of the state)

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
        self.wait_for_snapshot()
        with self.lock.write():
            self.store.close()

    # ---- snapshots in the background --------------------------------------------------------
    SNAPSHOT_ADDS: ClassVar[int] = 5000

    def _snapshot_due(self) -> bool:
        """Whether so much of the HNSW graph is unsaved that a crash would make the next open
        slow: it re-inserts every vector added since the snapshot (1,500-3,000 a second on one
        core), and rebuilds when more than MAX_GONE of the graph was removed since. Due at
        max(SNAPSHOT_ADDS, 10% of the graph) additions or MAX_GONE / 2 removals: a bulk load
        of 57k vectors publishes ~11 times, each ~0.3 s of serialising and deflating."""
        ix = self.index
        if self.kind != "hnsw" or ix.ann is None or self.store.read_only is not None:
            return False
        n = len(ix.ann_labels)
        return ix.unsaved_adds >= max(self.SNAPSHOT_ADDS, n // 10) or (
            ix.unsaved_removes > MAX_GONE / 2 * n
        )

    def _snapshot_in_background(self) -> None:
        """Publish a snapshot from a thread of its own, unless one is running. The caller
        holds the write lock (or owns the collection while loading); the thread takes a read
        lock only to copy the index out, and writes the file after letting it go."""
        if self._publisher is not None and self._publisher.is_alive():
            return
        self._publisher = threading.Thread(
            target=self._publish_copy, name=f"vp-snapshot-{self.name}", daemon=True
        )
        self._publisher.start()

    def _publish_copy(self) -> None:
        try:
            with self.lock.read():
                seq, spec, built_n = self.seq, self.spec(), self.index.ann_built_n
                state = self.index.serialize_ann()
                self.index.unsaved_adds = self.index.unsaved_removes = 0
                # the keyword index too, when it lags by more than half (re-tokenising 57k
                # short texts takes ~0.8 s; its snapshot ~1 s, so not every time)
                kw = self.keyword
                n = len(self.id_by_label)
                lagging = kw is not None and n > 2 * self.keyword_snapshot_n + self.SNAPSHOT_ADDS
                words = kw.snapshot() if kw is not None and lagging else None
            if state is not None:
                labels, payload, form = state
                self.store.write_snapshot(seq, built_n, labels, payload, spec, form=form)
                with self._saved_lock:
                    self.snapshot_seq = max(self.snapshot_seq, seq)
                    self._older_form = False
            if words is not None:
                labels, payload = words
                self.store.write_snapshot(
                    seq, len(labels), labels, payload, self.KEYWORD_SPEC, "keyword", deflate=True
                )
                with self._saved_lock:
                    if seq > self.keyword_snapshot_seq:
                        self.keyword_snapshot_seq, self.keyword_snapshot_n = seq, len(labels)
        except VPError as e:  # a snapshot is a cache: the documents are durable already
            log.warning("collection %s: background snapshot not published: %s", self.name, e.detail)
        except Exception:
            log.exception("collection %s: background snapshot failed", self.name)

    def wait_for_snapshot(self, timeout: float | None = None) -> None:
        """Wait for a background snapshot, if one is running."""
        publisher = self._publisher
        if publisher is not None and publisher is not threading.current_thread():
            publisher.join(timeout)

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
        """Publish the ANN index (if any) so the next open need not rebuild it, and the
        keyword index so it need not re-tokenise. Without `force`, a collection unchanged
        since its last snapshot writes nothing."""
        self._snapshot_keyword(force)
        unchanged = self.seq == self.snapshot_seq and not self._older_form
        if self.index.ann is None or (not force and unchanged):
            return None
        seq, state = self.seq, self.index.serialize_ann()
        if state is None:
            return None
        self.index.unsaved_adds = self.index.unsaved_removes = 0
        labels, payload, form = state
        path = self.store.write_snapshot(
            seq, self.index.ann_built_n, labels, payload, self.spec(), form=form
        )
        with self._saved_lock:
            self.snapshot_seq = max(self.snapshot_seq, seq)
            self._older_form = False
        return path

    def _snapshot_keyword(self, force: bool) -> None:
        kw = self.keyword
        if kw is None or self.store.read_only is not None:
            return
        if not force and self.keyword_snapshot_seq == self.seq:
            return
        seq = self.seq
        labels, payload = kw.snapshot()
        self.store.write_snapshot(
            seq, len(labels), labels, payload, self.KEYWORD_SPEC, "keyword", deflate=True
        )
        with self._saved_lock:
            self.keyword_snapshot_seq, self.keyword_snapshot_n = seq, len(labels)

    def keyword_search(
        self, text: str, k: int, allowed: NDArray[np.int64] | None, field: str = "mode"
    ) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        """BM25 top-k (labels, scores) among `allowed`. Caller holds the read lock."""
        if self.keyword is None:
            raise InvalidInput(
                f"collection {self.name!r} has no keyword index (created with "
                "keyword_index: false): use mode 'vector'",
                field=field,
            )
        return self.keyword.search(text, k, allowed)

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

    def _check_vectors(self, docs: list[DocumentIn]) -> NDArray[np.float32] | None:
        """The documents' vectors as float32 rows (zeros where none was given) when every
        given one passes `_check_vector`, else None (each is then checked in turn, so the
        error names the first bad one): one numpy pass instead of one per vector."""
        given = [i for i, d in enumerate(docs) if d.vector is not None]
        if not given:
            return None
        try:
            arr = np.asarray([docs[i].vector for i in given], dtype=np.float64)
        except (TypeError, ValueError):
            return None
        if arr.ndim != 2 or arr.shape[1] != self.dim:
            return None
        finite = np.isfinite(arr).all() and not (np.abs(arr) > np.finfo(np.float32).max).any()
        if not finite or (self.metric == "cosine" and not arr.any(axis=1).all()):
            return None
        out = np.zeros((len(docs), self.dim), dtype=np.float32)
        out[given] = arr
        return out

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
        checked = self._check_vectors(docs)  # all at once; None: each in turn, for its error
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
                if d.metadata:
                    json.dumps(d.metadata, allow_nan=False)
            except (TypeError, ValueError):
                raise InvalidInput(
                    f"{where}.metadata must be JSON (no NaN)", field=f"{where}.metadata"
                ) from None
            if d.vector is None:
                vectors.append(None)
            elif checked is not None:
                vectors.append(checked[i])
            else:
                vectors.append(self._check_vector(d.vector, f"{where}.vector"))
            if self.chunking is not None:
                chunks.check_document(d.id, d.metadata, where)
        if self.chunking is not None:
            return self._upsert_chunked(docs, vectors, skip_unchanged)
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
                self._catch_up()
        return {"upserted": len(new), "skipped": len(docs) - len(new)}

    def _upsert_chunked(
        self,
        docs: list[DocumentIn],
        vectors: list[NDArray[np.float32] | None],
        skip_unchanged: bool,
    ) -> dict[str, int]:
        """Upsert into a chunked collection: a text longer than the passage budget becomes
        passages that replace all of the document's old rows in the same transaction."""
        assert self.chunking is not None
        self.sync()
        rows: list[tuple[str, str | None, dict[str, Any], NDArray[np.float32] | None]] = []
        remove: list[str] = []
        written = passages = 0
        stored = self.store.content_hashes([d.id for d in docs]) if skip_unchanged else {}
        for d, v in zip(docs, vectors, strict=True):
            meta = d.metadata or {}
            doc_hash = content_hash(d.text, meta, v)
            with self.lock.read():
                old = set(self.passages_of.get(d.id, ()))
                old_hash = next(
                    (
                        self.meta_by_label[self.label_by_id[p]].get(chunks.HASH)
                        for p in old
                        if p in self.label_by_id
                    ),
                    None,
                )
            if skip_unchanged and doc_hash in (old_hash, stored.get(d.id)):
                continue
            parts = []
            if v is None and d.text is not None and self.embedder is not None:
                parts = chunks.split(d.text, self.embedder.token_spans, self.chunking)
            if len(parts) > 1:
                new_ids = [f"{d.id}#{j}" for j in range(len(parts))]
                for j, part in enumerate(parts):
                    pm = chunks.passage_metadata(d.id, meta, j, part, doc_hash)
                    rows.append((new_ids[j], part.text, pm, None))
                remove += [*sorted(old - set(new_ids)), d.id]
                passages += len(parts)
            else:
                rows.append((d.id, d.text, meta, v))
                remove += sorted(old)
                passages += 1
            written += 1
        todo = [j for j, r in enumerate(rows) if r[3] is None]
        emb = self._embed(
            [rows[j][1] or "" for j in todo], [f"documents[{j}].vector" for j in todo]
        )
        vecs = [r[3] for r in rows]
        for n, j in enumerate(todo):
            vecs[j] = emb[n]
        new = [
            NewDoc(r[0], r[1], r[2], v, content_hash(r[1], r[2], r[3]))
            for r, v in zip(rows, vecs, strict=True)
            if v is not None
        ]
        if new or remove:
            with self._write_mutex:
                self.store.upsert(new, remove=remove)
                self._catch_up()
        return {"upserted": written, "skipped": len(docs) - written, "passages": passages}

    def delete(
        self, ids: list[str] | None = None, where: dict[str, Any] | None = None
    ) -> list[str]:
        """Delete by ids and/or by metadata filter; returns the ids that existed and are gone
        (a chunked document's id once, for all of its passages)."""
        if ids is None and where is None:
            raise InvalidInput("give ids or a filter", field="ids")
        self.store.check_writable()
        targets = set(ids or [])
        self.sync()  # another process's writes first: its documents and their passages
        if where is not None:
            pred = compile_filter(where)
            with self.lock.read():
                targets |= {
                    self.id_by_label[lab] for lab, m in self.meta_by_label.items() if pred(m)
                }
        document = {t: t for t in targets}
        if self.passages_of:  # a chunked document goes with all of its passages
            with self.lock.read():
                labels = [self.label_by_id[t] for t in targets if t in self.label_by_id]
                docs = {self._document_of(lab) for lab in labels} | targets
                for d in docs:
                    document |= {p: d for p in self.passages_of.get(d, ())}
        if not document:
            return []
        with self._write_mutex:
            _, deleted = self.store.delete(sorted(document))
            self.sync()
        return sorted({document[i] for i in deleted})

    # ---- reads ------------------------------------------------------------------------------
    def count(self) -> int:
        self.sync()
        return len(self.id_by_label)

    def get(self, doc_id: str) -> Doc:
        docs = self.store.get([doc_id])
        if not docs:
            self.sync()  # a chunked document another process wrote: learn its passages
            if doc_id in self.passages_of:
                docs = [self._chunked_document(doc_id)]
        if not docs:
            raise DocumentNotFound(
                f"no document {doc_id!r} in collection {self.name!r}", field="id"
            )
        return docs[0]

    def _chunked_document(self, doc_id: str) -> Doc:
        """A chunked document as one: its text rebuilt from its passages, its vector the
        normalised mean of theirs (what a search for the whole document would use)."""
        parts = self.store.get(sorted(self.passages_of.get(doc_id, ())))
        if not parts:
            raise DocumentNotFound(
                f"no document {doc_id!r} in collection {self.name!r}", field="id"
            )
        text = chunks.document_text([(p.text or "", p.metadata) for p in parts])
        mean = np.mean([p.vector for p in parts], axis=0).astype(np.float32)
        return Doc(
            doc_id,
            parts[0].label,
            text,
            chunks.user_metadata(parts[0].metadata),
            mean,
            str(parts[0].metadata.get(chunks.HASH, "")),
        )

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
            "keyword_index": None if self.keyword is None else {"documents": len(self.keyword)},
            "chunking": None if self.chunking is None else self.chunking.to_json(),
        }

    def query_vectors(self, queries: list[Query]) -> NDArray[np.float32]:
        """One vector per query: given, or embedded in a single batch."""
        out = np.zeros((len(queries), self.dim), dtype=np.float32)
        texts, where = [], []
        for i, q in enumerate(queries):
            pfx = f"searches[{i}]" if len(queries) > 1 else ""
            if q.mode == "vector" and (q.text is None) == (q.vector is None):
                raise InvalidInput(
                    "give exactly one of query (text) or vector", field=f"{pfx}.query".lstrip(".")
                )
            if q.vector is not None:  # hybrid: the text is for BM25, the vector for the rest
                out[i] = self._check_vector(q.vector, f"{pfx}.vector".lstrip("."))
            elif q.mode == "keyword":
                continue  # BM25 alone needs no query vector
            elif not isinstance(q.text, str) or not q.text.strip():
                raise InvalidInput(
                    "query must be a non-empty string", field=f"{pfx}.query".lstrip(".")
                )
            else:
                texts.append(q.text)
                where.append(i)
        if texts:
            pfx = "searches[{}]." if len(queries) > 1 else ""
            emb = self._embed(texts, [f"{pfx.format(i)}query" for i in where])
            out[where] = emb
        return out

    def search(self, query: Query) -> list[Hit]:
        return self.search_batch([query])[0]

    def search_batch(self, queries: list[Query]) -> list[list[Hit]]:
        found = self._search(queries, wait=True)
        assert found is not None
        return found

    def search_nowait(self, query: Query) -> list[Hit] | None:
        """The search, if it can run without waiting: None when a write is still to be applied
        or a writer holds or awaits the lock (an event loop may call this; it never blocks)."""
        found = self._search([query], wait=False)
        return None if found is None else found[0]

    def _search(self, queries: list[Query], wait: bool) -> list[list[Hit]] | None:
        for i, q in enumerate(queries):
            where = f"searches[{i}]" if len(queries) > 1 else ""
            if not isinstance(q.k, int) or not 1 <= q.k <= 10_000:
                raise InvalidInput("k must be an integer in [1, 10000]", field=f"searches[{i}].k")
            retrieve.check_query(q, where)
            if q.mode != "vector" and self.keyword is None:
                self.keyword_search("", 0, None, f"{where}.mode".lstrip("."))  # refuses

        filters = [compile_filter(q.filter) if q.filter is not None else None for q in queries]
        vectors = self.query_vectors(queries)
        if wait:
            self.sync()
        else:
            self._check_present()
            if self.store.state() != (self.seq, self.generation):
                return None
        results: list[list[retrieve.Ranked]] = []
        with self.lock.try_read() if not wait else _held(self.lock) as ok:
            if not ok:
                return None
            for q, pred, vec in zip(queries, filters, vectors, strict=True):
                allowed = None
                if pred is not None:
                    allowed = np.fromiter(
                        (lab for lab, m in self.meta_by_label.items() if pred(m)), dtype=np.int64
                    )
                results.append(self._rank(q, vec, allowed))
        return [self._hits(r, q.with_vectors) for r, q in zip(results, queries, strict=True)]

    def _rank(
        self, q: Query, vec: NDArray[np.float32], allowed: NDArray[np.int64] | None
    ) -> list[retrieve.Ranked]:
        n = len(self.id_by_label) if allowed is None else len(allowed)
        depth = retrieve.pool_size(q, n)
        while True:
            ranked = retrieve.rank(self, q, vec, allowed, depth)
            if q.group_by_document:
                grouped = retrieve.group(ranked, self._document_of)
                # too few distinct documents among the passages: look deeper
                if len(grouped) < q.k and len(ranked) == depth and depth < min(n, 10_000):
                    depth = min(depth * 4, n, 10_000)
                    continue
                ranked = grouped
            break
        if q.score_threshold is not None:
            t, better = q.score_threshold, q.mode != "vector" or higher_is_better(self.metric)
            ranked = [r for r in ranked if (r.score >= t if better else r.score <= t)]
        return retrieve.diversify(self, q, vec, ranked, q.k)

    def _document_of(self, label: int) -> str:
        meta = self.meta_by_label.get(label) or {}
        doc = meta.get(chunks.DOC)
        return str(doc) if doc is not None else self.id_by_label.get(label, str(label))

    def _hits(self, ranked: list[retrieve.Ranked], with_vectors: bool) -> list[Hit]:
        labels = [r.label for r in ranked]
        rows: dict[int, tuple[str, str | None, dict[str, Any], list[float] | None]] = {}
        if with_vectors:  # the vectors are only in the store: read the hits' rows
            for lab, d in self.store.get_by_labels(labels).items():
                rows[lab] = (d.id, d.text, d.metadata, d.vector.tolist())
        else:  # ids and metadata are in memory, the texts in a cache beside them: no SQLite
            texts = self._texts_of(labels)
            for lab in labels:
                doc_id, meta = self.id_by_label.get(lab), self.meta_by_label.get(lab)
                if doc_id is not None and meta is not None and lab in texts:
                    rows[lab] = (doc_id, texts[lab], dict(meta), None)
        # a hit whose document was replaced between search and fetch is dropped, not misreported
        out = []
        for r in ranked:
            if (row := rows.get(r.label)) is None:
                continue
            doc_id, text, metadata, vector = row
            hit = Hit(doc_id, r.score, text, metadata, vector)
            hit.extra = r.extra
            if (info := chunks.passage_info(doc_id, metadata)) is not None:
                hit.metadata = chunks.user_metadata(metadata)
                hit.extra["passage"] = info
                if "passages_matched" in r.extra:  # grouped: the hit is the document
                    hit.id = str(info["document"])
            out.append(hit)
        return out

    _texts: dict[int, str | None] | None = None  # label -> text, filled when the store is read
    _texts_lock: ClassVar[threading.Lock] = threading.Lock()  # fills and prunes, not lookups

    def _texts_of(self, labels: list[int]) -> dict[int, str | None]:
        """The texts of `labels` that are still stored. A label's text never changes and
        labels are never reused, so texts are cached by label: all of them as the collection
        loads (11 MB for 57k short texts), then the labels written since as hits ask for
        them. Entries of removed labels are dropped when they outnumber the live ones."""
        cache = self._texts
        if cache is not None and all(lab in cache for lab in labels):
            return cache
        with self._texts_lock:
            cache = self._texts
            if cache is None:
                cache = self.store.texts()
            elif len(cache) > 2 * len(self.id_by_label) + 1024:
                live = self.id_by_label
                cache = {lab: t for lab, t in cache.items() if lab in live}
            if missing := [lab for lab in labels if lab not in cache]:
                cache.update(self.store.texts(missing))
            self._texts = cache
            return cache

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


@contextlib.contextmanager
def _held(lock: RWLock) -> Iterator[bool]:
    with lock.read():
        yield True


def _unit(v: NDArray[np.float32]) -> NDArray[np.float32]:
    n = float(np.linalg.norm(v))
    if n == 0 or not math.isfinite(n):
        raise InvalidInput("term vector has zero length", field="terms")
    return (v / n).astype(np.float32)
