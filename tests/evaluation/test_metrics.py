"""The metrics against hand-worked cases and against scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st

from indexer.evaluation import metrics

LOG2_3 = math.log2(3)


# ---- nDCG (trec_eval: gain = grade, 1/log2(rank+1), ideal from every judged document) --------
def test_ndcg_graded_by_hand() -> None:
    qrels = {"a": 2, "b": 1, "c": 3}
    # ranks 1..3 hold b (1), x (unjudged), a (2): DCG = 1/1 + 0 + 2/log2(4) = 2
    # ideal c, a, b: 3/1 + 2/log2(3) + 1/log2(4)
    ideal = 3 + 2 / LOG2_3 + 0.5
    assert metrics.ndcg_at_k(["b", "x", "a", "c"], qrels, k=3) == pytest.approx(2 / ideal)
    assert metrics.ndcg_at_k(["c", "a", "b"], qrels, k=3) == pytest.approx(1.0)


def test_ndcg_binary_by_hand_ignores_zero_grades() -> None:
    qrels = {"d1": 1, "d2": 1, "d3": 0}  # d3 judged not relevant: no gain, not in the ideal
    got = metrics.ndcg_at_k(["d3", "d1", "x", "d2"], qrels, k=10)
    assert got == pytest.approx((1 / LOG2_3 + 1 / math.log2(5)) / (1 + 1 / LOG2_3))


def test_ndcg_ideal_counts_relevant_documents_never_retrieved() -> None:
    # a perfect top-1 still loses: b is relevant and was not returned
    assert metrics.ndcg_at_k(["a"], {"a": 1, "b": 1}) == pytest.approx(1 / (1 + 1 / LOG2_3))


def test_ndcg_cuts_at_k() -> None:
    assert metrics.ndcg_at_k([f"x{i}" for i in range(10)] + ["a"], {"a": 1}) == 0.0
    assert metrics.ndcg_at_k(["x", "a"], {"a": 1}, k=1) == 0.0


def test_ndcg_without_relevant_documents_is_zero() -> None:
    assert metrics.ndcg_at_k(["a"], {"a": 0}) == 0.0


def test_recall_and_reciprocal_rank_by_hand() -> None:
    qrels = {"a": 1, "b": 2, "c": 1, "z": 0}
    ranked = ["a", "x", "b", "z"]
    assert metrics.recall_at_k(ranked, qrels, k=2) == pytest.approx(1 / 3)
    assert metrics.recall_at_k(ranked, qrels, k=3) == pytest.approx(2 / 3)
    assert metrics.reciprocal_rank(["x", "y", "c"], qrels, k=10) == pytest.approx(1 / 3)
    assert metrics.reciprocal_rank(["x", "y", "c"], qrels, k=2) == 0.0
    assert metrics.reciprocal_rank(["z", "b"], qrels) == pytest.approx(0.5)  # z has grade 0


# ---- correlation ------------------------------------------------------------------------------
def test_spearman_with_ties_by_hand() -> None:
    # ranks: x = 1, 2.5, 2.5, 4; y = 1, 2, 3, 4 -> Pearson of those ranks
    x, y = [1, 2, 2, 3], [10, 20, 30, 40]
    rx, ry = np.array([1, 2.5, 2.5, 4]), np.array([1, 2, 3, 4])
    rx, ry = rx - rx.mean(), ry - ry.mean()
    want = float(rx @ ry / math.sqrt((rx @ rx) * (ry @ ry)))
    assert metrics.spearman(x, y) == pytest.approx(want)
    assert want == pytest.approx(4.5 / math.sqrt(4.5 * 5))  # (2.25 + 0 + 0 + 2.25) / sqrt(4.5·5)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 6)), min_size=3, max_size=60))
def test_spearman_and_rankdata_match_scipy_with_many_ties(pairs: list[tuple[int, int]]) -> None:
    x, y = (np.array(v, dtype=float) for v in zip(*pairs, strict=True))
    np.testing.assert_allclose(metrics.rankdata(x), scipy.stats.rankdata(x))
    want = float(scipy.stats.spearmanr(x, y).statistic) if x.std() and y.std() else math.nan
    got = metrics.spearman(x, y)
    assert (math.isnan(got) and math.isnan(want)) or got == pytest.approx(want, abs=1e-12)


def test_pearson_matches_scipy_on_fresh_random_data() -> None:
    rng = np.random.default_rng(7)
    x = rng.normal(size=500)
    y = 0.6 * x + rng.normal(size=500)
    assert metrics.pearson(x, y) == pytest.approx(scipy.stats.pearsonr(x, y).statistic, abs=1e-12)
    assert metrics.spearman(x, y) == pytest.approx(scipy.stats.spearmanr(x, y).statistic, abs=1e-12)


def test_correlation_of_a_constant_is_nan_and_lengths_must_match() -> None:
    assert math.isnan(metrics.spearman([1, 1, 1], [1, 2, 3]))
    with pytest.raises(ValueError, match="differ in length"):
        metrics.pearson([1, 2], [1, 2, 3])


# ---- analogy ----------------------------------------------------------------------------------
def test_analogy_counts_any_valid_target() -> None:
    # question 0 has two valid answers and the top is the second; 1 misses; 2 had no candidate
    targets = [frozenset({4, 7}), frozenset({2}), frozenset({1}), frozenset({0, 1, 2})]
    correct = metrics.analogy_correct(np.array([7, 3, -1, 2]), targets)
    assert correct.tolist() == [True, False, False, True]
    assert metrics.accuracy(correct) == 0.5
    assert math.isnan(metrics.accuracy([]))
