"""KeywordIndex against a plain bm25s index built from scratch over the same live texts."""

import io
import math
from concurrent.futures import ThreadPoolExecutor

import bm25s
import numpy as np
import pytest
import Stemmer
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from indexer.keyword import KeywordIndex

CORPUS = {
    3: "The cat sat on the mat while another cat slept",
    5: "Dogs chase cats around the garden",
    8: "Running shoes for runners who run marathons",
    13: "A café in Zürich serves crème brûlée and naïve coffee",
    21: "東京 タワー at night, rocket launches 🚀 and fireworks",
    34: "Cats, dogs and rabbits: a guide to pets",
    55: "Vector search with BM25 and dense embeddings",
    89: "the and of a",  # only stopwords: indexed with no token, still counts in N and avgdl
}
QUERIES = [
    "cat",
    "dogs cats",
    "run",
    "zürich café",
    "東京",
    "rocket 🚀",
    "vector bm25 search",
    "pets guide cat cat",
    "the of",
    "unknownword",
    "",
]


def oracle(
    live: dict[int, str], query: str, k: int, allowed: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """bm25s as its README uses it, over the live texts in label order, ties to the lower label."""
    labels = np.array(sorted(live), np.int64)
    stemmer = Stemmer.Stemmer("english")
    corpus = bm25s.tokenize(
        [live[int(x)] for x in labels], stopwords="en", stemmer=stemmer, show_progress=False
    )
    if not labels.size or not corpus.vocab:
        return np.empty(0, np.int64), np.empty(0, np.float32)
    bm25 = bm25s.BM25()
    bm25.index(corpus, show_progress=False)
    q = bm25s.tokenize([query], stopwords="en", stemmer=stemmer, show_progress=False)
    mask = None if allowed is None else np.isin(labels, allowed).astype(np.float32)
    docs, scores = bm25.retrieve(q, k=len(labels), weight_mask=mask, show_progress=False)
    docs, scores = docs[0], scores[0].astype(np.float32)
    docs, scores = docs[scores > 0], scores[scores > 0]
    order = np.lexsort((labels[docs], -scores))[:k]
    return labels[docs[order]], scores[order]


def assert_same(got: tuple[np.ndarray, np.ndarray], want: tuple[np.ndarray, np.ndarray]) -> None:
    assert got[0].dtype == np.int64 and got[1].dtype == np.float32
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_allclose(got[1], want[1], rtol=0, atol=1e-5)


def build(live: dict[int, str | None]) -> KeywordIndex:
    index = KeywordIndex()
    index.apply([], list(live), list(live.values()))
    return index


@pytest.mark.parametrize("query", QUERIES)
@pytest.mark.parametrize("k", [1, 3, 100])
def test_ranking_equals_a_fresh_bm25s_index(query: str, k: int) -> None:
    assert_same(build(dict(CORPUS)).search(query, k), oracle(CORPUS, query, k))


def bm25_lucene(tf: int, df: int, N: int, dl: int, avgdl: float) -> float:
    """Lucene BM25 for one term: idf = ln(1 + (N - df + .5)/(df + .5)), k1 = 1.5, b = .75."""
    idf = math.log(1 + (N - df + 0.5) / (df + 0.5))
    return idf * tf / (tf + 1.5 * (1 - 0.75 + 0.75 * dl / avgdl))


def test_score_equals_the_hand_computed_lucene_bm25() -> None:
    # stems: appl, banana, cherri, date, elder, fig; lengths 2, 3, 4 so avgdl = 3
    index = build({0: "apple banana", 1: "apple cherry cherry", 2: "banana date elder fig"})
    labels, scores = index.search("cherry", 5)
    assert labels.tolist() == [1]
    assert scores[0] == pytest.approx(bm25_lucene(tf=2, df=1, N=3, dl=3, avgdl=3), abs=1e-6)
    labels, scores = index.search("apple banana", 5)
    want = {
        0: 2 * bm25_lucene(tf=1, df=2, N=3, dl=2, avgdl=3),
        1: bm25_lucene(tf=1, df=2, N=3, dl=3, avgdl=3),
        2: bm25_lucene(tf=1, df=2, N=3, dl=4, avgdl=3),
    }
    assert labels.tolist() == sorted(want, key=lambda x: -want[x])
    np.testing.assert_allclose(scores, [want[int(x)] for x in labels], atol=1e-6)


def test_allowed_returns_the_top_k_among_allowed_even_when_ranked_low() -> None:
    live = {i: "cat " * (20 - i) + "dog" for i in range(20)}  # cat-heavier docs rank first
    index = build(live)
    allowed = np.array([17, 19, 18, 999], np.int64)
    labels, scores = index.search("cat", 2, allowed=allowed)
    assert labels.tolist() == [17, 18]
    assert_same((labels, scores), oracle(live, "cat", 2, allowed))
    assert index.search("cat", 5, allowed=np.empty(0, np.int64))[0].size == 0


def test_deleted_ids_never_return_and_replacements_take_their_place() -> None:
    index = build(dict(CORPUS))
    index.apply([3, 5, 34], [100], ["a cat named Felix"])  # 100 replaces 3
    live = {x: t for x, t in CORPUS.items() if x not in (3, 5, 34)} | {100: "a cat named Felix"}
    for query in ["cat", "dogs cats", "felix"]:
        labels, _ = index.search(query, 100)
        assert not {3, 5, 34} & set(labels.tolist())
        assert_same(index.search(query, 100), oracle(live, query, 100))
    assert len(index) == len(live)


def test_removed_docs_vocabulary_does_not_change_scores() -> None:
    index = build({1: "zebra zebra zebra", 2: "cat dog", 3: "cat bird"})
    index.apply([1], [], [])
    assert index.search("zebra", 5)[0].size == 0
    assert_same(
        index.search("cat dog zebra", 5), oracle({2: "cat dog", 3: "cat bird"}, "cat dog", 5)
    )


def test_none_texts_are_not_indexed() -> None:
    index = build({1: "cat", 2: None, 3: "dog"})
    assert len(index) == 2
    assert index.labels().tolist() == [1, 3]
    assert index.search("cat dog", 5)[0].tolist() == [1, 3]
    index.apply([], [1], [None])  # a vector-only upsert of an indexed label drops its text
    assert index.search("cat", 5)[0].size == 0


def test_unicode_texts_match() -> None:
    index = build(dict(CORPUS))
    assert index.search("ZÜRICH", 3)[0].tolist() == [13]
    assert index.search("東京", 3)[0].tolist() == [21]
    assert index.search("🚀", 3)[0].size == 0  # emoji are not word characters: no token


def test_empty_index_and_empty_query_return_empty_arrays() -> None:
    for index in [KeywordIndex(), build({1: None}), build({1: "the of"})]:
        labels, scores = index.search("cat", 10)
        assert labels.dtype == np.int64 and scores.dtype == np.float32
        assert labels.size == scores.size == 0
    assert build(dict(CORPUS)).search("", 10)[0].size == 0
    assert build(dict(CORPUS)).search("cat", 0)[0].size == 0


def test_apply_rejects_mismatched_lengths() -> None:
    with pytest.raises(ValueError):
        KeywordIndex().apply([], [1, 2], ["cat"])


def test_bytes_round_trip_gives_identical_results() -> None:
    index = build(dict(CORPUS))
    index.apply([5], [200], ["dogs and more dogs"])
    again = KeywordIndex.from_bytes(index.to_bytes())
    assert len(again) == len(index)
    for query in QUERIES:
        assert_same(again.search(query, 100), index.search(query, 100))
    assert_same(
        KeywordIndex.from_bytes(KeywordIndex().to_bytes()).search("cat", 3),
        (np.empty(0, np.int64), np.empty(0, np.float32)),
    )


def npz(**arrays: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def test_garbage_or_truncated_bytes_raise_value_error() -> None:
    good = build(dict(CORPUS)).to_bytes()
    with np.load(io.BytesIO(good)) as f:
        arrays = {key: f[key] for key in f.files}
    bad = [
        b"",
        b"garbage",
        good[:10],
        good[: len(good) // 2],
        good[:-1],
        npz(labels=np.ones(2)),
        npz(**arrays | {"format": np.array([2])}),
        npz(**arrays | {"token_ids": arrays["token_ids"] + 10_000}),
        npz(**arrays | {"labels": arrays["labels"][::-1].copy()}),
        npz(**arrays | {"lengths": arrays["lengths"] + 1}),
        npz(**arrays | {"vocab_offsets": arrays["vocab_offsets"][:-1].copy()}),
        npz(**arrays | {"vocab_utf8": np.full_like(arrays["vocab_utf8"], 0xFF)}),
        npz(**arrays | {"labels": np.array(["a"] * len(arrays["labels"]), object)}),
    ]
    for data in bad:
        with pytest.raises(ValueError):
            KeywordIndex.from_bytes(data)


@pytest.mark.parametrize("refresh", [False, True])
def test_concurrent_searches_after_writes_agree(refresh: bool) -> None:
    index = build(dict(CORPUS))
    index.search("cat", 5)  # built, so that the write below makes it stale
    index.apply([8], [300], ["runs and running"])
    if refresh:
        index.refresh()
    want = [
        oracle({x: t for x, t in CORPUS.items() if x != 8} | {300: "runs and running"}, q, 5)
        for q in QUERIES
    ]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda q: index.search(q, 5), QUERIES * 8))
    for i, result in enumerate(got):
        assert_same(result, want[i % len(QUERIES)])


WORDS = [
    "cat",
    "cats",
    "dog",
    "run",
    "running",
    "runs",
    "the",
    "and",
    "café",
    "東京",
    "zebra",
    "vector",
    "search",
    "naïve",
    "🚀",
    "apple",
    "apples",
]
texts = st.lists(st.sampled_from(WORDS), max_size=6).map(" ".join)


class KeywordMachine(RuleBasedStateMachine):
    """Random writes, then every search equals bm25s rebuilt from scratch over the live texts."""

    def __init__(self) -> None:
        super().__init__()
        self.index = KeywordIndex()
        self.live: dict[int, str] = {}
        self.next_label = 0

    def new_labels(self, n: int) -> list[int]:
        self.next_label += n
        return list(range(self.next_label - n, self.next_label))

    @rule(batch=st.lists(st.one_of(st.none(), texts), min_size=1, max_size=5))
    def add(self, batch: list[str | None]) -> None:
        labels = self.new_labels(len(batch))
        self.index.apply([], labels, batch)
        self.live |= {x: t for x, t in zip(labels, batch, strict=True) if t is not None}

    @precondition(lambda self: self.live)
    @rule(data=st.data(), replace=st.booleans())
    def remove_or_replace(self, data: st.DataObject, replace: bool) -> None:
        gone = data.draw(st.lists(st.sampled_from(sorted(self.live)), min_size=1, unique=True))
        new = data.draw(texts) if replace else None
        labels = self.new_labels(len(gone)) if replace else []
        self.index.apply(gone, labels, [new] * len(labels))
        for x in gone:
            del self.live[x]
        self.live |= dict.fromkeys(labels, new) if new is not None else {}

    @rule()
    def reopen(self) -> None:
        self.index = KeywordIndex.from_bytes(self.index.to_bytes())

    @rule(query=texts, k=st.integers(1, 8), data=st.data())
    def search(self, query: str, k: int, data: st.DataObject) -> None:
        allowed = None
        if self.live and data.draw(st.booleans()):
            allowed = np.array(data.draw(st.lists(st.sampled_from(sorted(self.live)))), np.int64)
        assert_same(self.index.search(query, k, allowed), oracle(self.live, query, k, allowed))

    @invariant()
    def size_is_the_live_count(self) -> None:
        assert len(self.index) == len(self.live)
        np.testing.assert_array_equal(self.index.labels(), np.array(sorted(self.live), np.int64))


KeywordMachine.TestCase.settings = settings(
    max_examples=50,
    stateful_step_count=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_keyword_index_matches_a_rebuilt_bm25s = KeywordMachine.TestCase


def test_ties_at_the_cut_go_to_the_lower_labels() -> None:
    rng = np.random.default_rng(0)
    live = {int(x): ("cat dog" if x % 3 else "cat dog cat") for x in rng.permutation(300)}
    index = build(live)
    for k in [1, 5, 99, 100, 101, 150]:
        labels, scores = index.search("cat", k)
        want = sorted(live, key=lambda x: (live[x] != "cat dog cat", x))[:k]
        assert labels.tolist() == want
        assert_same((labels, scores), oracle(live, "cat", k))
