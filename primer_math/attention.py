"""Attention as a similarity-weighted average.

Each token asks a question (its query), every token offers a label (its key) and a content (its
value). A token's new representation is the average of all values, weighted by how well each key
answers its query: softmax over ``q . k / sqrt(d)``. Masks say who may be looked at (causal: only
the past; padding: only real tokens). Multi-head attention runs several such averages side by side
on slices of the vectors. Every query compares with every key, so the cost grows as n^2: measured,
not just claimed, by ``measure_complexity``.
"""

import time
from dataclasses import dataclass

import numpy as np

from primer_math.arrays import Array, ArrayLike, Mask, as_array
from primer_math.softmax import softmax


def causal_mask(n_q: int, n_k: int | None = None) -> Mask:
    """Who may look at whom when text is written left to right: query i sees keys 0..i only.

    Formula: ``allowed[i, j] = j <= i`` (aligned top-left, as torch's ``is_causal``).
    Shapes: -> (n_q, n_k), True = may attend.

    >>> causal_mask(3).astype(int)
    array([[1, 0, 0],
           [1, 1, 0],
           [1, 1, 1]])
    """
    n_k = n_q if n_k is None else n_k
    return np.tril(np.ones((n_q, n_k), dtype=bool))


def padding_mask(lengths: ArrayLike, n: int) -> Mask:
    """Which key positions hold real tokens when sentences of different lengths share a batch.

    Shapes: (batch,) -> (batch, 1, n), True = real token; the middle axis broadcasts over queries.

    >>> padding_mask([2, 3], 3).astype(int)
    array([[[1, 1, 0]],
    <BLANKLINE>
           [[1, 1, 1]]])
    """
    valid = np.arange(n) < np.asarray(lengths)[:, None]
    return valid[:, None, :]


def attention_weights(
    Q: ArrayLike, K: ArrayLike, mask: ArrayLike | None = None, causal: bool = False
) -> Array:
    """How much each query listens to each key: a softmax vote over scaled similarities.

    Dividing by sqrt(d) keeps the scores' spread independent of the dimension, so the vote does
    not collapse onto one key just because vectors are long. A query whose keys are all masked
    gets all-zero weights (as torch does) instead of NaN.

    Formula: ``A = softmax(Q K^T / sqrt(d) + M)`` with ``M = -inf`` where not allowed.
    Shapes: Q (..., n_q, d), K (..., n_k, d), mask broadcastable to (..., n_q, n_k)
    -> A (..., n_q, n_k).

    >>> attention_weights([[1.0, 0.0]], [[1.0, 0.0], [-1.0, 0.0]]).round(3)
    array([[0.804, 0.196]])
    """
    Q, K = as_array(Q), as_array(K)
    scores = (Q / np.sqrt(Q.shape[-1])) @ np.swapaxes(K, -1, -2)  # (..., n_q, n_k)
    if mask is None and not causal:
        return softmax(scores)
    allowed = np.ones(scores.shape, dtype=bool)
    if mask is not None:
        allowed = allowed & np.asarray(mask, dtype=bool)
    if causal:
        allowed = allowed & causal_mask(*scores.shape[-2:])
    any_allowed = allowed.any(axis=-1, keepdims=True)
    weights = softmax(np.where(allowed, scores, np.where(any_allowed, -np.inf, 0.0)))
    return np.where(allowed, weights, 0.0)


def attention(
    Q: ArrayLike,
    K: ArrayLike,
    V: ArrayLike,
    mask: ArrayLike | None = None,
    causal: bool = False,
) -> tuple[Array, Array]:
    """Scaled dot-product attention: each output row is an average of V's rows, weighted by A.

    Formula: ``out = softmax(Q K^T / sqrt(d) + M) V``.
    Shapes: Q (..., n_q, d), K (..., n_k, d), V (..., n_k, d_v) -> out (..., n_q, d_v) and the
    weights A (..., n_q, n_k), whose rows are non-negative and sum to 1.

    >>> out, A = attention([[1.0, 0.0]], [[1.0, 0.0], [-1.0, 0.0]], [[10.0], [0.0]])
    >>> out.round(2), A.sum(axis=-1)
    (array([[8.04]]), array([1.]))
    """
    A = attention_weights(Q, K, mask, causal)
    return A @ as_array(V), A


def self_attention(X: ArrayLike, causal: bool = False) -> tuple[Array, Array]:
    """Tokens attending to each other with no learned projections: Q = K = V = X.

    This is the bare mechanism on real token embeddings: each token becomes the average of the
    sentence's tokens weighted by similarity (itself usually weighs most). Shapes: (n, d) -> (n, d),
    (n, n).

    >>> out, A = self_attention(np.eye(2) * 2)
    >>> A.round(3)
    array([[0.944, 0.056],
           [0.056, 0.944]])
    """
    return attention(X, X, X, causal=causal)


def split_heads(X: ArrayLike, n_heads: int) -> Array:
    """Cut each vector into n_heads slices so each head attends in its own subspace.

    Shapes: (..., n, d) -> (..., n_heads, n, d // n_heads).

    >>> split_heads(np.arange(8.0).reshape(2, 4), 2)[1]
    array([[2., 3.],
           [6., 7.]])
    """
    X = as_array(X)
    *lead, n, d = X.shape
    if d % n_heads:
        raise ValueError(f"dimension {d} is not divisible by n_heads={n_heads}")
    return np.swapaxes(X.reshape(*lead, n, n_heads, d // n_heads), -2, -3)


def merge_heads(X: ArrayLike) -> Array:
    """Glue the heads' outputs back side by side: the inverse of ``split_heads``.

    Shapes: (..., n_heads, n, d_head) -> (..., n, n_heads * d_head).

    >>> X = np.arange(8.0).reshape(2, 4)
    >>> bool((merge_heads(split_heads(X, 2)) == X).all())
    True
    """
    X = np.swapaxes(as_array(X), -2, -3)
    return X.reshape(*X.shape[:-2], X.shape[-2] * X.shape[-1])


def multi_head_attention(
    X: ArrayLike,
    W_q: ArrayLike,
    W_k: ArrayLike,
    W_v: ArrayLike,
    W_o: ArrayLike,
    n_heads: int,
    mask: ArrayLike | None = None,
    causal: bool = False,
) -> tuple[Array, Array]:
    """Several attention averages in parallel, each on its own learned view of the tokens.

    Formula: ``Q = X W_q, K = X W_k, V = X W_v``, split into heads, ``attention`` per head,
    heads merged, then ``out = merged W_o``. Shapes: X (..., n, d), W_* (d, d), mask broadcastable
    to (..., n_heads, n, n) -> out (..., n, d) and weights (..., n_heads, n, n).

    >>> X, W = np.eye(2), np.eye(2)
    >>> out, A = multi_head_attention(X, W, W, W, W, n_heads=2)
    >>> out.shape, A.shape
    ((2, 2), (2, 2, 2))
    """
    X = as_array(X)
    Q, K, V = (split_heads(X @ as_array(W), n_heads) for W in (W_q, W_k, W_v))
    heads, A = attention(Q, K, V, mask, causal)  # (..., h, n, d_head), (..., h, n, n)
    return merge_heads(heads) @ as_array(W_o), A


@dataclass(frozen=True)
class Complexity:
    """Measured attention times: sequence lengths, best time per length, fitted log-log slope."""

    ns: tuple[int, ...]
    seconds: tuple[float, ...]
    exponent: float


def attention_in_tiles(Q: ArrayLike, K: ArrayLike, V: ArrayLike, tile: int = 8192) -> Array:
    """The same output as ``attention``, computed a few query rows at a time.

    Every query still meets every key (n_q * n_k scores: the arithmetic is unchanged), but only
    about ``tile`` scores exist at once instead of an n_q x n_k matrix: the idea behind
    FlashAttention, minus the fused kernel. Shapes: (n_q, d), (n_k, d), (n_k, d_v) -> (n_q, d_v).

    >>> Q, K, V = np.random.default_rng(0).standard_normal((3, 50, 4))
    >>> bool(np.allclose(attention_in_tiles(Q, K, V, tile=64), attention(Q, K, V)[0]))
    True
    """
    Q, K, V = as_array(Q), as_array(K), as_array(V)
    rows = max(1, tile // K.shape[-2])
    blocks = [attention(Q[i : i + rows], K, V)[0] for i in range(0, Q.shape[-2], rows)]
    return np.concatenate(blocks, axis=-2)


def time_attention(Q: Array, K: Array, V: Array, tiled: bool = True) -> float:
    """The CPU time this thread spends on one attention call, in seconds.

    CPU time, not wall time: on a busy machine other processes delay the work but do not add to
    it. Tiled by default, because the untiled n x n temporaries outgrow the caches and make the
    allocator page-fault at large n: that is real (attention's memory is O(n^2) too) but it bends
    the curve to about n^2.5 on a small machine and hides the arithmetic we want to see.

    >>> time_attention(*np.ones((3, 32, 4))) >= 0
    True
    """
    start = time.thread_time()
    _ = attention_in_tiles(Q, K, V) if tiled else attention(Q, K, V)
    return time.thread_time() - start


def fit_exponent(ns: ArrayLike, seconds: ArrayLike) -> float:
    """The k in ``time ~ c n^k``: the slope of the straight line through (log n, log time).

    >>> fit_exponent([1, 2, 4, 8], [3.0, 12.0, 48.0, 192.0])
    2.0
    """
    slope, _ = np.polyfit(np.log(as_array(ns)), np.log(as_array(seconds)), deg=1)
    return round(float(slope), 12)


def measure_complexity(
    ns: tuple[int, ...] = (256, 512, 1024, 2048),
    d: int = 16,
    repeats: int = 5,
    tiled: bool = True,
) -> Complexity:
    """Time attention at growing n and fit the exponent: about 2, because every token meets every
    other one (an n x n score matrix, then an n x n softmax).

    A small d keeps the n^2 work (scores, softmax) dominant over the n*d work (reading Q, K, V).
    Each size keeps its best (minimum) time over ``repeats``: noise only ever adds time.

    >>> c = measure_complexity(ns=(64, 128), repeats=1)
    >>> c.ns, len(c.seconds)
    ((64, 128), 2)
    """
    rng = np.random.default_rng(0)
    inputs = [rng.standard_normal((3, n, d)) for n in ns]
    best = [np.inf] * len(ns)
    for _ in range(repeats):  # sizes interleaved: a busy spell slows all of them, not just one
        for i, (Q, K, V) in enumerate(inputs):
            best[i] = min(best[i], time_attention(Q, K, V, tiled))
    seconds = tuple(float(t) for t in best)
    return Complexity(tuple(ns), seconds, fit_exponent(ns, seconds))
