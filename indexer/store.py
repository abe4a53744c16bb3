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

A snapshot file is `MAGIC | header length | header JSON | labels | faiss bytes`; the header holds
the seq it covers and a sha256 of the rest. It is published by temp file, fsync, rename and
directory fsync, and verified on load; a damaged snapshot is skipped, never served.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import sqlite3
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .errors import CollectionBusy, CorruptCollection, StorageError

FORMAT_VERSION = 1
SNAPSHOT_MAGIC = b"VPSNAP01"
KEEP_SNAPSHOTS = 2
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

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


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Temp file in the same directory, fsync, rename over the target, fsync the directory: a
    reader sees the old file or the new one, never a partial one, even after a crash."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    fsync_dir(path.parent)


def read_manifest(path: Path) -> dict[str, Any]:
    try:
        manifest: dict[str, Any] = json.loads((path / "manifest.json").read_text())
    except (OSError, ValueError) as e:
        raise CorruptCollection(f"cannot read manifest of {path.name}: {e}") from e
    if manifest.get("format_version") != FORMAT_VERSION:
        raise CorruptCollection(
            f"collection {path.name} has format {manifest.get('format_version')}, "
            f"this version reads {FORMAT_VERSION}"
        )
    return manifest


def write_manifest(path: Path, manifest: dict[str, Any]) -> None:
    body = {"format_version": FORMAT_VERSION, **manifest}
    write_atomic(path / "manifest.json", json.dumps(body, indent=2, sort_keys=True).encode())


def _vec(blob: bytes, dim: int) -> NDArray[np.float32]:
    if len(blob) != 4 * dim:
        raise CorruptCollection(f"stored vector has {len(blob)} bytes, expected {4 * dim}")
    return np.frombuffer(blob, dtype=np.float32)


class Store:
    """SQLite document store of one collection. Thread-safe: each thread gets its own
    connection; writes are serialised by SQLite's own lock (across processes too)."""

    def __init__(self, path: Path, dim: int, busy_timeout_s: float = 30.0) -> None:
        self.path = path
        self.dim = dim
        self.db_path = path / "store.sqlite"
        self.busy_timeout_s = busy_timeout_s
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        if not self.db_path.exists():
            raise CorruptCollection(f"collection {path.name} has no store.sqlite")
        self._conn().executescript(_SCHEMA)

    @classmethod
    def initialise(cls, path: Path) -> None:
        conn = sqlite3.connect(path / "store.sqlite")
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(_SCHEMA)
            conn.commit()
        finally:
            conn.close()

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self.db_path,
                timeout=self.busy_timeout_s,
                isolation_level=None,
                check_same_thread=False,
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            self._local.conn = conn
            with self._conns_lock:
                self._conns.append(conn)
        return conn

    def close(self) -> None:
        with self._conns_lock:
            for conn in self._conns:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            self._conns.clear()
        self._local = threading.local()

    @contextlib.contextmanager
    def _write(self) -> Iterator[tuple[sqlite3.Connection, int]]:
        """One write transaction with the next seq; commits (durably) or rolls back whole."""
        conn = self._conn()
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as e:
            raise CollectionBusy(
                f"collection {self.path.name} is locked by another writer: {e}"
            ) from e
        try:
            seq = self._state(conn, "seq") + 1
            conn.execute("UPDATE state SET value=? WHERE key='seq'", (seq,))
            yield conn, seq
            conn.execute("COMMIT")
        except BaseException as e:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            if isinstance(e, sqlite3.Error):
                raise StorageError(f"write failed, nothing was stored: {e}") from e
            raise

    @staticmethod
    def _state(conn: sqlite3.Connection, key: str) -> int:
        return int(conn.execute("SELECT value FROM state WHERE key=?", (key,)).fetchone()[0])

    # ---- writes ---------------------------------------------------------------------------
    def upsert(self, docs: list[NewDoc]) -> int:
        with self._write() as (conn, seq):
            label = self._state(conn, "next_label")
            ids = [d.id for d in docs]
            old = self._labels_of(conn, ids)
            conn.executemany(
                "INSERT OR REPLACE INTO removed VALUES (?, ?)", [(lab, seq) for lab in old.values()]
            )
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
        return seq

    def delete(self, ids: list[str]) -> tuple[int, list[str]]:
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
        rows = dict(self._conn().execute("SELECT key, value FROM state").fetchall())
        return int(rows["seq"]), int(rows["generation"])

    def changes_since(self, seq: int) -> Changes:
        """Everything written after `seq`, read in one consistent transaction."""
        conn = self._conn()
        conn.execute("BEGIN")
        try:
            now, gen = self.state()
            rows = conn.execute(
                "SELECT label, id, metadata, vector FROM documents WHERE seq > ? ORDER BY label",
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
            metadata=[json.loads(r[2]) for r in rows],
            vectors=vectors,
            removed=np.asarray(removed, dtype=np.int64),
        )

    def get(self, ids: list[str]) -> list[Doc]:
        """Documents by id, in the order asked, missing ones left out."""
        found: dict[str, Doc] = {}
        conn = self._conn()
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            q = (
                "SELECT id, label, text, metadata, vector, content_hash FROM documents "
                f"WHERE id IN ({','.join('?' * len(chunk))})"
            )
            for r in conn.execute(q, chunk):
                found[r[0]] = Doc(r[0], r[1], r[2], json.loads(r[3]), _vec(r[4], self.dim), r[5])
        return [found[i] for i in ids if i in found]

    def get_by_labels(self, labels: list[int]) -> dict[int, Doc]:
        conn = self._conn()
        q = (
            "SELECT id, label, text, metadata, vector, content_hash FROM documents "
            f"WHERE label IN ({','.join('?' * len(labels))})"
        )
        return (
            {
                r[1]: Doc(r[0], r[1], r[2], json.loads(r[3]), _vec(r[4], self.dim), r[5])
                for r in conn.execute(q, labels)
            }
            if labels
            else {}
        )

    def content_hashes(self, ids: list[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        conn = self._conn()
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            q = f"SELECT id, content_hash FROM documents WHERE id IN ({','.join('?' * len(chunk))})"
            out.update(conn.execute(q, chunk).fetchall())
        return out

    def page(self, limit: int, after: str | None) -> list[Doc]:
        """Documents in id order, starting after the cursor `after`."""
        q = "SELECT id, label, text, metadata, vector, content_hash FROM documents"
        args: list[Any] = []
        if after is not None:
            q += " WHERE id > ?"
            args.append(after)
        q += " ORDER BY id LIMIT ?"
        args.append(limit)
        return [
            Doc(r[0], r[1], r[2], json.loads(r[3]), _vec(r[4], self.dim), r[5])
            for r in self._conn().execute(q, args)
        ]

    def count(self) -> int:
        return int(self._conn().execute("SELECT COUNT(*) FROM documents").fetchone()[0])

    # ---- snapshots ------------------------------------------------------------------------
    def write_snapshot(
        self,
        seq: int,
        built_n: int,
        labels: NDArray[np.int64],
        payload: bytes,
        spec: dict[str, Any],
    ) -> Path:
        body = np.ascontiguousarray(labels, dtype=np.int64).tobytes() + payload
        header = json.dumps(
            {
                "seq": seq,
                "built_n": built_n,
                "n_labels": len(labels),
                "spec": spec,
                "sha256": hashlib.sha256(body).hexdigest(),
                "created": time.time(),
            }
        ).encode()
        snaps = self.path / "snapshots"
        snaps.mkdir(exist_ok=True)
        target = snaps / f"ann-{seq:012d}.bin"
        write_atomic(target, SNAPSHOT_MAGIC + struct.pack("<I", len(header)) + header + body)
        for old in sorted(snaps.glob("ann-*.bin"))[:-KEEP_SNAPSHOTS]:
            with contextlib.suppress(FileNotFoundError):
                old.unlink()
        return target

    def read_snapshots(
        self, spec: dict[str, Any]
    ) -> Iterator[tuple[int, int, NDArray[np.int64], bytes]]:
        """Valid snapshots for `spec`, newest first: (seq, built_n, labels, faiss bytes).
        Damaged or foreign files are skipped, so a torn write can only cost a rebuild."""
        snaps = self.path / "snapshots"
        if not snaps.is_dir():
            return
        for file in sorted(snaps.glob("ann-*.bin"), reverse=True):
            parsed = _parse_snapshot(file.read_bytes())
            if parsed is None or parsed[0].get("spec") != spec:
                continue
            header, labels, payload = parsed
            yield int(header["seq"]), int(header["built_n"]), labels, payload


def _parse_snapshot(data: bytes) -> tuple[dict[str, Any], NDArray[np.int64], bytes] | None:
    if not data.startswith(SNAPSHOT_MAGIC) or len(data) < len(SNAPSHOT_MAGIC) + 4:
        return None
    start = len(SNAPSHOT_MAGIC)
    (hlen,) = struct.unpack("<I", data[start : start + 4])
    try:
        header = json.loads(data[start + 4 : start + 4 + hlen])
        body = data[start + 4 + hlen :]
        if hashlib.sha256(body).hexdigest() != header["sha256"]:
            return None
        n = int(header["n_labels"])
        labels = np.frombuffer(body[: 8 * n], dtype=np.int64)
        return header, labels, body[8 * n :]
    except (ValueError, KeyError, TypeError):
        return None
