"""The on-disk format of a collection: the one module that writes and reads it.

    <data_dir>/<name>/
        manifest.json        format version, metric, index spec, embedder, dim (written atomically)
        store.sqlite         documents: the source of truth (WAL mode, synchronous=FULL)
        snapshots/ann-<seq>.bin   FAISS ANN index covering the log up to <seq> (a derived cache)

Every write is one SQLite transaction that takes the next `seq`. A document version gets a new
`label` (the int64 id FAISS sees) that is never reused; the label it replaces, or the label of a
deleted document, goes to `removed` with the same seq. So "what changed after seq S" is two
queries, which is how a reopened collection replays what came after its snapshot and how a
process picks up what another process (a batch job, say) wrote. Commits are durable before the
call returns: an acknowledged write survives kill -9.

The snapshot files have their own module (indexer/snapshot.py); publishing files atomically is
indexer/files.py.

Errors: SQLite's result codes become the engine's errors here, in one place (`sqlite_error`):
busy -> CollectionBusy (409), full -> StorageFull (507), read-only -> ReadOnlyStorage (503),
corrupt -> CorruptCollection (refuse loudly, never serve an empty collection), I/O error during a
write -> StorageError, and the store turns read-only until it is reopened: after a failed fsync
the kernel may have dropped the dirty pages, so retrying and reporting success could acknowledge
data that is not on disk (PostgreSQL's "fsyncgate").
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from . import snapshot
from .errors import (
    CollectionBusy,
    CollectionNotFound,
    CorruptCollection,
    ReadOnlyStorage,
    StorageError,
    StorageFull,
    VPError,
)
from .files import fsync_dir as fsync_dir  # re-exported: the engine and shards use it
from .files import remove_stale_temp_files as remove_stale_temp_files
from .files import write_atomic
from .snapshot import list_snapshots as list_snapshots
from .snapshot import read_snapshot as read_snapshot

log = logging.getLogger("vector_primer.store")

FORMAT_VERSION = 1
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
TABLES = ("documents", "removed", "state")
# SQLite primary result codes (https://www.sqlite.org/rescode.html)
SQLITE_BUSY, SQLITE_LOCKED, SQLITE_READONLY, SQLITE_IOERR = 5, 6, 8, 10
SQLITE_CORRUPT, SQLITE_FULL, SQLITE_CANTOPEN, SQLITE_NOTADB = 11, 13, 14, 26
# A row is mostly its vector (1,536 bytes at 384-d): SQLite's default 4 KiB pages hold two such
# rows and leave a sixth empty; 32 KiB pages hold 19 (57k real rows: 2,093 -> 1,770 bytes each).
# A store keeps the page size it was created with (older stores: 4 KiB).
PAGE_SIZE = 32768
# SQLite checkpoints its WAL every 1000 pages (32 MiB at this page size) and keeps the file at
# its largest: checkpoint every ~4 MiB instead, and cut the file back to that afterwards.
WAL_BYTES = 4 << 20

_SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    id TEXT PRIMARY KEY,
    label INTEGER NOT NULL UNIQUE,
    seq INTEGER NOT NULL,
    text TEXT,
    metadata TEXT NOT NULL,
    vector BLOB NOT NULL,
    content_hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS documents_seq ON documents(seq);
CREATE TABLE IF NOT EXISTS removed (label INTEGER PRIMARY KEY, seq INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS removed_seq ON removed(seq);
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO state VALUES ('seq', 0), ('next_label', 0), ('generation', 0);
"""


@dataclass(frozen=True)
class NewDoc:
    id: str
    text: str | None
    metadata: dict[str, Any]
    vector: NDArray[np.float32]
    content_hash: str


@dataclass(frozen=True)
class Doc:
    id: str
    label: int
    text: str | None
    metadata: dict[str, Any]
    vector: NDArray[np.float32]
    content_hash: str


@dataclass
class Changes:
    """What a reader must apply to move from one seq to `seq`."""

    seq: int
    generation: int
    labels: NDArray[np.int64]
    ids: list[str]
    metadata: list[dict[str, Any]]
    vectors: NDArray[np.float32]
    removed: NDArray[np.int64]
    texts: list[str | None] = field(default_factory=list)


def sqlite_error(e: sqlite3.Error, name: str, action: str) -> VPError:
    """The engine's error for a SQLite failure while doing `action` on collection `name`."""
    code = getattr(e, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    if primary in (SQLITE_BUSY, SQLITE_LOCKED):
        return CollectionBusy(f"collection {name!r} is locked by another writer: try again")
    if primary == SQLITE_FULL:
        return StorageFull(f"storage full: {action} on {name!r} failed, nothing was stored")
    if primary == SQLITE_READONLY:
        return ReadOnlyStorage(f"{action} on {name!r} failed: the storage is read-only")
    if primary in (SQLITE_CORRUPT, SQLITE_NOTADB) or "decode" in str(e).lower():
        return CorruptCollection(f"collection {name!r} is damaged ({e}); restore it from a backup")
    if primary == SQLITE_CANTOPEN:
        return StorageError(f"{action} on {name!r} failed: cannot open its store ({e})")
    return StorageError(f"{action} on {name!r} failed: {e}")


MANIFEST_FIELDS: dict[str, type | tuple[type, ...]] = {
    "metric": str,
    "index": str,
    "dim": int,
    "params": dict,
    "embedder": (str, type(None)),
}


def read_manifest(path: Path, verify: bool = True) -> dict[str, Any]:
    """The collection's manifest, checked: format, fields, and (with `verify`, for manifests
    written since it was added) its checksum, so an edited or damaged spec is refused."""
    try:
        manifest: dict[str, Any] = json.loads((path / "manifest.json").read_text())
    except (OSError, ValueError) as e:
        raise CorruptCollection(f"cannot read manifest of {path.name}: {e}") from e
    if not isinstance(manifest, dict) or manifest.get("format_version") != FORMAT_VERSION:
        found = manifest.get("format_version") if isinstance(manifest, dict) else None
        raise CorruptCollection(
            f"collection {path.name} has format {found}, this version reads {FORMAT_VERSION}"
        )
    if verify and "checksum" in manifest and manifest["checksum"] != _manifest_sum(manifest):
        raise CorruptCollection(
            f"manifest of {path.name} fails its checksum (edited or damaged): the collection's "
            "metric, index, embedder or dim may not be what its data was made with"
        )
    for key, kind in MANIFEST_FIELDS.items():
        value = manifest.get(key)
        if not isinstance(value, kind) or isinstance(value, bool) or value == "":
            raise CorruptCollection(f"manifest of {path.name} has no valid {key!r}: {value!r}")
    if manifest["dim"] < 1:
        raise CorruptCollection(f"manifest of {path.name} has dim {manifest['dim']}")
    return manifest


def _manifest_sum(manifest: dict[str, Any]) -> str:
    fields = {k: v for k, v in manifest.items() if k != "checksum"}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


def write_manifest(path: Path, manifest: dict[str, Any]) -> None:
    body = {**manifest, "format_version": FORMAT_VERSION}
    body["checksum"] = _manifest_sum(body)
    write_atomic(path / "manifest.json", json.dumps(body, indent=2, sort_keys=True).encode())


def _vec(blob: bytes, dim: int) -> NDArray[np.float32]:
    if not isinstance(blob, bytes) or len(blob) != 4 * dim:
        size = len(blob) if isinstance(blob, bytes) else type(blob).__name__
        raise CorruptCollection(f"stored vector has {size} bytes, expected {4 * dim}")
    return np.frombuffer(blob, dtype=np.float32)


@functools.cache
def _expected_schema() -> set[tuple[str, str, str | None]]:
    """sqlite_master as _SCHEMA makes it: every store of this format has exactly this."""
    conn = sqlite3.connect(":memory:")
    try:
        conn.executescript(_SCHEMA)
        return set(conn.execute("SELECT type, name, sql FROM sqlite_master"))
    finally:
        conn.close()


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except (TypeError, ValueError) as e:
        raise CorruptCollection(f"stored metadata is not JSON: {e}") from e


def content_hash(
    text: str | None, metadata: dict[str, Any], vector: NDArray[np.float32] | None
) -> str:
    """What "the same document" means for a resumable build: same text, metadata and (if the
    caller gave one) vector. Also each row's checksum, verified when a collection opens."""
    h = hashlib.sha256()
    h.update(json.dumps([text, metadata], sort_keys=True).encode())
    if vector is not None:
        h.update(np.ascontiguousarray(vector, dtype=np.float32).tobytes())
    return h.hexdigest()


def _doc(r: tuple[Any, ...], dim: int) -> Doc:
    return Doc(r[0], r[1], r[2], _json(r[3]), _vec(r[4], dim), r[5])


_DOC_COLUMNS = "id, label, text, metadata, vector, content_hash"
_BAD_TYPES = """SELECT
  (SELECT COUNT(*) FROM documents WHERE typeof(id) != 'text' OR typeof(label) != 'integer'
     OR typeof(seq) != 'integer' OR typeof(text) NOT IN ('text', 'null')
     OR typeof(metadata) != 'text' OR typeof(vector) != 'blob' OR typeof(content_hash) != 'text')
  + (SELECT COUNT(*) FROM removed WHERE typeof(label) != 'integer' OR typeof(seq) != 'integer')
  + (SELECT COUNT(*) FROM state WHERE typeof(key) != 'text' OR typeof(value) != 'integer')"""


class Store:
    """SQLite document store of one collection. Thread-safe: each thread gets its own
    connection; writes are serialised by SQLite's own lock (across processes too). A writer
    waits at most `busy_timeout_s` for another process's write lock, then gets CollectionBusy.

    Opening checks the file before anything is served: the tables must exist, SQLite's
    `integrity_check` must pass (pages, and every index entry against its row, so a damaged id,
    label or seq is caught) and the state must be ahead of every row; indexer/load.py
    `read_verified` then checks every row's stored values against its content hash as the
    collection loads them. Else CorruptCollection: an empty or damaged file is never mistaken for
    an empty collection, nor served with wrong contents."""

    def __init__(self, path: Path, dim: int, busy_timeout_s: float = 2.0) -> None:
        self.path = path
        self.name = path.name
        self.dim = dim
        self.db_path = path / "store.sqlite"
        self.busy_timeout_s = busy_timeout_s
        self.read_only: str | None = None  # why writes are refused, if they are
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        try:
            st = self.db_path.stat()
        except FileNotFoundError:
            raise CorruptCollection(f"collection {path.name} has no store.sqlite") from None
        if st.st_size == 0:  # sqlite would take it for a new, empty database
            raise CorruptCollection(
                f"store of collection {path.name!r} is an empty file: refusing to serve it as "
                "an empty collection; restore it from a backup"
            )
        self.inode = st.st_ino
        if not os.access(path, os.W_OK):
            self.read_only = "its data directory is read-only"
        with self._guard("opening"):
            self._check()

    @classmethod
    def initialise(cls, path: Path) -> None:
        try:
            conn = sqlite3.connect(path / "store.sqlite")
            try:
                conn.execute(f"PRAGMA page_size={PAGE_SIZE}")  # before anything is written
                conn.execute("PRAGMA journal_mode=WAL")
                conn.executescript(_SCHEMA)
                conn.commit()
            finally:
                conn.close()
        except sqlite3.Error as e:
            raise sqlite_error(e, path.name, "creating the collection") from e

    def _check(self) -> None:
        conn = self._conn()
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        missing = [t for t in TABLES if t not in tables]
        if missing:
            raise CorruptCollection(
                f"store of collection {self.name!r} has no {', '.join(missing)} table: "
                "refusing to serve it as empty; restore it from a backup"
            )
        schema = set(conn.execute("SELECT type, name, sql FROM sqlite_master"))
        if schema != _expected_schema():
            raise CorruptCollection(
                f"store of collection {self.name!r} has a schema that is not format "
                f"{FORMAT_VERSION}'s (damaged or not ours); restore it from a backup"
            )
        problems = self.integrity_check()
        if problems:
            raise CorruptCollection(
                f"store of collection {self.name!r} fails its check ({problems[0]}); "
                "restore it from a backup"
            )
        bad = conn.execute(_BAD_TYPES).fetchone()[0]
        if bad:  # SQLite does not enforce column types: a damaged record header can change one
            raise CorruptCollection(
                f"store of collection {self.name!r} has {bad} rows with values of the wrong "
                "type; restore it from a backup"
            )
        state = dict(conn.execute("SELECT key, value FROM state").fetchall())
        top = [  # each MAX is one index lookup
            conn.execute(f"SELECT COALESCE(MAX({col}), -1) FROM {table}").fetchone()[0]
            for table in ("documents", "removed")
            for col in ("label", "seq")
        ]
        if not {"seq", "next_label", "generation"} <= state.keys() or (
            state["next_label"] <= max(top[0], top[2]) or state["seq"] < max(top[1], top[3])
        ):
            raise CorruptCollection(f"store of collection {self.name!r} has a damaged state")

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            if not self.db_path.exists():  # never let sqlite create an empty file in its place
                raise CollectionNotFound(f"collection {self.name!r} was dropped", field="name")
            conn = self._connect()
            self._local.conn = conn
            with self._conns_lock:
                self._conns.append(conn)
        return conn

    def _connect(self) -> sqlite3.Connection:
        def connect(target: str, uri: bool) -> sqlite3.Connection:
            return sqlite3.connect(
                target,
                timeout=self.busy_timeout_s,
                isolation_level=None,
                check_same_thread=False,
                uri=uri,
            )

        try:
            conn = connect(str(self.db_path), uri=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            page = int(conn.execute("PRAGMA page_size").fetchone()[0])
            conn.execute(f"PRAGMA wal_autocheckpoint={max(1, WAL_BYTES // page)}")
            conn.execute(f"PRAGMA journal_size_limit={WAL_BYTES}")
            return conn
        except sqlite3.OperationalError:
            if self.read_only is None:
                raise
        # A read-only disk: WAL mode needs a -shm file it cannot create. Nothing can change
        # the file there, so SQLite may read it as immutable (no locks, no -shm).
        return connect(self.db_path.resolve().as_uri() + "?immutable=1", uri=True)

    def close(self) -> None:
        with self._conns_lock:
            for conn in self._conns:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            self._conns.clear()
        self._local = threading.local()

    @contextlib.contextmanager
    def _guard(self, action: str) -> Iterator[None]:
        """SQLite errors of a read (or an open) as engine errors."""
        try:
            yield
        except sqlite3.Error as e:
            raise sqlite_error(e, self.name, action) from e
        except UnicodeDecodeError as e:  # a damaged text (or schema) that is not UTF-8
            raise CorruptCollection(
                f"collection {self.name!r} is damaged (stored text is not UTF-8); "
                "restore it from a backup"
            ) from e

    def _failed_write(self, e: sqlite3.Error, waited: float) -> VPError:
        err = sqlite_error(e, self.name, "a write")
        if isinstance(err, CollectionBusy):
            return CollectionBusy(
                f"collection {self.name!r} is locked by another writer (another process holds "
                f"its write lock; waited {waited:.1f} s, VP_WRITE_LOCK_TIMEOUT_S): try again"
            )
        code = getattr(e, "sqlite_errorcode", 0) or 0
        if code & 0xFF == SQLITE_IOERR:  # maybe a failed fsync: never retry it
            self.read_only = f"an I/O error during a write ({e}); restart after checking the disk"
            log.error("collection %s is read-only until restart: %s", self.name, e)
            err = StorageError(
                f"write to {self.name!r} failed, nothing was acknowledged ({e}); the collection "
                "is read-only until the service restarts"
            )
        return err

    def check_writable(self) -> None:
        if self.read_only is not None:
            raise ReadOnlyStorage(f"collection {self.name!r} is read-only: {self.read_only}")

    def _check_not_dropped(self) -> None:
        try:
            same = self.db_path.stat().st_ino == self.inode
        except FileNotFoundError:
            same = False
        if not same:
            raise CollectionNotFound(f"collection {self.name!r} was dropped", field="name")

    @contextlib.contextmanager
    def _write(self) -> Iterator[tuple[sqlite3.Connection, int]]:
        """One write transaction with the next seq; commits (durably) or rolls back whole."""
        self.check_writable()
        conn = self._conn()
        started = time.monotonic()
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as e:
            raise self._failed_write(e, time.monotonic() - started) from e
        try:
            self._check_not_dropped()  # holding the lock: a dropped store takes no more writes
            seq = self._state(conn, "seq") + 1
            conn.execute("UPDATE state SET value=? WHERE key='seq'", (seq,))
            yield conn, seq
            conn.execute("COMMIT")
        except BaseException as e:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            if isinstance(e, sqlite3.Error):
                raise self._failed_write(e, time.monotonic() - started) from e
            raise

    @staticmethod
    def _state(conn: sqlite3.Connection, key: str) -> int:
        return int(conn.execute("SELECT value FROM state WHERE key=?", (key,)).fetchone()[0])

    # ---- writes ---------------------------------------------------------------------------
    def upsert(self, docs: list[NewDoc], remove: list[str] | None = None) -> int:
        """Write `docs` (replacing same ids) and delete the ids in `remove`, in one transaction
        (a chunked document's new passages replace all of its old ones, all or nothing).
        `last_write()` then gives this thread what the transaction changed."""
        self._local.last_write = None
        with self._write() as (conn, seq):
            label = first = self._state(conn, "next_label")
            generation = self._state(conn, "generation")
            ids = [d.id for d in docs]
            old = self._labels_of(conn, ids)
            gone = self._labels_of(conn, [i for i in remove or [] if i not in old])
            removed = [*old.values(), *gone.values()]
            conn.executemany(
                "INSERT OR REPLACE INTO removed VALUES (?, ?)", [(lab, seq) for lab in removed]
            )
            conn.executemany("DELETE FROM documents WHERE id=?", [(i,) for i in gone])
            rows = []
            for d in docs:
                rows.append(
                    (
                        d.id,
                        label,
                        seq,
                        d.text,
                        json.dumps(d.metadata, sort_keys=True),
                        np.ascontiguousarray(d.vector, dtype=np.float32).tobytes(),
                        d.content_hash,
                    )
                )
                label += 1
            conn.executemany("INSERT OR REPLACE INTO documents VALUES (?,?,?,?,?,?,?)", rows)
            conn.execute("UPDATE state SET value=? WHERE key='next_label'", (label,))
        blob = b"".join(r[5] for r in rows)
        if len(set(ids)) == len(ids) and len(blob) == 4 * self.dim * len(rows):
            self._local.last_write = Changes(
                seq=seq,
                generation=generation,
                labels=np.arange(first, label, dtype=np.int64),
                ids=ids,
                metadata=[{} if r[4] == "{}" else json.loads(r[4]) for r in rows],
                vectors=np.frombuffer(blob, dtype=np.float32).reshape(len(rows), self.dim),
                removed=np.asarray(removed, dtype=np.int64),
                texts=[d.text for d in docs],
            )
        return seq

    def last_write(self) -> Changes | None:
        """What this thread's last `upsert` changed, as `changes_since(seq - 1)` would read it
        (its own copies: the caller's objects may change), or None if it failed."""
        last: Changes | None = getattr(self._local, "last_write", None)
        return last

    def delete(self, ids: list[str]) -> tuple[int, list[str]]:
        self.check_writable()
        with self._guard("a delete"):
            if not self._labels_of(self._conn(), ids):  # nothing to delete: no new seq either
                return self.state()[0], []
        with self._write() as (conn, seq):
            old = self._labels_of(conn, ids)
            conn.executemany(
                "INSERT OR REPLACE INTO removed VALUES (?, ?)", [(lab, seq) for lab in old.values()]
            )
            conn.executemany("DELETE FROM documents WHERE id=?", [(i,) for i in old])
        return seq, list(old)

    def bump_generation(self) -> int:
        with self._write() as (conn, _):
            gen = self._state(conn, "generation") + 1
            conn.execute("UPDATE state SET value=? WHERE key='generation'", (gen,))
        return gen

    @staticmethod
    def _labels_of(conn: sqlite3.Connection, ids: list[str]) -> dict[str, int]:
        out: dict[str, int] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            q = f"SELECT id, label FROM documents WHERE id IN ({','.join('?' * len(chunk))})"
            out.update(conn.execute(q, chunk).fetchall())
        return out

    # ---- reads ----------------------------------------------------------------------------
    def state(self) -> tuple[int, int]:
        """(seq, generation): cheap enough to check before every read."""
        with self._guard("a read"):
            rows = dict(self._conn().execute("SELECT key, value FROM state").fetchall())
        return int(rows["seq"]), int(rows["generation"])

    def changes_since(self, seq: int) -> Changes:
        """Everything written after `seq`, read in one consistent transaction."""
        with self._guard("a read"):
            conn = self._conn()
            conn.execute("BEGIN")
            try:
                now, gen = self.state()
                rows = conn.execute(
                    "SELECT label, id, metadata, vector, text FROM documents WHERE seq > ? "
                    "ORDER BY label",
                    (seq,),
                ).fetchall()
                removed = [
                    r[0] for r in conn.execute("SELECT label FROM removed WHERE seq > ?", (seq,))
                ]
            finally:
                conn.execute("COMMIT")
        vectors = np.zeros((len(rows), self.dim), dtype=np.float32)
        for i, r in enumerate(rows):
            vectors[i] = _vec(r[3], self.dim)
        return Changes(
            seq=now,
            generation=gen,
            labels=np.asarray([r[0] for r in rows], dtype=np.int64),
            ids=[r[1] for r in rows],
            metadata=[_json(r[2]) for r in rows],
            vectors=vectors,
            removed=np.asarray(removed, dtype=np.int64),
            texts=[r[4] for r in rows],
        )

    def get(self, ids: list[str]) -> list[Doc]:
        """Documents by id, in the order asked, missing ones left out."""
        found: dict[str, Doc] = {}
        with self._guard("a read"):
            conn = self._conn()
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                marks = ",".join("?" * len(chunk))
                q = f"SELECT {_DOC_COLUMNS} FROM documents WHERE id IN ({marks})"
                for r in conn.execute(q, chunk):
                    found[r[0]] = _doc(r, self.dim)
        return [found[i] for i in ids if i in found]

    def get_by_labels(self, labels: list[int]) -> dict[int, Doc]:
        if not labels:
            return {}
        q = f"SELECT {_DOC_COLUMNS} FROM documents WHERE label IN ({','.join('?' * len(labels))})"
        with self._guard("a read"):
            return {r[1]: _doc(r, self.dim) for r in self._conn().execute(q, labels)}

    def texts(self, labels: list[int] | None = None) -> dict[int, str | None]:
        """label -> text of the live documents among `labels` (all of them when None): the
        texts alone, for a cache of them (a label's text never changes)."""
        with self._guard("a read"):
            conn = self._conn()
            if labels is None:
                return dict(conn.execute("SELECT label, text FROM documents").fetchall())
            out: dict[int, str | None] = {}
            for start in range(0, len(labels), 500):
                chunk = labels[start : start + 500]
                marks = ",".join("?" * len(chunk))
                q = f"SELECT label, text FROM documents WHERE label IN ({marks})"
                out.update(conn.execute(q, chunk).fetchall())
            return out

    def content_hashes(self, ids: list[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        with self._guard("a read"):
            conn = self._conn()
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                marks = ",".join("?" * len(chunk))
                q = f"SELECT id, content_hash FROM documents WHERE id IN ({marks})"
                out.update(conn.execute(q, chunk).fetchall())
        return out

    def page(self, limit: int, after: str | None) -> list[Doc]:
        """Documents in id order, starting after the cursor `after`."""
        q = f"SELECT {_DOC_COLUMNS} FROM documents"
        args: list[Any] = []
        if after is not None:
            q += " WHERE id > ?"
            args.append(after)
        q += " ORDER BY id LIMIT ?"
        args.append(limit)
        with self._guard("a read"):
            return [_doc(r, self.dim) for r in self._conn().execute(q, args)]

    def count(self) -> int:
        with self._guard("a read"):
            return int(self._conn().execute("SELECT COUNT(*) FROM documents").fetchone()[0])

    def integrity_check(self) -> list[str]:
        """SQLite's full check (every page, every index entry): [] when the file is sound."""
        with self._guard("a check"):
            problems = [r[0] for r in self._conn().execute("PRAGMA integrity_check")]
        return [] if problems == ["ok"] else problems

    # ---- backups --------------------------------------------------------------------------
    def copy_to(self, dest: Path) -> dict[str, int]:
        """A consistent copy of the store as of one transaction (SQLite's online backup API:
        writers go on meanwhile), fsynced; returns the copy's seq, generation and count."""
        with self._guard("a backup"):
            src = sqlite3.connect(self.db_path, timeout=self.busy_timeout_s)
            try:
                dst = sqlite3.connect(dest)
                try:
                    src.backup(dst)  # one step: one read transaction, one consistent state
                    state = dict(dst.execute("SELECT key, value FROM state").fetchall())
                    count = int(dst.execute("SELECT COUNT(*) FROM documents").fetchone()[0])
                finally:
                    dst.close()
            finally:
                src.close()
        with open(dest, "rb+") as f:
            os.fsync(f.fileno())
        return {"seq": state["seq"], "generation": state["generation"], "count": count}

    # ---- snapshots (indexer/snapshot.py has the file format) ------------------------------
    def write_snapshot(
        self,
        seq: int,
        built_n: int,
        labels: NDArray[np.int64],
        payload: bytes,
        spec: dict[str, Any],
        kind: str = "ann",
        form: str | None = None,
        deflate: bool | None = None,
    ) -> Path:
        """Publish a snapshot (indexer/snapshot.py); a graph without vectors (`form`) is
        stored deflated unless `deflate` says otherwise."""
        deflate = form is not None if deflate is None else deflate
        return snapshot.write(self.path, seq, built_n, labels, payload, spec, kind, form, deflate)

    def read_snapshots(
        self, spec: dict[str, Any], kind: str = "ann"
    ) -> Iterator[tuple[int, int, NDArray[np.int64], bytes, str | None]]:
        return snapshot.read_valid(self.path, spec, kind)
