"""Softmax as a vote: scores (logits) in, shares of one vote out.

A language model ends every step with one score per token in its vocabulary. Softmax turns the
scores into probabilities that sum to 1; temperature decides how decisive the vote is; top-k and
top-p (nucleus) decide which candidates may be sampled at all; entropy says how undecided the
vote still is.
"""

import numpy as np

from primer_math.arrays import Array, ArrayLike, Index, Mask, as_array, as_float


def softmax(logits: ArrayLike, temperature: float = 1.0, axis: int = -1) -> Array:
    """Turn scores into a vote: each option gets exp(score / T), and the shares sum to 1.

    Temperature is how decisive the crowd is: T -> 0 gives every vote to the top score, a large T
    spreads the votes evenly. Subtracting the max changes nothing (only differences between scores
    matter) but keeps exp() from overflowing; it is done before dividing by T so that even huge
    finite logits and tiny temperatures stay finite.

    Formula: ``p_i = exp((z_i - max z) / T) / sum_j exp((z_j - max z) / T)``.
    Shapes: (..., n) -> (..., n) along ``axis``.

    >>> softmax(np.array([2.0, 1.0, 0.1])).round(2)
    array([0.66, 0.24, 0.1 ])
    >>> softmax([2.0, 1.0, 0.1], temperature=0.1).round(2)
    array([1., 0., 0.])
    """
    e = np.exp(_centered(logits, temperature, axis))
    return as_array(e / e.sum(axis=axis, keepdims=True))


def log_softmax(logits: ArrayLike, temperature: float = 1.0, axis: int = -1) -> Array:
    """The log of the vote shares, computed without ever taking log of a tiny number.

    Cross-entropy needs ``log p``; ``log(softmax(z))`` underflows to -inf when a share is below
    1e-308, while subtracting the log-sum-exp stays exact.

    Formula: ``log p_i = (z_i - m) / T - log sum_j exp((z_j - m) / T)`` with ``m = max z``.
    Shapes: (..., n) -> (..., n) along ``axis``.

    >>> log_softmax([0.0, 0.0]).round(4)
    array([-0.6931, -0.6931])
    >>> log_softmax([0.0, 1000.0])  # softmax would give log(0) = -inf here
    array([-1000.,     0.])
    """
    c = _centered(logits, temperature, axis)
    return as_array(c - np.log(np.exp(c).sum(axis=axis, keepdims=True)))


def _centered(logits: ArrayLike, temperature: float, axis: int) -> Array:
    """``(z - max z) / T``: every entry <= 0 and the winner exactly 0, so exp() cannot overflow."""
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    z = as_array(logits)
    with np.errstate(over="ignore"):  # a gap beyond float range becomes -inf, and exp(-inf) = 0
        centered: Array = z - z.max(axis=axis, keepdims=True)
        return centered if temperature == 1.0 else as_array(centered / temperature)


def entropy(probs: ArrayLike, axis: int = -1) -> Array:
    """How undecided a vote is, in nats: 0 for a unanimous vote, log(n) for an even split.

    Formula: ``H(p) = -sum_i p_i log p_i`` with ``0 log 0 = 0``. Shapes: (..., n) -> (...).

    >>> round(float(entropy([0.5, 0.5])), 4), float(entropy([1.0, 0.0]))
    (0.6931, 0.0)
    """
    p = as_array(probs)
    terms = np.where(p > 0, -p * np.log(np.where(p > 0, p, 1.0)), 0.0)
    return np.asarray(terms.sum(axis=axis))


def top_k_mask(probs: ArrayLike, k: int) -> Mask:
    """Keep only the k highest-scoring candidates (ties go to the lower index).

    Shapes: (n,) -> (n,), True = kept.

    >>> top_k_mask([0.1, 0.6, 0.3], k=2)
    array([False,  True,  True])
    """
    p = as_array(probs)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    keep = np.zeros(p.shape, dtype=bool)
    keep[np.argsort(-p, kind="stable")[:k]] = True
    return keep


def top_p_mask(probs: ArrayLike, p: float) -> Mask:
    """Nucleus: the fewest top candidates whose shares add up to at least p (the top one always).

    A confident vote keeps few candidates, an undecided one keeps many: the cut adapts to the
    shape of the distribution, which a fixed k cannot. Formula: sort shares in decreasing order and
    keep candidate i while the mass strictly before it is below p. Shapes: (n,) -> (n,).

    >>> top_p_mask([0.66, 0.24, 0.10], p=0.8)
    array([ True,  True, False])
    """
    if not 0 < p <= 1:
        raise ValueError(f"p must be in (0, 1], got {p}")
    probs = as_array(probs)
    order = np.argsort(-probs, kind="stable")
    mass_before = np.cumsum(probs[order]) - probs[order]
    keep = np.zeros(probs.shape, dtype=bool)
    keep[order[mass_before < p]] = True
    return keep


def renormalize(probs: ArrayLike, keep: Mask) -> Array:
    """Drop the candidates outside ``keep`` and share their votes among the rest, pro rata.

    Formula: ``q_i = p_i [i kept] / sum_j p_j [j kept]``. Shapes: (n,), (n,) -> (n,).

    >>> renormalize([0.5, 0.3, 0.2], np.array([True, True, False]))
    array([0.625, 0.375, 0.   ])
    """
    q = np.where(keep, as_array(probs), 0.0)
    return as_array(q / q.sum())


def sampling_distribution(
    logits: ArrayLike,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
) -> tuple[Array, Index]:
    """What a sampler actually draws from: temperature, then top-k, then top-p, renormalised.

    The order (T, then k, then p on the renormalised survivors) follows the usual LLM samplers
    (Hugging Face ``generate``). Shapes: (n,) -> probabilities (n,) with zeros outside the kept
    set, and the kept indices (best first).

    >>> probs, kept = sampling_distribution([2.0, 1.0, 0.1], top_p=0.8)
    >>> probs.round(3), kept
    (array([0.731, 0.269, 0.   ]), array([0, 1]))
    """
    probs = softmax(logits, temperature)
    keep = np.ones(probs.shape, dtype=bool)
    if top_k is not None:
        keep &= top_k_mask(probs, top_k)
        probs = renormalize(probs, keep)
    if top_p is not None:
        keep &= top_p_mask(probs, top_p)
        probs = renormalize(probs, keep)
    idx = np.flatnonzero(keep)
    return probs, idx[np.argsort(-probs[idx], kind="stable")]


def temperature_sweep(logits: ArrayLike, temperatures: ArrayLike) -> Array:
    """The same vote at several temperatures, one row per T: from argmax-like to near-uniform.

    Shapes: (n,), (t,) -> (t, n).

    >>> temperature_sweep([2.0, 1.0, 0.1], [0.1, 1.0, 1.5]).round(2)
    array([[1.  , 0.  , 0.  ],
           [0.66, 0.24, 0.1 ],
           [0.56, 0.29, 0.16]])
    """
    return np.stack([softmax(logits, as_float(t)) for t in as_array(temperatures)])
