"""Embeddings as geometry: a text becomes an arrow, and meaning becomes direction.

Two texts are similar when their arrows point the same way. Cosine measures that directly; the dot
product and the L2 distance measure it too once the arrows have length 1, because then
``a . b = cos(a, b)`` and ``||a - b||^2 = 2 - 2 cos(a, b)``: all three rank neighbours alike.
Analogy arithmetic (king - man + woman) walks along the arrows: 3CosAdd and 3CosMul
(Levy & Goldberg 2014) are written out below over a matrix of candidate vectors.

Scores sort higher-is-better (cosine, dot, the analogy scores); distances sort lower-is-better (L2).
"""

from collections.abc import Iterable

import numpy as np

from primer_math.arrays import Array, ArrayLike, Index, as_array, as_float


def dot(a: ArrayLike, b: ArrayLike) -> float:
    """How much two arrows agree, weighted by their lengths: the sum of coordinate products.

    Formula: ``a . b = sum_i a_i b_i``. Shapes: (d,), (d,) -> scalar.

    >>> dot([1.0, 2.0], [3.0, 4.0])
    11.0
    """
    return as_float(np.dot(as_array(a), as_array(b)))


def norm(a: ArrayLike) -> float:
    """The length of an arrow: ``||a|| = sqrt(a . a)``. Shapes: (d,) -> scalar.

    >>> norm([3.0, 4.0])
    5.0
    """
    return as_float(np.linalg.norm(as_array(a)))


def normalize(X: ArrayLike, axis: int = -1) -> Array:
    """Shrink or stretch each arrow to length 1, keeping only its direction.

    Formula: ``x / ||x||``. Shapes: (..., d) -> (..., d). A zero vector stays zero (it has no
    direction), rather than becoming NaN.

    >>> normalize([3.0, 4.0])
    array([0.6, 0.8])
    """
    X = as_array(X)
    lengths = np.linalg.norm(X, axis=axis, keepdims=True)
    return X / np.where(lengths == 0.0, 1.0, lengths)


def cosine(a: ArrayLike, b: ArrayLike) -> float:
    """How much two arrows point the same way, whatever their lengths: 1 same, 0 unrelated,
    -1 opposite.

    Formula: ``cos(a, b) = a . b / (||a|| ||b||)``. Shapes: (d,), (d,) -> scalar in [-1, 1].

    >>> cosine([1.0, 0.0], [1.0, 1.0])  # 45 degrees apart
    0.7071067811865475
    """
    return dot(normalize(a), normalize(b))


def l2_distance(a: ArrayLike, b: ArrayLike) -> float:
    """How far apart the two arrow tips are (lower is closer).

    Formula: ``||a - b|| = sqrt(sum_i (a_i - b_i)^2)``. Shapes: (d,), (d,) -> scalar >= 0.

    >>> l2_distance([0.0, 0.0], [3.0, 4.0])
    5.0
    """
    return norm(as_array(a) - as_array(b))


def angle(a: ArrayLike, b: ArrayLike, degrees: bool = True) -> float:
    """The angle between two arrows, the most literal reading of "similar direction".

    Formula: ``theta = arccos(cos(a, b))`` (clipped to [-1, 1] against rounding).
    Shapes: (d,), (d,) -> scalar in [0, 180] degrees (or [0, pi] radians).

    >>> angle([1.0, 0.0], [0.0, 2.0])
    90.0
    """
    theta = np.arccos(np.clip(cosine(a, b), -1.0, 1.0))
    return as_float(np.degrees(theta) if degrees else theta)


def unit_l2_squared(cos: ArrayLike) -> Array:
    """For unit vectors the squared L2 distance is a function of the cosine alone.

    Formula: ``||a - b||^2 = ||a||^2 + ||b||^2 - 2 a . b = 2 - 2 cos(a, b)`` when
    ``||a|| = ||b|| = 1``. It falls as cosine rises, so nearest-by-L2 and nearest-by-cosine agree.
    Shapes: any -> same.

    >>> unit_l2_squared([1.0, 0.0, -1.0])  # same, orthogonal, opposite
    array([0., 2., 4.])
    """
    return 2.0 - 2.0 * as_array(cos)


def cosine_scores(query: ArrayLike, M: ArrayLike) -> Array:
    """Cosine of one query arrow against every row of a matrix: the heart of a search engine.

    Formula: ``scores_i = cos(q, M_i) = normalize(M) @ normalize(q)``. Shapes: (d,), (n, d) -> (n,).

    >>> cosine_scores([1.0, 0.0], [[2.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    array([ 1.,  0., -1.])
    """
    return normalize(M) @ normalize(query)


def dot_scores(query: ArrayLike, M: ArrayLike) -> Array:
    """Dot product of one query against every row (inner-product search).

    Shapes: (d,), (n, d) -> (n,).

    >>> dot_scores([1.0, 2.0], [[1.0, 1.0], [0.0, 3.0]])
    array([3., 6.])
    """
    return as_array(M) @ as_array(query)


def l2_distances(query: ArrayLike, M: ArrayLike) -> Array:
    """L2 distance of one query to every row (lower is closer). Shapes: (d,), (n, d) -> (n,).

    >>> l2_distances([0.0, 0.0], [[3.0, 4.0], [1.0, 0.0]])
    array([5., 1.])
    """
    return as_array(np.linalg.norm(as_array(M) - as_array(query), axis=-1))


def rank(scores: ArrayLike, k: int | None = None) -> Index:
    """The indices of the best scores, best first (higher is better; ties keep the lower index).

    Shapes: (n,) -> (min(k, n),). Rows excluded with -inf sort last and are dropped.

    >>> rank([0.1, 0.9, -np.inf, 0.5])
    array([1, 3, 0])
    """
    s = as_array(scores)
    order = np.argsort(-s, kind="stable")
    order = order[np.isfinite(s[order])]
    return order if k is None else order[:k]


def _exclude(scores: Array, exclude: Iterable[int]) -> Array:
    """Score excluded rows -inf, so the inputs of an analogy can never be its answer."""
    idx = np.fromiter(exclude, dtype=np.intp)
    scores[idx] = -np.inf
    return scores


def three_cos_add(
    a: ArrayLike, b: ArrayLike, c: ArrayLike, M: ArrayLike, exclude: Iterable[int] = ()
) -> Array:
    """Analogy "a is to b as c is to ?" by arrow arithmetic: walk from c by the step a -> b.

    man : king :: woman : ? asks for the word nearest to ``king - man + woman``. With unit inputs,
    ``cos(x, b - a + c)`` ranks candidates exactly as ``cos(x,b) - cos(x,a) + cos(x,c)`` does
    (the target's length is the same for every x).

    Formula: ``score_i = cos(M_i, normalize(b^ - a^ + c^))`` where ``^`` means unit length;
    excluded rows (usually a, b, c themselves) score -inf. Shapes: (d,) x3, (n, d) -> (n,).

    >>> words = ["man", "woman", "king", "queen"]
    >>> M = np.array([[0, 1, 0], [0, 0, 1], [1, 1, 0], [1, 0, 1]])  # (royal, male, female)
    >>> three_cos_add(M[0], M[2], M[1], M, exclude=[0, 1, 2]).round(3)
    array([ -inf,  -inf,  -inf, 0.959])
    """
    target = normalize(b) - normalize(a) + normalize(c)
    return _exclude(cosine_scores(target, M), exclude)


def three_cos_mul(
    a: ArrayLike,
    b: ArrayLike,
    c: ArrayLike,
    M: ArrayLike,
    exclude: Iterable[int] = (),
    eps: float = 1e-3,
) -> Array:
    """Analogy as a product instead of a sum: be close to b AND close to c, far from a.

    3CosAdd lets one large similarity drown the others; multiplying keeps each term in play.
    Cosines are first moved to [0, 1] so the ratio stays well defined.

    Formula (Levy & Goldberg 2014): ``score_i = s(M_i, b) s(M_i, c) / (s(M_i, a) + eps)`` with
    ``s = (cos + 1) / 2``; excluded rows score -inf. Shapes: (d,) x3, (n, d) -> (n,).

    >>> words = ["man", "woman", "king", "queen"]
    >>> M = np.array([[0, 1, 0], [0, 0, 1], [1, 1, 0], [1, 0, 1]])  # (royal, male, female)
    >>> words[rank(three_cos_mul(M[0], M[2], M[1], M, exclude=[0, 1, 2]))[0]]
    'queen'
    """
    sim_a, sim_b, sim_c = ((cosine_scores(v, M) + 1.0) / 2.0 for v in (a, b, c))
    return _exclude(sim_b * sim_c / (sim_a + eps), exclude)
