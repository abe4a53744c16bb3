"""Fusing ranked lists and diversifying one: reciprocal rank fusion, convex blend, MMR.

Hybrid search asks two retrievers (dense vectors, BM25 keywords) and gets two ranked lists whose
scores live on different scales: a cosine in [-1, 1], a BM25 score in [0, ∞). Two ways to merge:

- `rrf` ignores the scores and keeps only the ranks: each list votes 1 / (k + rank) for every
  document in it (Cormack, Clarke & Büttcher 2009). k = 60 flattens the vote so the first place
  is worth only ~1.6x the tenth, which is what makes one retriever's confident mistake cheap.
- `convex` keeps the scores but first squeezes each list onto [0, 1] (min-max), then blends
  alpha * vector + (1 - alpha) * keyword (Bruch, Gai & Ingber 2023 find it beats RRF once alpha
  is tuned).

`mmr` (Carbonell & Goldstein 1998) reorders one list so the top stops repeating itself: each pick
trades relevance to the query against similarity to what is already picked, with Qdrant's and
Weaviate's parametrisation (`diversity` in [0, 1]: 0 = relevance only, 1 = novelty only).

Every function breaks ties by the smaller label (or index), so results are deterministic.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from .errors import InvalidInput

Fused = list[tuple[int, float]]  # (label, fused score), best first


def _best_first(scores: dict[int, float]) -> Fused:
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))


def rrf(
    rankings: Sequence[Sequence[int]], k: int = 60, weights: Sequence[float] | None = None
) -> Fused:
    """Reciprocal rank fusion: score(d) = Σ_i w_i / (k + rank_i(d)), ranks counted from 1.

    A document missing from a list gets nothing from it; a label repeated within one list counts
    at its best rank only. Sums are exactly rounded (math.fsum), so two documents with the same
    ranks in swapped lists tie exactly and fall back to label order.

    >>> rrf([[7, 3], [3, 9]], k=1)  # 7: 1/2; 3: 1/3 + 1/2; 9: 1/3
    [(3, 0.8333333333333333), (7, 0.5), (9, 0.3333333333333333)]
    """
    if k < 0:
        raise InvalidInput(f"rrf k must be >= 0, got {k}", field="rrf_k")
    w = [1.0] * len(rankings) if weights is None else [float(x) for x in weights]
    if len(w) != len(rankings):
        raise InvalidInput(f"{len(w)} weights for {len(rankings)} rankings", field="weights")
    if not all(math.isfinite(x) and x >= 0 for x in w):
        raise InvalidInput("weights must be finite and >= 0", field="weights")
    votes: dict[int, list[float]] = {}
    for labels, weight in zip(rankings, w, strict=True):
        seen: set[int] = set()
        for rank, label in enumerate(labels, start=1):
            lab = int(label)
            if lab in seen:
                continue
            seen.add(lab)
            votes.setdefault(lab, []).append(weight / (k + rank))
    return _best_first({lab: math.fsum(v) for lab, v in votes.items()})


def minmax(scores: NDArray[np.float32], higher_is_better: bool) -> NDArray[np.float64]:
    """Map scores onto [0, 1] with 1 = best: (s - min) / (max - min), flipped for distances.

    One score, or all equal, carries no spread to normalise: every document gets 1.0.

    >>> minmax(np.array([0.5, 2.0, 1.0], np.float32), higher_is_better=False).round(3).tolist()
    [1.0, 0.0, 0.667]
    """
    s = np.asarray(scores, dtype=np.float64)
    if s.size == 0:
        return s
    if not np.isfinite(s).all():
        raise InvalidInput("scores must be finite", field="scores")
    lo, hi = float(s.min()), float(s.max())
    if hi == lo:
        return np.ones_like(s)
    unit = (s - lo) / (hi - lo)
    return unit if higher_is_better else 1.0 - unit


def convex(
    scored: Sequence[tuple[NDArray[np.int64], NDArray[np.float32]]],
    alpha: float,
    higher_is_better: Sequence[bool],
) -> Fused:
    """Blend two scored lists: alpha * vector + (1 - alpha) * keyword, each min-max normalised.

    scored[0] is the vector side and scored[1] the keyword side, each (labels, scores);
    higher_is_better says per side whether its scores are similarities (cosine, dot, BM25) or
    distances (L2), which are flipped so 1 = best. A document missing from one side scores 0
    there, the same as that side's worst document.

    >>> vec = (np.array([1, 2]), np.array([0.9, 0.5], np.float32))
    >>> kw = (np.array([2, 3]), np.array([12.0, 3.0], np.float32))
    >>> convex([vec, kw], alpha=0.5, higher_is_better=[True, True])
    [(1, 0.5), (2, 0.5), (3, 0.0)]
    """
    if len(scored) != 2 or len(higher_is_better) != 2:
        raise InvalidInput("convex fuses exactly two lists: [vector, keyword]", field="scored")
    if not 0.0 <= alpha <= 1.0:
        raise InvalidInput(f"alpha must be in [0, 1], got {alpha}", field="alpha")
    fused: dict[int, float] = {}
    for (labels, scores), higher, weight in zip(
        scored, higher_is_better, (alpha, 1.0 - alpha), strict=True
    ):
        if len(labels) != len(scores):
            raise InvalidInput(f"{len(labels)} labels but {len(scores)} scores", field="scored")
        for label, unit in zip(labels, minmax(scores, higher), strict=True):
            lab = int(label)
            fused[lab] = fused.get(lab, 0.0) + weight * float(unit)
    return _best_first(fused)


def mmr(
    query: NDArray[np.float32],
    candidates: NDArray[np.float32],
    relevance: NDArray[np.float32],
    k: int,
    diversity: float,
) -> list[int]:
    """Maximal marginal relevance: pick k candidates, each the argmax of
    (1 - diversity) * relevance_i - diversity * max_j sim(i, selected_j), sim = dot product.

    query (d,) and candidates (n, d) are unit vectors; relevance (n,) is each candidate's
    similarity to the query (the cosine score). The first pick is the most relevant candidate
    (nothing is selected yet to be novel against), so diversity 0 returns exactly the top k by
    relevance, ties by index, and diversity 1 picks, after the first, whatever is least like the
    picks so far. Returns indices into candidates, in pick order.

    >>> C = np.array([[1, 0], [0.96, 0.28], [0, 1]], np.float32)  # 1 is near 0; 2 is far
    >>> q = np.array([0.8, 0.6], np.float32)
    >>> mmr(q, C, C @ q, k=3, diversity=0.0), mmr(q, C, C @ q, k=3, diversity=0.5)
    ([1, 0, 2], [1, 2, 0])
    """
    if not 0.0 <= diversity <= 1.0:
        raise InvalidInput(f"diversity must be in [0, 1], got {diversity}", field="diversity")
    C = np.asarray(candidates, dtype=np.float32)
    rel = np.asarray(relevance, dtype=np.float64)
    n = len(rel)
    if C.ndim != 2 or len(C) != n:
        raise InvalidInput(
            f"candidates must be (n, d) with n = {n} relevance scores, got {C.shape}",
            field="candidates",
        )
    if np.asarray(query).shape != (C.shape[1],):
        raise InvalidInput(
            f"query has shape {np.asarray(query).shape}, candidates have d = {C.shape[1]}",
            field="query",
        )
    if not np.isfinite(rel).all():
        raise InvalidInput("relevance must be finite", field="relevance")
    picked: list[int] = []
    taken = np.zeros(n, dtype=bool)
    redundancy = np.zeros(n, dtype=np.float64)  # max sim to the picks so far, (n,)
    for _ in range(min(max(k, 0), n)):
        # nothing picked yet means nothing to be novel against: the first pick is by relevance
        w_rel, w_div = (1.0 - diversity, diversity) if picked else (1.0, 0.0)
        mmr_score = w_rel * rel - w_div * redundancy
        mmr_score[taken] = -np.inf
        i = int(np.argmax(mmr_score))  # first maximum: ties go to the smaller index
        picked.append(i)
        taken[i] = True
        sims = (C @ C[i]).astype(np.float64)  # (n,)
        redundancy = sims if len(picked) == 1 else np.maximum(redundancy, sims)
    return picked
