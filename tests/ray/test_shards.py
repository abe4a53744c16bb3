"""A sharded collection searches like one collection: per-shard top-k merged equals brute force
over the union, for similarity, filters, thresholds and analogy; keyword search merges the
shards' BM25 lists; hybrid search fuses the merged sides once; MMR and grouping by document run
after the merge. No Ray needed."""

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from indexer import Engine, Query, Settings
from indexer import rank as fuse
from indexer.analogy import analogy
from indexer.collection import Collection, DocumentIn, Hit
from indexer.errors import CollectionNotFound, InvalidInput
from indexer.shards import ShardedCollection, shard_names, shard_of, write_shards_file

N_SHARDS = 3


def texts(n: int) -> list[DocumentIn]:
    words = ["red", "green", "blue", "king", "queen", "man", "woman", "apple", "pear"]
    rng = np.random.default_rng(0)
    return [
        DocumentIn(f"d{i}", " ".join(rng.choice(words, 4)), metadata={"t": i % 3}) for i in range(n)
    ]


def make_sharded(
    data_dir: Path, name: str, docs: list[DocumentIn], n: int, chunking: bool = False
) -> None:
    """What indexer/ray_jobs.py writes, made here without Ray."""
    inner = Engine(Settings(data_dir=data_dir / name, embedder="hash-384"))
    for i, shard in enumerate(shard_names(n)):
        col = inner.create_collection(shard, chunking={"max_tokens": 16} if chunking else None)
        col.upsert([d for d in docs if shard_of(d.id, n) == i])
    inner.close()
    write_shards_file(data_dir / name, {"name": name, "shards": shard_names(n)})


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    docs = texts(300)
    eng = Engine(Settings(data_dir=tmp_path / "data", embedder="hash-384"))
    eng.create_collection("whole").upsert(docs)
    make_sharded(tmp_path / "data", "parts", docs, N_SHARDS)
    yield eng
    eng.close()


def test_the_engine_opens_and_lists_a_sharded_collection(engine: Engine) -> None:
    col = engine.collection("parts")
    assert isinstance(col, ShardedCollection)
    assert col.count() == 300 and all(s.count() > 50 for s in col.shards)
    names = {c["name"]: c for c in engine.list_collections()}
    assert names["parts"]["count"] == 300 and names["parts"]["ann"]["shards"] == N_SHARDS
    assert col.get("d7").text == engine.collection("whole").get("d7").text


@pytest.mark.parametrize(
    "q",
    [
        Query(text="king queen river", k=10),
        Query(text="apple pear", k=50, filter={"t": 1}),
        Query(text="red cloud", k=300),
        Query(text="stone man", k=20, score_threshold=0.2),
    ],
)
def test_merged_top_k_equals_one_collection_over_the_union(engine: Engine, q: Query) -> None:
    (merged,) = engine.collection("parts").search_batch([q])
    (whole,) = engine.collection("whole").search_batch([q])
    assert [h.score for h in merged] == pytest.approx([h.score for h in whole], abs=1e-6)
    # ids agree up to ties: above the k-th score the sets are the same
    if whole:
        last = round(whole[-1].score, 5)
        assert above(merged, last) == above(whole, last)


def above(hits: list[Hit], last: float) -> list[str]:
    return sorted(h.id for h in hits if round(h.score, 5) != last)


def test_merged_top_k_equals_numpy_brute_force(engine: Engine) -> None:
    col = engine.collection("parts")
    _, unit = col.unit_vectors()
    q = col.query_vectors([Query(text="green woman")])[0]
    cos = unit @ (q / np.linalg.norm(q))
    best = np.sort(cos)[::-1][:10]
    hits = col.search(Query(text="green woman", k=10))
    assert [h.score for h in hits] == pytest.approx(best.tolist(), abs=1e-5)


def test_analogy_across_shards_equals_one_collection(engine: Engine) -> None:
    a = analogy(engine.collection("parts"), ["king", "woman"], ["man"], k=10)
    b = analogy(engine.collection("whole"), ["king", "woman"], ["man"], k=10)
    assert [h.score for h in a.hits] == pytest.approx([h.score for h in b.hits], abs=1e-5)
    d = analogy(engine.collection("parts"), ["d3"], [], k=5)  # a document id as a term
    assert d.terms[0]["source"] == "document" and "d3" not in [h.id for h in d.hits]


def test_writes_to_a_sharded_collection_are_refused_with_a_reason(engine: Engine) -> None:
    with pytest.raises(InvalidInput, match="index build --ray"):
        engine.collection("parts").upsert([DocumentIn("x", "text")])


# ---- keyword, hybrid, MMR, grouping --------------------------------------------------------------
VOCAB = [f"w{j}" for j in range(40)] + ["king", "queen", "apple", "pear", "river", "stone"]


def varied(n: int, seed: int = 1) -> list[DocumentIn]:
    """Documents of 4 to 30 words from a 46-word vocabulary: few ties in BM25 or cosine."""
    rng = np.random.default_rng(seed)
    return [
        DocumentIn(
            f"v{i}", " ".join(rng.choice(VOCAB, int(rng.integers(4, 31)))), metadata={"t": i % 3}
        )
        for i in range(n)
    ]


@pytest.fixture
def mixed(tmp_path: Path) -> Iterator[Engine]:
    docs = varied(400)
    eng = Engine(Settings(data_dir=tmp_path / "data", embedder="hash-384"))
    eng.create_collection("whole").upsert(docs)
    make_sharded(tmp_path / "data", "parts", docs, N_SHARDS)
    yield eng
    eng.close()


def merged_side(col: ShardedCollection, q: Query, depth: int) -> list[tuple[int, float, str]]:
    """The reference for one side: every shard's own top `depth` (searched alone, in q.mode),
    concatenated in shard order and sorted by score (stable), cut to `depth`. Entries are
    (global label, score, id), the global label being shard label * n + shard."""
    n, better = len(col.shards), q.mode == "keyword" or col.metric != "l2"
    rows = []
    for s, shard in enumerate(col.shards):
        for h in shard.search(replace(q, k=depth)):
            rows.append((shard.label_by_id[h.id] * n + s, h.score, h.id))
    rows.sort(key=lambda r: -r[1] if better else r[1])  # stable: ties keep shard order
    return rows[:depth]


def ids_scores(hits: list[Hit]) -> tuple[list[str], list[float]]:
    return [h.id for h in hits], [h.score for h in hits]


@pytest.mark.parametrize("where", [None, {"t": 1}])
def test_keyword_search_merges_the_shards_bm25_lists(
    mixed: Engine, where: dict[str, Any] | None
) -> None:
    col = mixed.collection("parts")
    assert isinstance(col, ShardedCollection)
    q = Query(text="king river w7", k=25, mode="keyword", filter=where)
    want = merged_side(col, q, 25)
    got = col.search(q)
    assert [h.id for h in got] == [r[2] for r in want]
    assert [h.score for h in got] == pytest.approx([r[1] for r in want])
    if where is not None:
        assert {h.metadata["t"] for h in got} == {1}
    # BM25's IDF is each shard's: close to one collection's ranking, not equal to it
    whole = {h.id for h in mixed.collection("whole").search(q)}
    assert len(whole & {h.id for h in got}) >= 15


@pytest.mark.parametrize("fusion", ["rrf", "convex"])
@pytest.mark.parametrize("where", [None, {"t": {"$in": [0, 2]}}])
def test_hybrid_search_fuses_the_merged_sides_once(
    mixed: Engine, fusion: str, where: dict[str, Any] | None
) -> None:
    col = mixed.collection("parts")
    assert isinstance(col, ShardedCollection)
    text, k, depth = "queen apple w3 w12", 15, 100  # depth: retrieve.HYBRID_DEPTH
    q = Query(text=text, k=k, mode="hybrid", fusion=fusion, filter=where)
    by_vector = merged_side(col, Query(text=text, filter=where), depth)
    by_keyword = merged_side(col, replace(q, mode="keyword"), depth)
    if fusion == "rrf":
        fused = fuse.rrf([[r[0] for r in by_vector], [r[0] for r in by_keyword]], k=60)
    else:
        sides = [
            (np.array([r[0] for r in side]), np.array([r[1] for r in side], np.float32))
            for side in (by_vector, by_keyword)
        ]
        fused = fuse.convex(sides, alpha=0.5, higher_is_better=[True, True])
    id_of = {r[0]: r[2] for r in by_vector + by_keyword}
    got = col.search(q)
    assert [h.id for h in got] == [id_of[lab] for lab, _ in fused[:k]]
    assert [h.score for h in got] == pytest.approx([s for _, s in fused[:k]])
    # each hit carries its global rank on either side, as one collection's hybrid hits do
    v_rank = {r[2]: i + 1 for i, r in enumerate(by_vector)}
    for h in got:
        assert h.extra.get("vector_rank") == v_rank.get(h.id)
    # the vector side is the exact merge: the same as one collection's
    assert [h.score for h in col.search(Query(text=text, k=depth, filter=where))] == pytest.approx(
        [
            h.score
            for h in mixed.collection("whole").search(Query(text=text, k=depth, filter=where))
        ],
        abs=1e-6,
    )


@pytest.mark.parametrize("mode", ["vector", "keyword", "hybrid"])
def test_diversity_zero_keeps_the_plain_ranking(mixed: Engine, mode: str) -> None:
    col = mixed.collection("parts")
    plain = Query(text="pear stone w20", k=12, mode=mode, filter={"t": {"$ne": 2}})
    assert ids_scores(col.search(replace(plain, diversity=0.0))) == ids_scores(col.search(plain))


def test_mmr_over_shards_equals_mmr_over_one_collection(mixed: Engine) -> None:
    q = Query(text="king queen w5", k=10, diversity=0.6, candidates=60)
    got = mixed.collection("parts").search(q)
    want = mixed.collection("whole").search(q)
    assert ids_scores(got)[0] == ids_scores(want)[0]
    assert ids_scores(got)[1] == pytest.approx(ids_scores(want)[1], abs=1e-6)
    assert ids_scores(got) != ids_scores(
        mixed.collection("parts").search(replace(q, diversity=None))
    )


def test_group_by_document_over_shards_equals_one_chunked_collection(tmp_path: Path) -> None:
    docs = varied(60, seed=2)  # up to 30 words: several 16-token passages each
    eng = Engine(Settings(data_dir=tmp_path / "data", embedder="hash-384"))
    eng.create_collection("whole", chunking={"max_tokens": 16}).upsert(docs)
    make_sharded(tmp_path / "data", "parts", docs, N_SHARDS, chunking=True)
    parts, whole = eng.collection("parts"), eng.collection("whole")
    assert isinstance(parts, ShardedCollection)
    for shard in parts.shards:  # a document's passages all live on its shard
        assert all(
            shard_of(doc, N_SHARDS) == parts.shards.index(shard) for doc in shard.passages_of
        )
    for mode in ("vector", "keyword"):
        q = Query(text="river w9 w31", k=8, mode=mode, group_by_document=True)
        got = parts.search(q)
        assert len({h.id for h in got}) == len(got) == 8
        assert all("#" not in h.id for h in got)  # documents, not passages
        assert sum("passage" in h.extra for h in got) >= 4
        if mode == "vector":  # exact merge: the same documents as one collection
            assert ids_scores(got)[1] == pytest.approx(ids_scores(whole.search(q))[1], abs=1e-6)
            assert [h.extra["passages_matched"] for h in got] == [
                h.extra["passages_matched"] for h in whole.search(q)
            ]
    assert parts.get("v3").text == whole.get("v3").text  # a chunked document, rebuilt on its shard
    eng.close()


def test_errors_name_the_field_as_one_collection_does(engine: Engine) -> None:
    col: Collection = engine.collection("parts")
    with pytest.raises(InvalidInput) as e:
        col.search_batch([Query(text="a"), Query(text="b", mode="keyword", vector=[0.0] * 384)])
    assert e.value.field == "searches[1].vector"
    for bad in (Query(text="a", filter={"t": {"$near": 1}}), Query(text="a", k=0)):
        with pytest.raises(InvalidInput) as e:
            col.search(bad)
        with pytest.raises(InvalidInput) as want:
            engine.collection("whole").search(bad)
        assert (e.value.field, e.value.detail) == (want.value.field, want.value.detail)


def test_dropping_a_sharded_collection_drops_every_shard(engine: Engine, tmp_path: Path) -> None:
    col = engine.collection("parts")
    shard_paths = [s.path for s in col.shards]
    engine.drop_collection("parts")
    assert not (tmp_path / "data" / "parts").exists()
    assert not any(p.exists() for p in shard_paths)
    assert "parts" not in {c["name"] for c in engine.list_collections()}
    with pytest.raises(CollectionNotFound):
        engine.collection("parts")
    assert engine.collection("whole").count() == 300  # the others stay
