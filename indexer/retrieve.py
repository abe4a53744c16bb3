"""How one query is ranked: by vector, by keyword (BM25) or both fused, then diversified (MMR)
and grouped by document (chunked collections) when asked.

Every step keeps the numbers it used, so a hit can say why it is where it is: a hybrid hit
carries its vector and keyword scores and ranks beside the fused score. The collection calls
`rank` under its read lock; nothing here writes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from . import rank as fuse
from .errors import InvalidInput
from .index import higher_is_better

if TYPE_CHECKING:  # pragma: no cover
    from .collection import Collection, Query

MODES = ("vector", "keyword", "hybrid")
FUSIONS = ("rrf", "convex")
# Candidates taken from each side before fusing. On SciFact train, RRF over the top 50, 100 or
# 1,000 of each side gave nDCG@10 within 0.002 of each other; 100 keeps fusion cheap.
HYBRID_DEPTH = 100
MAX_POOL = 10_000


@dataclass
class Ranked:
    label: int
    score: float
    extra: dict[str, Any] = field(default_factory=dict)


def check_query(q: Query, where: str) -> None:
    """Refuse what cannot be ranked, naming the field (`searches[2].alpha`, or `alpha`)."""
    p = f"{where}." if where else ""
    if q.mode not in MODES:
        raise InvalidInput(f"mode must be one of {', '.join(MODES)}", field=f"{p}mode")
    if q.fusion not in FUSIONS:
        raise InvalidInput(f"fusion must be one of {', '.join(FUSIONS)}", field=f"{p}fusion")
    if isinstance(q.rrf_k, bool) or not isinstance(q.rrf_k, int) or not 1 <= q.rrf_k <= MAX_POOL:
        raise InvalidInput(f"rrf_k must be an integer in [1, {MAX_POOL}]", field=f"{p}rrf_k")
    if not _fraction(q.alpha):
        raise InvalidInput("alpha must be a number in [0, 1]", field=f"{p}alpha")
    if q.diversity is not None and not _fraction(q.diversity):
        raise InvalidInput("diversity must be a number in [0, 1]", field=f"{p}diversity")
    if q.candidates is not None and (
        isinstance(q.candidates, bool)
        or not isinstance(q.candidates, int)
        or not q.k < q.candidates <= MAX_POOL
    ):
        # MMR over exactly k candidates could only reorder them, never diversify
        raise InvalidInput(
            f"candidates must be an integer greater than k ({q.k}) and at most {MAX_POOL}",
            field=f"{p}candidates",
        )
    if q.mode != "vector" and (not isinstance(q.text, str) or not q.text.strip()):
        raise InvalidInput(
            f"mode {q.mode!r} needs a query text (BM25 scores its words)", field=f"{p}query"
        )
    if q.mode == "keyword" and q.vector is not None:
        raise InvalidInput("mode 'keyword' takes a query text, not a vector", field=f"{p}vector")


def _fraction(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and 0 <= x <= 1


def pool_size(q: Query, n: int) -> int:
    """How many candidates to rank before MMR or grouping cut them to k."""
    pool = q.k
    if q.diversity is not None:
        pool = q.candidates or max(4 * q.k, 40)
    if q.group_by_document:
        pool = max(pool, q.candidates or 5 * q.k)
    return max(1, min(pool, MAX_POOL, max(n, 1)))


def rank(
    col: Collection,
    q: Query,
    vec: NDArray[np.float32],
    allowed: NDArray[np.int64] | None,
    depth: int,
) -> list[Ranked]:
    """The best `depth` labels for `q` in its mode, best first."""
    if q.mode == "vector":
        return _vector(col, q, vec, allowed, depth)
    if q.mode == "keyword":
        labels, scores = col.keyword_search(q.text or "", depth, allowed)
        return [Ranked(int(lab), float(s)) for lab, s in zip(labels, scores, strict=True)]
    side = max(depth, HYBRID_DEPTH)
    by_vector = _vector(col, q, vec, allowed, side)
    v_labels = np.asarray([r.label for r in by_vector], dtype=np.int64)
    v_scores = np.asarray([r.score for r in by_vector], dtype=np.float32)
    by_keyword = col.keyword_search(q.text or "", side, allowed)
    return fuse_sides(q, col.metric, (v_labels, v_scores), by_keyword, depth)


def fuse_sides(
    q: Query,
    metric: str,
    by_vector: tuple[NDArray[np.int64], NDArray[np.float32]],
    by_keyword: tuple[NDArray[np.int64], NDArray[np.float32]],
    depth: int,
) -> list[Ranked]:
    """The best `depth` of two ranked sides (labels, scores; best first) fused by `q.fusion`,
    each hit keeping its rank and score on either side. Pure: a sharded collection fuses its
    globally merged sides with it, exactly as one collection fuses its own."""
    v_labels, v_scores = by_vector
    kw_labels, kw_scores = by_keyword
    if q.fusion == "rrf":
        fused = fuse.rrf([v_labels.tolist(), kw_labels.tolist()], k=q.rrf_k)
    else:
        fused = fuse.convex(
            [(v_labels, v_scores), (kw_labels, kw_scores)],
            alpha=float(q.alpha),
            higher_is_better=[higher_is_better(metric), True],
        )
    v_at = {int(lab): i for i, lab in enumerate(v_labels)}
    k_at = {int(lab): i for i, lab in enumerate(kw_labels)}
    out = []
    for lab, score in fused[:depth]:
        extra: dict[str, Any] = {}
        if (i := v_at.get(lab)) is not None:
            extra["vector_score"], extra["vector_rank"] = float(v_scores[i]), i + 1
        if (j := k_at.get(lab)) is not None:
            extra["keyword_score"], extra["keyword_rank"] = float(kw_scores[j]), j + 1
        out.append(Ranked(int(lab), float(score), extra))
    return out


def _vector(
    col: Collection,
    q: Query,
    vec: NDArray[np.float32],
    allowed: NDArray[np.int64] | None,
    depth: int,
) -> list[Ranked]:
    (res,) = col.index.search(
        vec[None, :],
        depth,
        allowed=allowed,
        exact=q.exact,
        ef_search=q.ef_search,
        nprobe=q.nprobe,
    )
    return [Ranked(int(lab), float(s)) for lab, s in zip(res.labels, res.scores, strict=True)]


def diversify(
    col: Collection, q: Query, vec: NDArray[np.float32], ranked: list[Ranked], k: int
) -> list[Ranked]:
    """Maximal marginal relevance: each next hit trades its relevance against its similarity
    to the hits already chosen (`diversity` 0 keeps the relevance order exactly)."""
    if not ranked or q.diversity is None:
        return ranked[:k]
    labels = np.asarray([r.label for r in ranked], dtype=np.int64)
    order = mmr_order(q, col.metric, vec, ranked, col.index.vectors_of(labels), k)
    return [ranked[i] for i in order]


def mmr_order(
    q: Query,
    metric: str,
    vec: NDArray[np.float32],
    ranked: list[Ranked],
    vectors: NDArray[np.float32],
    k: int,
) -> list[int]:
    """`diversify`'s pick order as indices into `ranked`, given the candidates' stored vectors
    (n, d): pure, so a sharded collection runs it on candidates gathered from its shards."""
    X = _unit(vectors)
    scores = np.asarray([r.score for r in ranked], dtype=np.float32)
    if q.mode == "vector" and metric == "cosine":
        relevance = scores  # the cosine to the query, as Qdrant's MMR uses it
    else:  # BM25, fused, dot or distance scores: onto [0, 1], best = 1
        better = scores if q.mode != "vector" or higher_is_better(metric) else -scores
        span = float(better.max() - better.min())
        relevance = (better - better.min()) / span if span > 0 else np.ones_like(better)
    query = _unit(vec[None, :])[0] if np.any(vec) else np.zeros(X.shape[1], np.float32)
    return fuse.mmr(query, X, relevance.astype(np.float32), k, float(q.diversity or 0.0))


def _unit(x: NDArray[np.float32]) -> NDArray[np.float32]:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.where(norms == 0, 1, norms)).astype(np.float32)


def group(ranked: list[Ranked], document_of: Callable[[int], str]) -> list[Ranked]:
    """One hit per document: its best passage, with how many of its passages matched."""
    best: dict[str, Ranked] = {}
    for r in ranked:
        doc = document_of(r.label)
        if doc in best:
            best[doc].extra["passages_matched"] += 1
        else:
            r.extra["passages_matched"] = 1
            best[doc] = r
    return list(best.values())
