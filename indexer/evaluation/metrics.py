"""The quality measures, as flat numpy functions named after the quantity.

- Correlation (STS, word similarity): Pearson r of the raw values, Spearman ρ = Pearson r of the
  ranks, where tied values share the average of the ranks they span (as scipy's `rankdata`).
- Ranking (retrieval), per query, as trec_eval computes them: nDCG@k with gain = the qrels grade
  (only grades > 0 count), discount log2(rank + 1) and the ideal ranking made from *all* judged
  relevant documents, not just the retrieved ones; recall@k = relevant retrieved in the top k /
  all relevant; reciprocal rank of the first relevant document within the top k (MRR@k is its
  mean). The ranking is taken as given (trec_eval re-sorts by score and breaks exact score ties
  by document id; our engine's order is already deterministic, and exact ties are vanishingly
  rare with float scores).
- Analogy: a question is answered correctly when the top candidate is any of its valid targets.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

Floats = NDArray[np.float64]


# ---- correlation ------------------------------------------------------------------------------
def rankdata(x: ArrayLike) -> Floats:
    """Ranks 1..n; tied values get the mean of the ranks they occupy.

    >>> rankdata([10, 20, 20, 5]).tolist()
    [2.0, 3.5, 3.5, 1.0]
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    order = np.argsort(x, kind="stable")
    sorted_x = x[order]
    # start of each run of equal values in sorted order
    starts = np.flatnonzero(np.r_[True, sorted_x[1:] != sorted_x[:-1]])
    ends = np.r_[starts[1:], len(x)]  # one past the end of each run
    mean_rank = (starts + 1 + ends) / 2.0  # mean of ranks starts+1 .. ends
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def pearson(x: ArrayLike, y: ArrayLike) -> float:
    """Pearson r: cosine of the centred vectors. NaN when either side is constant.

    >>> round(pearson([1, 2, 3], [2, 4, 7]), 4)
    0.9934
    """
    a = np.asarray(x, dtype=np.float64).ravel()
    b = np.asarray(y, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"x and y differ in length: {a.shape[0]} vs {b.shape[0]}")
    if a.shape[0] < 2:
        return math.nan
    a, b = a - a.mean(), b - b.mean()
    denom = math.sqrt(float(a @ a) * float(b @ b))
    if denom == 0.0:
        return math.nan
    return max(-1.0, min(1.0, float(a @ b) / denom))


def spearman(x: ArrayLike, y: ArrayLike) -> float:
    """Spearman ρ: Pearson r of the (average-tie) ranks.

    >>> spearman([1, 2, 3, 4], [10, 20, 20, 40])  # monotone with a tie
    0.9486832980505138
    """
    return pearson(rankdata(x), rankdata(y))


# ---- ranking ----------------------------------------------------------------------------------
def dcg(gains: Sequence[float]) -> float:
    """Σ gain_i / log2(i + 1) over ranks i = 1, 2, ..."""
    return sum(g / math.log2(i + 2) for i, g in enumerate(gains) if g > 0)


def ndcg_at_k(ranked: Sequence[str], qrels: Mapping[str, int], k: int = 10) -> float:
    """nDCG@k as trec_eval's `ndcg_cut_k`: graded gains, ideal from every judged relevant doc.

    >>> ndcg_at_k(["x", "a"], {"a": 1})  # the one relevant doc at rank 2
    0.6309297535714575
    """
    gains = [max(qrels.get(d, 0), 0) for d in ranked[:k]]
    ideal = sorted((g for g in qrels.values() if g > 0), reverse=True)[:k]
    best = dcg(ideal)
    return dcg(gains) / best if best > 0 else 0.0


def recall_at_k(ranked: Sequence[str], qrels: Mapping[str, int], k: int = 100) -> float:
    """Share of the relevant documents (grade > 0) found in the top k."""
    relevant = {d for d, g in qrels.items() if g > 0}
    if not relevant:
        return 0.0
    return len(relevant.intersection(ranked[:k])) / len(relevant)


def reciprocal_rank(ranked: Sequence[str], qrels: Mapping[str, int], k: int = 10) -> float:
    """1 / rank of the first relevant document within the top k, else 0."""
    for i, d in enumerate(ranked[:k]):
        if qrels.get(d, 0) > 0:
            return 1.0 / (i + 1)
    return 0.0


# ---- analogy ----------------------------------------------------------------------------------
def analogy_correct(
    top: Sequence[int] | NDArray[np.int64], targets: Sequence[Collection[int]]
) -> NDArray[np.bool_]:
    """Per question: is the top candidate one of the valid targets? (-1 means no candidate.)

    >>> analogy_correct([3, 5, -1], [{3}, {4, 6}, {1}]).tolist()
    [True, False, False]
    """
    if len(top) != len(targets):
        raise ValueError(f"{len(top)} answers for {len(targets)} questions")
    return np.fromiter(
        (int(t) in ts for t, ts in zip(top, targets, strict=True)), dtype=bool, count=len(top)
    )


def accuracy(correct: ArrayLike) -> float:
    """Mean of a boolean array; NaN for no questions."""
    c = np.asarray(correct, dtype=bool)
    return float(c.mean()) if c.size else math.nan
