"""Hybrid search in a collection: the keyword index follows writes and reopens, modes and fusion
rank as the formulas say, filters apply in every mode, MMR and its candidate pool."""

from __future__ import annotations

from pathlib import Path

import bm25s
import numpy as np
import pytest
import Stemmer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from indexer import DocumentIn, Engine, Query, Settings
from indexer.collection import Collection
from indexer.errors import InvalidInput
from indexer.rank import rrf

WORDS = ["cat", "dog", "mouse", "bank", "river", "money", "stock", "market", "fish", "boat"]
TEXTS = [
    "the cat sat on the mat",
    "dogs bark at the mailman",
    "a cat chased a mouse",
    "stock markets fell sharply",
    "the central bank raised rates",
    "kittens sleep all day",
    "the river bank was muddy",
    "fishing boats on the river",
]


def oracle(texts: dict[str, str], query: str, k: int) -> list[tuple[str, float]]:
    """Plain bm25s over the live texts: what the keyword mode must return."""
    ids = sorted(texts)
    stemmer = Stemmer.Stemmer("english")
    tok = bm25s.tokenize(
        [texts[i] for i in ids], stopwords="en", stemmer=stemmer, show_progress=False
    )
    bm = bm25s.BM25(k1=1.5, b=0.75, method="lucene")
    bm.index(tok, show_progress=False)
    qt = bm25s.tokenize([query], stopwords="en", stemmer=stemmer, show_progress=False)
    words = {i: w for w, i in qt.vocab.items()}
    tokens = [words[i] for i in qt.ids[0] if words[i] in bm.vocab_dict]
    if not tokens:
        return []
    scores = bm.get_scores(tokens)
    ranked = sorted(
        ((ids[j], float(s)) for j, s in enumerate(scores) if s > 0), key=lambda x: -x[1]
    )
    return ranked[:k]


def keyword_hits(col: Collection, query: str, k: int = 10) -> list[tuple[str, float]]:
    return [(h.id, h.score) for h in col.search(Query(text=query, k=k, mode="keyword"))]


def same_ranking(got: list[tuple[str, float]], want: list[tuple[str, float]]) -> None:
    assert [round(s, 4) for _, s in got] == [round(s, 4) for _, s in want]
    # ids may swap only between equal scores
    assert {(i, round(s, 4)) for i, s in got} == {(i, round(s, 4)) for i, s in want}


@pytest.fixture
def col(engine: Engine) -> Collection:
    c = engine.create_collection("docs")
    c.upsert([DocumentIn(id=f"d{i}", text=t, metadata={"i": i}) for i, t in enumerate(TEXTS)])
    return c


def test_keyword_mode_equals_bm25_over_the_live_texts(col: Collection) -> None:
    live = {f"d{i}": t for i, t in enumerate(TEXTS)}
    for q in ("cat", "river bank", "rates of the bank", "kitten"):
        same_ranking(keyword_hits(col, q), oracle(live, q, 10))
    col.delete(ids=["d0"])
    col.upsert([DocumentIn(id="d2", text="a dog chased a cat up a tree")])
    live.pop("d0")
    live["d2"] = "a dog chased a cat up a tree"
    for q in ("cat", "dog tree", "mouse"):
        same_ranking(keyword_hits(col, q), oracle(live, q, 10))
    assert all(h != "d0" for h, _ in keyword_hits(col, "cat mat"))


def test_keyword_index_reopens_from_its_snapshot_and_catches_up(tmp_path: Path) -> None:
    data = tmp_path / "data"
    eng = Engine(Settings(data_dir=data, embedder="hash-64"))
    c = eng.create_collection("docs")
    c.upsert([DocumentIn(id=f"d{i}", text=t) for i, t in enumerate(TEXTS)])
    eng.close()  # publishes the keyword snapshot
    assert list((data / "docs" / "snapshots").glob("keyword-*.bin"))
    # another process writes after the snapshot: the reopened index must include it
    eng = Engine(Settings(data_dir=data, embedder="hash-64"))
    c = eng.collection("docs")
    c.delete(ids=["d3"])
    c.upsert([DocumentIn(id="new", text="a market for fish and boats")])
    eng2 = Engine(Settings(data_dir=data, embedder="hash-64"))
    live = {f"d{i}": t for i, t in enumerate(TEXTS) if i != 3}
    live["new"] = "a market for fish and boats"
    c2 = eng2.collection("docs")
    assert len(c2.keyword or []) == len(live)
    for q in ("market", "fish boats river", "cat"):
        same_ranking(keyword_hits(c2, q), oracle(live, q, 10))
    eng.close()
    eng2.close()


def test_a_damaged_keyword_snapshot_is_rebuilt_from_the_texts(tmp_path: Path) -> None:
    data = tmp_path / "data"
    eng = Engine(Settings(data_dir=data, embedder="hash-64"))
    eng.create_collection("docs").upsert(
        [DocumentIn(id=str(i), text=t) for i, t in enumerate(TEXTS)]
    )
    eng.close()
    (snap,) = (data / "docs" / "snapshots").glob("keyword-*.bin")
    blob = bytearray(snap.read_bytes())
    blob[-10] ^= 0xFF
    snap.write_bytes(bytes(blob))
    eng = Engine(Settings(data_dir=data, embedder="hash-64"))
    live = {str(i): t for i, t in enumerate(TEXTS)}
    same_ranking(keyword_hits(eng.collection("docs"), "river bank"), oracle(live, "river bank", 10))
    eng.close()


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    ops=st.lists(
        st.one_of(
            st.tuples(
                st.just("upsert"),
                st.integers(0, 7),
                st.lists(st.sampled_from(WORDS), min_size=1, max_size=6),
            ),
            st.tuples(st.just("delete"), st.integers(0, 7), st.just([])),
            st.tuples(st.just("reopen"), st.just(0), st.just([])),
        ),
        min_size=1,
        max_size=12,
    ),
    query=st.lists(st.sampled_from(WORDS), min_size=1, max_size=3),
)
def test_keyword_index_matches_a_rebuilt_one_after_any_writes(
    tmp_path_factory: pytest.TempPathFactory, ops: list, query: list[str]
) -> None:
    data = tmp_path_factory.mktemp("kw") / "data"
    eng = Engine(Settings(data_dir=data, embedder="hash-32"))
    c = eng.create_collection("docs")
    live: dict[str, str] = {}
    for op, n, words in ops:
        if op == "upsert":
            live[f"d{n}"] = " ".join(words)
            c.upsert([DocumentIn(id=f"d{n}", text=live[f"d{n}"])])
        elif op == "delete":
            c.delete(ids=[f"d{n}"])
            live.pop(f"d{n}", None)
        else:
            eng.close()
            eng = Engine(Settings(data_dir=data, embedder="hash-32"))
            c = eng.collection("docs")
    q = " ".join(query)
    same_ranking(keyword_hits(c, q), oracle(live, q, 10) if live else [])
    eng.close()


def test_hybrid_rrf_fuses_the_vector_and_keyword_rankings(col: Collection) -> None:
    q = "the cat and the river bank"
    vec = [h.id for h in col.search(Query(text=q, k=100))]
    kw = [h.id for h in col.search(Query(text=q, k=100, mode="keyword"))]
    label = {doc: i for i, doc in enumerate(sorted(set(vec) | set(kw)))}
    want = rrf([[label[d] for d in vec], [label[d] for d in kw]], k=60)
    by_label = {i: d for d, i in label.items()}
    hits = col.search(Query(text=q, k=8, mode="hybrid", fusion="rrf"))
    assert [h.id for h in hits] == [by_label[lab] for lab, _ in want][:8]
    assert [h.score for h in hits] == pytest.approx([s for _, s in want][:8])
    for h in hits:  # each hit shows the numbers it was fused from
        assert h.score == pytest.approx(
            1 / (60 + h.extra.get("vector_rank", 1e9)) + 1 / (60 + h.extra.get("keyword_rank", 1e9))
        )


def test_hybrid_convex_blends_normalised_scores(col: Collection) -> None:
    q = "cat river"
    v = {h.id: h.score for h in col.search(Query(text=q, k=100))}
    k = {h.id: h.score for h in col.search(Query(text=q, k=100, mode="keyword"))}

    def norm(d: dict[str, float]) -> dict[str, float]:  # all equal: no spread, all best
        lo, hi = min(d.values()), max(d.values())
        return {i: (s - lo) / (hi - lo) if hi > lo else 1.0 for i, s in d.items()}

    nv, nk = norm(v), norm(k)
    for alpha in (0.0, 0.3, 1.0):
        hits = col.search(Query(text=q, k=8, mode="hybrid", fusion="convex", alpha=alpha))
        for h in hits:
            want = alpha * nv.get(h.id, 0) + (1 - alpha) * nk.get(h.id, 0)
            assert h.score == pytest.approx(want, abs=1e-6)
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


@pytest.mark.parametrize("mode", ["vector", "keyword", "hybrid"])
def test_filters_apply_in_every_mode(col: Collection, mode: str) -> None:
    hits = col.search(Query(text="cat bank river", k=10, mode=mode, filter={"i": {"$gte": 4}}))
    assert hits and all(h.metadata["i"] >= 4 for h in hits)


def test_mode_errors_name_their_field(engine: Engine, col: Collection) -> None:
    cases = [
        (Query(vector=[0.0] * 383 + [1.0], mode="keyword"), "query"),
        (Query(text="cat", mode="fuzzy"), "mode"),
        (Query(text="cat", mode="hybrid", fusion="max"), "fusion"),
        (Query(text="cat", mode="hybrid", alpha=1.5), "alpha"),
        (Query(text="cat", diversity=-0.1), "diversity"),
        (Query(text="cat", k=10, diversity=0.5, candidates=10), "candidates"),
        (Query(text="cat", rrf_k=0, mode="hybrid"), "rrf_k"),
    ]
    for q, field in cases:
        with pytest.raises(InvalidInput) as e:
            col.search(q)
        assert e.value.field == field
    plain = engine.create_collection("plain", keyword_index=False)
    plain.upsert([DocumentIn(id="a", text="a cat")])
    assert plain.search(Query(text="cat"))[0].id == "a"
    with pytest.raises(InvalidInput) as e:
        plain.search(Query(text="cat", mode="hybrid"))
    assert e.value.field == "mode"
    assert plain.describe()["keyword_index"] is None


def test_mmr_with_diversity_zero_is_plain_search(engine: Engine, col: Collection) -> None:
    for mode in ("keyword", "hybrid"):
        plain = col.search(Query(text="cat bank", k=5, mode=mode))
        mmr = col.search(Query(text="cat bank", k=5, mode=mode, diversity=0.0))
        assert [(h.id, h.score) for h in mmr] == [(h.id, h.score) for h in plain]
    rng = np.random.default_rng(3)
    vec = engine.create_collection("vec", dim=16, metric="l2")
    vec.upsert([DocumentIn(id=str(i), vector=rng.normal(size=16).tolist()) for i in range(300)])
    for _ in range(5):
        q = Query(vector=rng.normal(size=16).tolist(), k=10)
        plain = vec.search(q)
        q.diversity = 0.0
        assert [(h.id, h.score) for h in vec.search(q)] == [(h.id, h.score) for h in plain]


def test_mmr_lowers_the_similarity_among_the_top_ten(engine: Engine) -> None:
    rng = np.random.default_rng(7)
    centres = rng.normal(size=(25, 32))
    docs, vecs = [], []
    for i in range(200):  # 25 tight clusters of 8: plain search's top 10 is mostly one
        v = centres[i % 25] + 0.05 * rng.normal(size=32)
        vecs.append(v / np.linalg.norm(v))
        docs.append(DocumentIn(id=str(i), vector=v.tolist()))
    c = engine.create_collection("clusters", dim=32)
    c.upsert(docs)
    q = (centres[0] + 0.6 * centres[1]).tolist()

    def mean_pairwise(hits: list) -> float:
        X = np.array([vecs[int(h.id)] for h in hits])
        S = X @ X.T
        return float((S.sum() - len(X)) / (len(X) * (len(X) - 1)))

    plain = c.search(Query(vector=q, k=10))
    diverse = c.search(Query(vector=q, k=10, diversity=0.6))
    assert mean_pairwise(diverse) < mean_pairwise(plain) - 0.2
    assert len({h.id for h in diverse}) == 10
    # results carry their relevance: the cosine to the query, as plain search scores it
    all_scores = {h.id: h.score for h in c.search(Query(vector=q, k=200))}
    for h in diverse:
        assert h.score == pytest.approx(all_scores[h.id], abs=1e-6)


def test_search_nowait_never_waits_for_a_writer(col: Collection) -> None:
    q = Query(text="cat", k=3)
    q.vector, q.text = col.embedder.embed(["cat"])[0], None  # type: ignore[union-attr]
    assert [h.id for h in col.search_nowait(q) or []] == [h.id for h in col.search(q)]
    with col.lock.write():  # a writer holds the lock: no wait, no answer
        assert col.search_nowait(q) is None
    col.store.upsert([])  # a write not yet applied (another process's, say)
    assert col.search_nowait(q) is None
    col.sync()
    assert col.search_nowait(q) is not None
