"""The upsert path's shortcuts change nothing: a collection applies its own writes as reading
them back would, vectors are checked in one pass with the same errors as one by one, and a large
batch's HNSW insert uses more OpenMP threads only for itself."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from indexer import DocumentIn, Engine, Settings
from indexer.collection import Collection
from indexer.errors import DimensionMismatch, InvalidInput
from indexer.index import PARALLEL_ADD, faiss

DIM = 8


def _engine(data: Path) -> Engine:
    return Engine(Settings(data_dir=data, embedder=f"hash-{DIM}"))


def _state(col: Collection) -> tuple[object, ...]:
    labels = col.index.labels()
    order = np.argsort(labels)
    return (
        col.seq,
        dict(col.id_by_label),
        {lab: m for lab, m in col.meta_by_label.items()},
        labels[order].tolist(),
        col.index.vectors()[order].tobytes(),
        sorted(col.index.ann_labels - col.index.tombstones),
    )


def test_own_writes_apply_as_reading_them_back_would(tmp_path: Path) -> None:
    col = _engine(tmp_path).create_collection(
        "c", dim=DIM, index="hnsw", params={"ann_threshold": 50}
    )
    rng = np.random.default_rng(0)
    for batch in range(4):
        docs = [
            DocumentIn(
                id=f"d{(batch * 30 + i) % 70}",  # later batches replace earlier ids
                text=f"text {batch} {i}",
                vector=rng.normal(size=DIM),
                metadata={"batch": batch, "tags": ["a", str(i)]} if i % 3 else None,
            )
            for i in range(40)
        ]
        col.upsert(docs)
    col.delete(ids=["d1", "d2"])
    again = _engine(tmp_path).collection("c")  # everything read from the store
    assert _state(col) == _state(again)
    assert col.meta_by_label[col.label_by_id["d22"]] == {"batch": 3, "tags": ["a", "2"]}


def test_vectors_checked_together_fail_like_one_by_one(tmp_path: Path) -> None:
    col = _engine(tmp_path).create_collection("c", metric="cosine")
    good = [DocumentIn(id=f"g{i}", vector=np.ones(DIM)) for i in range(6)]
    cases: list[tuple[list[DocumentIn], type[Exception], str]] = [
        ([*good[:2], DocumentIn(id="x", vector=[float("nan")] * DIM)], InvalidInput, "[2]"),
        ([*good[:3], DocumentIn(id="x", vector=[1.0] * (DIM + 1))], DimensionMismatch, "[3]"),
        ([*good[:1], DocumentIn(id="x", vector=[0.0] * DIM)], InvalidInput, "[1]"),
        ([*good[:1], DocumentIn(id="x", vector=[[1.0] * DIM])], InvalidInput, "[1]"),
        ([*good[:1], DocumentIn(id="x", vector=["a"] * DIM)], InvalidInput, "[1]"),
        ([*good[:1], DocumentIn(id="x", vector=[1e39] * DIM)], InvalidInput, "[1]"),
        # the first bad document in order is named, whatever is wrong with it
        (
            [DocumentIn(id="", vector=np.ones(DIM)), DocumentIn(id="y", vector=[1.0])],
            InvalidInput,
            "[0].id",
        ),
    ]
    for docs, error, where in cases:
        with pytest.raises(error) as e:
            col.upsert(docs)
        assert f"documents{where}" in str(e.value.field), (where, e.value.field)
    assert col.count() == 0
    col.upsert([*good, DocumentIn(id="t", text="no vector")])
    got = col.store.get(["g0", "t"])
    assert np.array_equal(got[0].vector, np.ones(DIM, dtype=np.float32)) and col.count() == 7


def test_a_large_batch_restores_the_threads_openmp_count(tmp_path: Path) -> None:
    col = _engine(tmp_path).create_collection(
        "c", dim=DIM, index="hnsw", params={"ann_threshold": 10}
    )
    rng = np.random.default_rng(1)
    col.upsert([DocumentIn(id=f"a{i}", vector=rng.normal(size=DIM)) for i in range(20)])
    before = faiss.omp_get_max_threads()
    col.upsert([DocumentIn(id=f"b{i}", vector=rng.normal(size=DIM)) for i in range(PARALLEL_ADD)])
    assert faiss.omp_get_max_threads() == before
    assert len(col.index.ann_labels) == 20 + PARALLEL_ADD
