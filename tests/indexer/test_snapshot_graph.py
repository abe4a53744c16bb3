"""HNSW snapshots hold the graph without its vectors (the store has them): they reopen to the very
same index, the labels removed since get stand-in vectors and are never returned, too many of
them cost a rebuild, and snapshots of the older form (graph and vectors) still load."""

from __future__ import annotations

import json
import sqlite3
import struct
from pathlib import Path

import numpy as np
import pytest

from indexer import DocumentIn, Engine, Settings
from indexer.collection import Collection
from indexer.index import HNSW_GRAPH, MAX_GONE, faiss
from indexer.snapshot import MAGIC, list_snapshots, read_snapshot
from indexer.store import PAGE_SIZE

DIM = 16


def _engine(data: Path) -> Engine:
    return Engine(Settings(data_dir=data, embedder=f"hash-{DIM}"))


def _docs(n: int, seed: int = 0, prefix: str = "d") -> list[DocumentIn]:
    rng = np.random.default_rng(seed)
    return [DocumentIn(id=f"{prefix}{i}", vector=rng.normal(size=DIM)) for i in range(n)]


def _hnsw(data: Path, n: int = 600) -> Collection:
    col = _engine(data).create_collection(
        "h", dim=DIM, index="hnsw", metric="cosine", params={"ann_threshold": 100, "M": 8}
    )
    for start in range(0, n, 200):
        col.upsert(_docs(n)[start : start + 200])
    return col


def _ann_answers(col: Collection, queries: np.ndarray) -> list[list[int]]:
    return [r.labels.tolist() for r in col.index.search(queries, 10, ef_search=16)]


def test_the_snapshot_is_the_graph_alone_and_reopens_to_the_same_index(tmp_path: Path) -> None:
    col = _hnsw(tmp_path)
    queries = np.random.default_rng(9).normal(size=(20, DIM)).astype(np.float32)
    before = _ann_answers(col, queries)
    whole = len(faiss.serialize_index(col.index.ann))
    col.snapshot(force=True)
    col.close()
    parsed = read_snapshot(list_snapshots(tmp_path / "h")[0])
    assert parsed is not None
    header, labels, payload = parsed
    assert header["form"] == HNSW_GRAPH and header["codec"] == "zlib"
    assert len(payload) < whole - 600 * DIM * 4  # no vectors in it
    again = _engine(tmp_path).collection("h")
    assert again.snapshot_seq == header["seq"] and again.index.ann_built_n > 0
    assert sorted(labels.tolist()) == sorted(again.id_by_label)
    assert _ann_answers(again, queries) == before  # the same graph over the same vectors
    assert np.array_equal(again.index.ann.reconstruct_batch(labels), again.index.vectors_of(labels))


def _no_background_snapshots(monkeypatch: pytest.MonkeyPatch) -> None:
    """As if the process died before a background snapshot could be published."""
    monkeypatch.setattr(Collection, "_snapshot_due", lambda self: False)


def _reopened_after_deleting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gone: list[str]
) -> Collection:
    """The 600-document collection, snapshotted, then `gone` deleted and the process gone
    before another snapshot (as after kill -9), opened again."""
    col = _hnsw(tmp_path)
    col.snapshot(force=True)
    _no_background_snapshots(monkeypatch)
    col.delete(ids=gone)
    col.store.close()
    return _engine(tmp_path).collection("h")


def test_labels_removed_since_the_snapshot_are_tombstones_never_returned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gone = [f"d{i}" for i in range(int(MAX_GONE * 600))]  # just within the limit
    again = _reopened_after_deleting(tmp_path, monkeypatch, gone)
    assert len(again.index.tombstones) == len(gone) and again.snapshot_seq < again.seq
    assert again.index.ann_built_n == 200  # the snapshot's graph, not a rebuild
    vectors = np.stack([d.vector for d in _docs(600)])
    found = {
        again.id_by_label[int(lab)] for r in again.index.search(vectors, 5) for lab in r.labels
    }
    assert found and not found & set(gone)
    # each stand-in vector is a live neighbour's (the graph stays navigable), never zeros
    stand_ins = again.index.ann.reconstruct_batch(np.fromiter(again.index.tombstones, np.int64))
    assert np.all(np.linalg.norm(stand_ins, axis=1) > 0.99)


def test_a_graph_with_too_many_vectors_gone_is_rebuilt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gone = [f"d{i}" for i in range(int(MAX_GONE * 600) + 10)]
    again = _reopened_after_deleting(tmp_path, monkeypatch, gone)
    assert not again.index.tombstones and again.index.ann_built_n == len(again.id_by_label)
    assert again.snapshot_seq == again.seq  # rebuilt and published


def test_a_snapshot_of_the_older_form_with_vectors_still_loads(tmp_path: Path) -> None:
    col = _hnsw(tmp_path)
    queries = np.random.default_rng(3).normal(size=(20, DIM)).astype(np.float32)
    before = _ann_answers(col, queries)
    labels = np.fromiter(sorted(col.index.ann_labels), dtype=np.int64)
    payload = faiss.serialize_index(col.index.ann).tobytes()
    for old in list_snapshots(col.path):
        old.unlink()
    col.store.write_snapshot(col.seq, col.index.ann_built_n, labels, payload, col.spec())
    col.close()
    header = read_snapshot(list_snapshots(tmp_path / "h")[0])
    assert header is not None and "form" not in header[0] and "codec" not in header[0]
    engine = _engine(tmp_path)
    again = engine.collection("h")
    assert again.snapshot_seq == col.seq and again.index.ann_built_n == 200
    assert _ann_answers(again, queries) == before
    engine.close()  # unchanged, but its snapshot is rewritten in the new form, same seq
    newest = read_snapshot(list_snapshots(tmp_path / "h")[0])
    assert newest is not None and newest[0]["form"] == HNSW_GRAPH
    assert newest[0]["seq"] == col.seq
    third = _engine(tmp_path).collection("h")
    assert _ann_answers(third, queries) == before


def test_a_deflated_body_that_inflates_to_another_size_is_refused(tmp_path: Path) -> None:
    col = _hnsw(tmp_path)
    path = col.snapshot(force=True)
    assert path is not None and read_snapshot(path) is not None
    data = path.read_bytes()
    start = len(MAGIC) + 4
    (hlen,) = struct.unpack("<I", data[len(MAGIC) : start])
    header = json.loads(data[start : start + hlen])
    for size in (header["body_bytes"] - 1, header["body_bytes"] + 1, 0):
        # without its own checksum (optional, as in older files), only the size can catch it
        wrong = {k: v for k, v in header.items() if k != "header_sha256"} | {"body_bytes": size}
        head = json.dumps(wrong).encode()
        path.write_bytes(MAGIC + struct.pack("<I", len(head)) + head + data[start + hlen :])
        assert read_snapshot(path) is None, size


def test_new_stores_use_large_pages_and_keep_the_wal_small(tmp_path: Path) -> None:
    col = _engine(tmp_path).create_collection("f", dim=384, index="flat")
    rng = np.random.default_rng(0)
    for batch in range(12):  # ~20 MB of rows through the WAL
        col.upsert(
            [DocumentIn(id=f"b{batch}-{i}", vector=rng.normal(size=384)) for i in range(1000)]
        )
    wal = col.store.db_path.with_name("store.sqlite-wal")
    assert wal.stat().st_size <= 8 << 20
    conn = sqlite3.connect(col.store.db_path)
    assert conn.execute("PRAGMA page_size").fetchone()[0] == PAGE_SIZE
    conn.close()
    per_row = col.store.db_path.stat().st_size / 12_000
    assert per_row < 1.1 * (384 * 4 + 100)


def test_snapshots_are_published_in_the_background_as_vectors_are_added(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    col = engine.create_collection(
        "h", dim=DIM, index="hnsw", metric="cosine", params={"ann_threshold": 100, "M": 8}
    )
    col.SNAPSHOT_ADDS = 300  # type: ignore[misc]
    docs = _docs(2000)
    for start in range(0, 2000, 100):
        col.upsert(docs[start : start + 100])
        col.wait_for_snapshot()
    published = [read_snapshot(f) for f in list_snapshots(col.path)]
    assert all(p is not None for p in published)
    seqs = [p[0]["seq"] for p in published if p is not None]
    assert col.snapshot_seq == max(seqs) and col.seq - col.snapshot_seq <= 4  # 300-400 behind
    assert col.keyword_snapshot_seq > 1  # the keyword index too, when it lagged by half
    col.store.close()  # as after kill -9: no snapshot at close
    again = _engine(tmp_path).collection("h")
    assert again.snapshot_seq == max(seqs) and again.index.ann_built_n == 100
    assert len(again.index.ann_labels) == 2000 and not again.index.tombstones
    vectors = np.stack([d.vector for d in docs])
    firsts = [again.id_by_label[int(r.labels[0])] for r in again.index.search(vectors, 1)]
    assert np.mean([f == d.id for f, d in zip(firsts, docs, strict=True)]) > 0.99


def test_many_removals_publish_a_snapshot_so_a_crash_costs_no_rebuild(tmp_path: Path) -> None:
    col = _hnsw(tmp_path)
    col.snapshot(force=True)
    col.delete(ids=[f"d{i}" for i in range(int(MAX_GONE * 600))])  # more than MAX_GONE / 2
    col.wait_for_snapshot()
    assert col.snapshot_seq == col.seq
    col.store.close()
    again = _engine(tmp_path).collection("h")
    assert again.snapshot_seq == col.seq and again.index.ann_built_n == 200  # no rebuild


def test_tombstones_published_with_the_graph_keep_their_vectors(tmp_path: Path) -> None:
    col = _hnsw(tmp_path)
    gone = [f"d{i}" for i in range(120)]  # 20%: tombstones, below the rebuild at 25%
    col.delete(ids=gone)
    assert len(col.index.tombstones) == 120
    dead = np.fromiter(sorted(col.index.tombstones), dtype=np.int64)
    vectors = col.index.ann.reconstruct_batch(dead)
    col.snapshot(force=True)
    col.store.close()
    again = _engine(tmp_path).collection("h")
    assert again.snapshot_seq == col.seq and again.index.ann_built_n == 200  # no rebuild
    assert again.index.tombstones == set(dead.tolist())
    assert np.array_equal(again.index.ann.reconstruct_batch(dead), vectors)
