"""rank.py: RRF and the convex blend against hand-computed fusions, MMR against a loop-by-loop
reference, its two ends (diversity 0 = plain search, diversity > 0 = more varied top) and its
invariants."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indexer.errors import InvalidInput
from indexer.rank import convex, minmax, mmr, rrf


def _labels(fused: list[tuple[int, float]]) -> list[int]:
    return [label for label, _ in fused]


def _assert_fused(
    got: list[tuple[int, float]], want: list[tuple[int, Fraction]], rel: float = 1e-12
) -> None:
    assert _labels(got) == [label for label, _ in want]
    for (_, score), (_, exact) in zip(got, want, strict=True):
        assert score == pytest.approx(float(exact), rel=rel, abs=1e-15)


# ---- reciprocal rank fusion -----------------------------------------------------------------

VECTOR = [1, 2, 3, 4]  # best first
KEYWORD = [3, 1, 5]


def test_rrf_matches_the_hand_computed_fusion() -> None:
    # k = 60, ranks from 1:
    #   1: 1/61 (vector #1) + 1/62 (keyword #2)
    #   3: 1/63 (vector #3) + 1/61 (keyword #1)  < doc 1, since 1/63 < 1/62
    #   2: 1/62 (vector only)
    #   5: 1/63 (keyword only)
    #   4: 1/64 (vector only)
    F = Fraction
    want = [
        (1, F(1, 61) + F(1, 62)),
        (3, F(1, 63) + F(1, 61)),
        (2, F(1, 62)),
        (5, F(1, 63)),
        (4, F(1, 64)),
    ]
    _assert_fused(rrf([VECTOR, KEYWORD], k=60), want)


def test_rrf_weights_scale_each_lists_vote() -> None:
    # weights (2, 1): the vector list's votes count double.
    #   1: 2/61 + 1/62 = 0.04892    3: 2/63 + 1/61 = 0.04814    2: 2/62 = 0.03226
    #   4: 2/64 = 0.03125           5: 1/63 = 0.01587  (4 now beats 5, unlike unweighted)
    F = Fraction
    want = [
        (1, 2 * F(1, 61) + F(1, 62)),
        (3, 2 * F(1, 63) + F(1, 61)),
        (2, 2 * F(1, 62)),
        (4, 2 * F(1, 64)),
        (5, F(1, 63)),
    ]
    _assert_fused(rrf([VECTOR, KEYWORD], k=60, weights=[2.0, 1.0]), want)


def test_a_document_in_one_list_only_gets_that_lists_vote() -> None:
    fused = dict(rrf([[10, 11], [12]], k=60))
    assert fused == {10: pytest.approx(1 / 61), 11: pytest.approx(1 / 62), 12: 1 / 61}
    # same rank, one list each: a tie, broken by label
    assert _labels(rrf([[10, 11], [12]], k=60)) == [10, 12, 11]


def test_rrf_ties_break_by_label_and_swapped_ranks_tie_exactly() -> None:
    fused = rrf([[5, 2, 9], [2, 9, 5], [9, 5, 2]])
    assert _labels(fused) == [2, 5, 9]
    assert fused[0][1] == fused[1][1] == fused[2][1]


def test_rrf_counts_a_repeated_label_once_at_its_best_rank() -> None:
    assert rrf([[4, 7, 4]], k=0) == [(4, 1.0), (7, 0.5)]


def test_rrf_degenerate_inputs() -> None:
    assert rrf([]) == []
    assert rrf([[], []]) == []
    assert rrf([[42]]) == [(42, 1 / 61)]
    with pytest.raises(InvalidInput):
        rrf([[1], [2]], weights=[1.0])
    with pytest.raises(InvalidInput):
        rrf([[1]], k=-1)


def test_rrf_agrees_with_an_exact_fraction_reference() -> None:
    rng = np.random.default_rng(7)
    lists = [rng.permutation(50)[: rng.integers(1, 50)].tolist() for _ in range(3)]
    weights = [1.0, 0.5, 2.0]
    exact: dict[int, Fraction] = {}
    for labels, w in zip(lists, weights, strict=True):
        for rank, label in enumerate(labels, start=1):
            exact[label] = exact.get(label, Fraction(0)) + Fraction(w) / (60 + rank)
    want = sorted(exact.items(), key=lambda kv: (-kv[1], kv[0]))
    _assert_fused(rrf(lists, weights=weights), want)


# ---- convex blend -------------------------------------------------------------------------------


def _side(labels: list[int], scores: list[float]) -> tuple[np.ndarray, np.ndarray]:
    return np.array(labels, np.int64), np.array(scores, np.float32)


def test_convex_blends_min_max_normalised_similarities() -> None:
    vector = _side([10, 11, 12], [0.9, 0.7, 0.5])  # -> 1, 0.5, 0
    keyword = _side([12, 13], [8.0, 2.0])  # BM25 -> 1, 0
    # alpha 0.7: 10: 0.7*1 = 0.7, 11: 0.7*0.5 = 0.35, 12: 0.7*0 + 0.3*1 = 0.3, 13: 0
    fused = convex([vector, keyword], alpha=0.7, higher_is_better=[True, True])
    _assert_fused(fused, [(10, Fraction(7, 10)), (11, Fraction(35, 100)), (12, Fraction(3, 10)),
                          (13, Fraction(0))], rel=1e-6)  # fmt: skip


def test_convex_flips_distances_so_the_nearest_counts_most() -> None:
    vector = _side([1, 2, 3], [0.2, 0.4, 1.0])  # L2: (1.0 - d) / 0.8 -> 1, 0.75, 0
    keyword = _side([3, 4], [5.0, 1.0])  # -> 1, 0
    # alpha 0.5: 1: 0.5, 2: 0.375, 3: 0 + 0.5 = 0.5 (ties 1, broken by label), 4: 0
    fused = convex([vector, keyword], alpha=0.5, higher_is_better=[False, True])
    # the scores arrive as float32, so 0.4 is 0.4000000059604645: compare to 1e-6
    _assert_fused(fused, [(1, Fraction(1, 2)), (3, Fraction(1, 2)), (2, Fraction(3, 8)),
                          (4, Fraction(0))], rel=1e-6)  # fmt: skip


def test_convex_alpha_one_and_zero_keep_one_side_only() -> None:
    vector = _side([1, 2, 3], [0.9, 0.8, 0.1])
    keyword = _side([3, 2, 4], [9.0, 4.0, 1.0])
    assert _labels(convex([vector, keyword], 1.0, [True, True]))[:3] == [1, 2, 3]
    # keyword only: 3, 2, then 4 (normalised to 0) ties with 1 (absent, 0): min-max cannot tell
    # a list's worst document from a missing one
    assert _labels(convex([vector, keyword], 0.0, [True, True])) == [3, 2, 1, 4]


def test_convex_degenerate_lists() -> None:
    single = _side([7], [0.3])  # one document: nothing to spread, so it is the best (1.0)
    flat = _side([8, 9], [2.0, 2.0])  # all equal: every one is the best
    empty = _side([], [])
    assert convex([single, empty], 0.5, [True, True]) == [(7, 0.5)]
    assert convex([empty, flat], 0.5, [True, True]) == [(8, 0.5), (9, 0.5)]
    assert convex([single, flat], 0.25, [False, True]) == [(8, 0.75), (9, 0.75), (7, 0.25)]
    assert convex([empty, empty], 0.5, [True, True]) == []
    assert minmax(np.array([], np.float32), True).size == 0


def test_convex_refuses_bad_arguments() -> None:
    side = _side([1], [1.0])
    with pytest.raises(InvalidInput):
        convex([side], 0.5, [True])
    with pytest.raises(InvalidInput):
        convex([side, side], 1.5, [True, True])
    with pytest.raises(InvalidInput):
        convex([side, _side([1, 2], [1.0])], 0.5, [True, True])
    with pytest.raises(InvalidInput):
        convex([side, _side([1], [float("nan")])], 0.5, [True, True])


# ---- maximal marginal relevance ----------------------------------------------------------------


def _unit(X: np.ndarray) -> np.ndarray:
    return (X / np.linalg.norm(X, axis=-1, keepdims=True)).astype(np.float32)


def mmr_reference(
    candidates: np.ndarray, relevance: np.ndarray, k: int, diversity: float
) -> list[int]:
    """The definition, one candidate at a time: no vectorisation, no running maximum."""
    picked: list[int] = []
    for _ in range(min(k, len(candidates))):
        best, best_score = -1, -np.inf
        for i in range(len(candidates)):
            if i in picked:
                continue
            if not picked:
                score = float(relevance[i])
            else:
                redundancy = max(float(candidates[i] @ candidates[j]) for j in picked)
                score = (1 - diversity) * float(relevance[i]) - diversity * redundancy
            if score > best_score:
                best, best_score = i, score
        picked.append(best)
    return picked


def _clustered(seed: int, clusters: int = 5, per: int = 40, d: int = 32) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, d))
    return _unit(np.repeat(centres, per, axis=0) + 0.3 * rng.normal(size=(clusters * per, d)))


def test_mmr_worked_example_with_three_candidates() -> None:
    C = np.array([[1.0, 0.0], [0.96, 0.28], [0.0, 1.0]], np.float32)
    q = np.array([0.8, 0.6], np.float32)
    rel = C @ q  # 0.8, 0.936, 0.6
    # first pick: the most relevant, #1. Its similarity to the others: #0 0.96, #2 0.28.
    # diversity 0.5: #0 0.5*0.8 - 0.5*0.96 = -0.08, #2 0.5*0.6 - 0.5*0.28 = 0.16 -> #2, then #0
    assert mmr(q, C, rel, k=3, diversity=0.5) == [1, 2, 0]
    # diversity 0.1: #0 0.9*0.8 - 0.1*0.96 = 0.624, #2 0.9*0.6 - 0.1*0.28 = 0.512 -> #0
    assert mmr(q, C, rel, k=3, diversity=0.1) == [1, 0, 2]
    # diversity 1: novelty only after the first pick: -0.96 vs -0.28 -> #2
    assert mmr(q, C, rel, k=2, diversity=1.0) == [1, 2]


def test_mmr_with_diversity_zero_is_plain_search_exactly() -> None:
    C = _clustered(seed=1)
    rng = np.random.default_rng(2)
    q = _unit(rng.normal(size=C.shape[1]))
    rel = (C @ q).round(1)  # rounded so that many candidates tie: ties must go by index
    plain = sorted(range(len(C)), key=lambda i: (-rel[i], i))
    for k in (1, 10, len(C)):
        assert mmr(q, C, rel, k=k, diversity=0.0) == plain[:k]


def test_diversity_lowers_the_mean_pairwise_similarity_of_the_top_ten() -> None:
    C = _clustered(seed=3)  # 5 tight clusters of 40: rows 0-39 are cluster 0, ...
    q = C[0]  # a member of cluster 0: plain search fills the top ten from it alone
    rel = C @ q

    def mean_pairwise(picked: list[int]) -> float:
        S = C[picked] @ C[picked].T
        return float(S[np.triu_indices(len(picked), k=1)].mean())

    tops = {d: mmr(q, C, rel, k=10, diversity=d) for d in (0.0, 0.5, 0.7)}
    spread = [mean_pairwise(tops[d]) for d in (0.0, 0.5, 0.7)]
    assert spread[0] > spread[1] > spread[2]
    assert {i // 40 for i in tops[0.0]} == {0}
    assert {i // 40 for i in tops[0.7]} == {0, 1, 2, 3, 4}


@pytest.mark.parametrize("diversity", [0.0, 0.25, 0.5, 0.9, 1.0])
def test_mmr_agrees_with_the_reference(diversity: float) -> None:
    C = _clustered(seed=4, per=12)
    q = _unit(np.random.default_rng(5).normal(size=C.shape[1]))
    rel = C @ q
    assert mmr(q, C, rel, k=15, diversity=diversity) == mmr_reference(C, rel, 15, diversity)


def test_mmr_with_k_beyond_the_candidates_returns_them_all() -> None:
    C = _clustered(seed=6, clusters=2, per=3)
    q = C[0]
    assert sorted(mmr(q, C, C @ q, k=50, diversity=0.5)) == list(range(6))
    assert mmr(q, C, C @ q, k=0, diversity=0.5) == []
    empty = np.zeros((0, C.shape[1]), np.float32)
    assert mmr(q, empty, np.zeros(0, np.float32), k=5, diversity=0.5) == []


def test_mmr_refuses_bad_arguments() -> None:
    C = _clustered(seed=8, clusters=1, per=4, d=3)
    q = C[0]
    with pytest.raises(InvalidInput):
        mmr(q, C, C @ q, k=2, diversity=1.5)
    with pytest.raises(InvalidInput):
        mmr(q, C, (C @ q)[:3], k=2, diversity=0.5)
    with pytest.raises(InvalidInput):
        mmr(np.ones(4, np.float32), C, C @ q, k=2, diversity=0.5)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(0, 25),
    k=st.integers(0, 30),
    diversity=st.floats(0.0, 1.0),
)
def test_mmr_returns_a_prefix_of_a_permutation(seed: int, n: int, k: int, diversity: float) -> None:
    rng = np.random.default_rng(seed)
    C = _unit(rng.normal(size=(n, 4)) + 1e-6) if n else np.zeros((0, 4), np.float32)
    q = _unit(rng.normal(size=4))
    picked = mmr(q, C, C @ q if n else np.zeros(0, np.float32), k=k, diversity=diversity)
    assert len(picked) == min(k, n)
    assert len(set(picked)) == len(picked)
    assert all(0 <= i < n for i in picked)
