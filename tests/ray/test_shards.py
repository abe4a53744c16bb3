"""A sharded collection searches like one collection: per-shard top-k merged equals brute force
over the union, for similarity, filters, thresholds and analogy. No Ray needed."""

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from indexer import Engine, Query, Settings
from indexer.analogy import analogy
from indexer.collection import DocumentIn
from indexer.errors import InvalidInput
from indexer.shards import ShardedCollection, shard_names, shard_of, write_shards_file

N_SHARDS = 3


def texts(n: int) -> list[DocumentIn]:
    words = ["red", "green", "blue", "king", "queen", "man", "woman", "apple", "pear"]
    rng = np.random.default_rng(0)
    return [
        DocumentIn(f"d{i}", " ".join(rng.choice(words, 4)), metadata={"t": i % 3}) for i in range(n)
    ]


def make_sharded(data_dir: Path, name: str, docs: list[DocumentIn], n: int) -> None:
    """What indexer/ray_jobs.py writes, made here without Ray."""
    inner = Engine(Settings(data_dir=data_dir / name, embedder="hash-384"))
    for i, shard in enumerate(shard_names(n)):
        col = inner.create_collection(shard)
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
        key = lambda hs: sorted(h.id for h in hs if round(h.score, 5) != last)  # noqa: E731
        assert key(merged) == key(whole)


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
