"""Collections: upsert, delete, filters, persistence across processes, refusal of mismatches."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from indexer import DocumentIn, Engine, Query, Settings
from indexer.errors import (
    CollectionExists,
    CollectionNotFound,
    DimensionMismatch,
    DocumentNotFound,
    EmbedderMismatch,
    InvalidFilter,
    InvalidInput,
)
from indexer.filters import compile_filter

TEXTS = [
    "the cat sat on the mat",
    "dogs bark at the mailman",
    "a cat chased a mouse",
    "stock markets fell sharply",
    "the central bank raised rates",
    "kittens sleep all day",
]


def seeded_docs(n: int, dim: int = 16, seed: int = 0) -> list[DocumentIn]:
    rng = np.random.default_rng(seed)
    sources = ["news", "blog", "paper"]
    return [
        DocumentIn(
            id=f"d{i}",
            vector=rng.normal(size=dim).astype(np.float32),
            metadata={"source": sources[i % 3], "year": 2000 + i % 25, "tags": [f"t{i % 4}"]},
        )
        for i in range(n)
    ]


def test_text_search_finds_the_matching_document(engine: Engine) -> None:
    col = engine.create_collection("docs")
    col.upsert([DocumentIn(id=str(i), text=t) for i, t in enumerate(TEXTS)])
    hits = col.search(Query(text="where the cat sat: on the mat", k=3))
    assert hits[0].id == "0" and hits[0].text == TEXTS[0]
    assert hits[0].score > hits[1].score >= hits[2].score


def test_upsert_replaces_by_id_and_keeps_one_copy(engine: Engine) -> None:
    col = engine.create_collection("docs")
    col.upsert([DocumentIn(id="a", text="the cat sat on the mat", metadata={"v": 1})])
    col.upsert([DocumentIn(id="a", text="stock markets fell", metadata={"v": 2})])
    assert col.count() == 1
    assert col.get("a").metadata == {"v": 2}
    hits = col.search(Query(text="stock markets fell", k=5))
    assert [h.id for h in hits] == ["a"] and hits[0].score == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf", "ivfpq", "sq8"])
def test_deleted_ids_never_return(engine: Engine, kind: str) -> None:
    col = engine.create_collection("c", index=kind, dim=16, params={"ann_threshold": 200})
    docs = seeded_docs(600)
    col.upsert(docs)
    assert col.describe()["ann"]["built"] == (kind != "flat")
    gone = {f"d{i}" for i in range(0, 600, 3)}
    assert set(col.delete(ids=[*sorted(gone), "never-existed"])) == gone
    for d in docs[:60]:
        for exact in (False, True):
            hits = col.search(Query(vector=d.vector, k=20, exact=exact))
            assert not gone & {h.id for h in hits}
            assert len(hits) == 20
    assert col.count() == 400


def test_filter_results_equal_brute_force_over_the_subset(engine: Engine) -> None:
    col = engine.create_collection("c", index="hnsw", dim=16, params={"ann_threshold": 100})
    docs = seeded_docs(3000)
    col.upsert(docs)
    filters = [
        {"source": "news"},
        {"year": {"$gte": 2020}},
        {"$or": [{"source": "blog"}, {"year": {"$lt": 2003}}]},
        {"$and": [{"source": {"$in": ["news", "paper"]}}, {"year": {"$ne": 2010}}]},
        {"tags": "t1", "year": {"$gt": 2022}},  # selective: exact fallback
        {"source": {"$nin": ["news", "blog"]}},
    ]
    X = np.stack([d.vector for d in docs])
    X = X / np.linalg.norm(X, axis=1, keepdims=True)
    for f in filters:
        pred = compile_filter(f)
        subset = [i for i, d in enumerate(docs) if pred(d.metadata or {})]
        for qi in (1, 17, 999):
            q = X[qi]
            order = sorted(subset, key=lambda i: -float(X[i] @ q))[:10]
            hits = col.search(Query(vector=docs[qi].vector, k=10, filter=f))
            assert all(pred(h.metadata) for h in hits)
            assert len(hits) == min(10, len(subset)), f"filter {f} returned too few hits"
            assert len({h.id for h in hits} & {f"d{i}" for i in order}) >= 9


def test_unknown_filter_operator_is_an_error(engine: Engine) -> None:
    col = engine.create_collection("c", dim=16)
    col.upsert(seeded_docs(10))
    for bad in ({"year": {"$regex": "x"}}, {"$not": {}}, {"year": {}}, {"$and": {}}):
        with pytest.raises(InvalidFilter):
            col.search(Query(vector=np.ones(16), filter=bad))


def test_score_threshold_respects_metric_direction(engine: Engine) -> None:
    for metric in ("cosine", "l2"):
        col = engine.create_collection(f"c-{metric}", metric=metric, dim=16)
        docs = seeded_docs(100)
        col.upsert(docs)
        all_hits = col.search(Query(vector=docs[0].vector, k=100))
        t = all_hits[10].score
        hits = col.search(Query(vector=docs[0].vector, k=100, score_threshold=t))
        if metric == "l2":
            assert all(h.score <= t for h in hits) and all_hits[0].score == pytest.approx(
                0, abs=1e-5
            )
        else:
            assert all(h.score >= t for h in hits)
        assert len(hits) >= 11


def test_bad_input_changes_nothing(engine: Engine) -> None:
    col = engine.create_collection("c", dim=4)
    col.upsert([DocumentIn(id="a", vector=[1, 0, 0, 0])])
    bad_batches = [
        ([DocumentIn(id="b", vector=[1, 0, 0])], DimensionMismatch, "documents[0].vector"),
        (
            [DocumentIn(id="b", vector=[1, 0, 0, 0]), DocumentIn(id="c", vector=[np.nan, 0, 0, 0])],
            InvalidInput,
            "documents[1].vector",
        ),
        ([DocumentIn(id="b", vector=[0, 0, 0, 0])], InvalidInput, "documents[0].vector"),
        ([DocumentIn(id="", vector=[1, 0, 0, 0])], InvalidInput, "documents[0].id"),
        (
            [DocumentIn(id="b", vector=[1, 0, 0, 0]), DocumentIn(id="b", vector=[0, 1, 0, 0])],
            InvalidInput,
            "documents[1].id",
        ),
        ([DocumentIn(id="b", text="needs an embedder")], InvalidInput, "documents[0].vector"),
        ([DocumentIn(id="b")], InvalidInput, "documents[0]"),
    ]
    for batch, err, field in bad_batches:
        with pytest.raises(err) as info:
            col.upsert(batch)
        assert info.value.field == field
    assert col.count() == 1 and col.describe()["seq"] == 1


def test_collection_errors(engine: Engine) -> None:
    engine.create_collection("c")
    with pytest.raises(CollectionExists):
        engine.create_collection("c")
    with pytest.raises(CollectionNotFound):
        engine.collection("nope")
    with pytest.raises(DocumentNotFound):
        engine.collection("c").get("nope")
    with pytest.raises(InvalidInput):
        engine.create_collection("../escape")
    with pytest.raises(InvalidInput):
        engine.create_collection("x", metric="hamming")
    with pytest.raises(InvalidInput):
        engine.create_collection("x", index="hnsw", params={"M": "big"})
    engine.drop_collection("c")
    assert engine.list_collections() == []


def test_refuses_an_embedder_that_does_not_match(tmp_path: Path) -> None:
    Engine(Settings(data_dir=tmp_path, embedder="hash-384")).create_collection("c")
    other = Engine(Settings(data_dir=tmp_path, embedder="hash-128"))
    with pytest.raises(EmbedderMismatch):
        other.collection("c", embedder="hash-128")
    with pytest.raises(EmbedderMismatch):
        other.create_collection("c", exist_ok=True)
    # a manifest edited to a dim the embedder does not produce refuses to open
    manifest = tmp_path / "c" / "manifest.json"
    m = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**m, "dim": 128}))
    with pytest.raises(EmbedderMismatch):
        Engine(Settings(data_dir=tmp_path, embedder="hash-384")).collection("c")


REOPEN = """
import json, sys
from indexer import Engine, Settings, Query
col = Engine(Settings(data_dir=sys.argv[1], embedder="hash-384")).collection("c")
out = {}
for qid in ["d1", "d2", "d50"]:
    v = col.get(qid).vector
    out[qid] = [(h.id, round(h.score, 5)) for h in col.search(Query(vector=v, k=5))]
out["count"] = col.count()
out["ann"] = col.describe()["ann"]
print(json.dumps(out))
"""


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivfpq"])
def test_round_trip_in_a_new_process(tmp_path: Path, kind: str) -> None:
    engine = Engine(Settings(data_dir=tmp_path, embedder="hash-384"))
    col = engine.create_collection("c", index=kind, dim=16, params={"ann_threshold": 300})
    col.upsert(seeded_docs(1000))
    col.delete(ids=[f"d{i}" for i in range(3, 1000, 7)])
    expected = {}
    for qid in ["d1", "d2", "d50"]:
        v = col.get(qid).vector
        expected[qid] = [[h.id, round(h.score, 5)] for h in col.search(Query(vector=v, k=5))]
    engine.close()
    run = subprocess.run(
        [sys.executable, "-c", REOPEN, str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    got = json.loads(run.stdout)
    assert got["count"] == 1000 - len(range(3, 1000, 7))
    for qid, hits in expected.items():
        assert got[qid] == hits
        assert not any(int(h[0][1:]) % 7 == 3 for h in got[qid])
    if kind != "flat":  # the published snapshot was adopted, not rebuilt
        assert got["ann"]["built"]
        assert list((tmp_path / "c" / "snapshots").glob("ann-*.bin"))


def test_writes_from_another_process_become_visible(tmp_path: Path) -> None:
    engine = Engine(Settings(data_dir=tmp_path, embedder="hash-384"))
    col = engine.create_collection("c")
    col.upsert([DocumentIn(id="a", text="the cat sat on the mat")])
    script = (
        "import sys; from indexer import Engine, Settings, DocumentIn\n"
        "c = Engine(Settings(data_dir=sys.argv[1], embedder='hash-384')).collection('c')\n"
        "c.upsert([DocumentIn(id='b', text='stock markets fell sharply')])\n"
        "c.delete(ids=['a'])\n"
    )
    subprocess.run([sys.executable, "-c", script, str(tmp_path)], check=True, timeout=120)
    hits = col.search(Query(text="stock markets fell sharply", k=5))
    assert [h.id for h in hits] == ["b"]
    assert col.count() == 1


def test_damaged_snapshot_is_skipped_not_served(tmp_path: Path) -> None:
    engine = Engine(Settings(data_dir=tmp_path, embedder="hash-384"))
    col = engine.create_collection("c", index="hnsw", dim=16, params={"ann_threshold": 100})
    docs = seeded_docs(500)
    col.upsert(docs)
    engine.close()
    for snap in (tmp_path / "c" / "snapshots").glob("ann-*.bin"):
        data = bytearray(snap.read_bytes())
        data[len(data) // 2] ^= 0xFF
        snap.write_bytes(bytes(data))
    col = Engine(Settings(data_dir=tmp_path, embedder="hash-384")).collection("c")
    assert col.describe()["ann"]["built"] and col.count() == 500
    assert col.search(Query(vector=docs[7].vector, k=1))[0].id == "d7"


def test_hnsw_tombstones_trigger_a_rebuild(engine: Engine) -> None:
    col = engine.create_collection("c", index="hnsw", dim=16, params={"ann_threshold": 100})
    docs = seeded_docs(800)
    col.upsert(docs)
    col.delete(ids=[d.id for d in docs[:150]])
    assert col.describe()["ann"]["tombstones"] == 150
    col.delete(ids=[d.id for d in docs[150:300]])  # > 25% dead: rebuilt without them
    state = col.describe()["ann"]
    assert state["tombstones"] == 0 and state["ann_vectors"] == 500


WRITER = """
import sys
import numpy as np
from indexer import DocumentIn, Engine, Settings
col = Engine(Settings(data_dir=sys.argv[1], embedder="hash-384")).collection("c")
rng = np.random.default_rng(int(sys.argv[2]))
for batch in range(20):
    col.upsert([DocumentIn(id=f"{sys.argv[2]}-{batch}-{i}", vector=rng.normal(size=16))
                for i in range(25)])
print("done")
"""


def test_two_writer_processes_never_corrupt_a_collection(tmp_path: Path) -> None:
    engine = Engine(Settings(data_dir=tmp_path, embedder="hash-384"))
    col = engine.create_collection("c", dim=16, index="hnsw", params={"ann_threshold": 200})
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(tmp_path), str(seed)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for seed in (1, 2)
    ]
    for p in procs:
        out, _ = p.communicate(timeout=180)
        assert p.returncode == 0 and out.strip() == "done"
    assert col.count() == 2 * 20 * 25
    state = col.describe()
    assert state["ann"]["built"] and state["ann"]["ann_vectors"] == 1000
    for doc_id in ("1-0-0", "2-19-24", "1-7-3"):
        v = col.get(doc_id).vector
        assert col.search(Query(vector=v, k=1))[0].id == doc_id
