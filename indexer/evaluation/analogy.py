"""The engine's analogy formulas (`indexer.analogy`), vectorised over many questions at once.

A question "a is to a* as b is to ?" is the engine's analogy with positive = [a*, b] and
negative = [a], scored over every candidate x of the vocabulary with unit vectors:

    3cosadd: cos(x, a*) + cos(x, b) − cos(x, a)
    3cosmul: s(x, a*) · s(x, b) / (s(x, a) + ε),  s = (cos + 1) / 2,  ε = 1e-3
    nn:      cos(x, b)   (the baseline: just the nearest neighbour of b)

with the three inputs excluded. `tests/evaluation` checks that the top candidate agrees with
`indexer.analogy.analogy` on real vectors. For a small vocabulary (BATS: 6,208 strings) the whole
cosine matrix S = U Uᵀ is computed once and each question only gathers three of its rows.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from ..analogy import EPSILON

METHODS = ("3cosadd", "3cosmul", "nn")
# Above this many candidates S = U Uᵀ (V² float32) costs too much memory: multiply per chunk.
FULL_MATRIX_LIMIT = 20_000


def top_candidates(
    unit: NDArray[np.float32],
    questions: NDArray[np.int64],
    method: str,
    chunk: int = 1024,
) -> NDArray[np.int64]:
    """The best candidate (an index into `unit`) for each question, inputs excluded.

    unit: (V, d) unit vectors of the candidate vocabulary; questions: (n, 3) indices a, a*, b.
    Ties go to the lower index, as the engine's stable sort gives them to the lower label;
    -1 when no candidate is left.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, not {method!r}")
    S = unit @ unit.T if len(unit) <= FULL_MATRIX_LIMIT else None  # (V, V) cosines
    out = np.empty(len(questions), dtype=np.int64)
    for start in range(0, len(questions), chunk):
        q = questions[start : start + chunk]  # (c, 3)

        def cos(col: int, q: NDArray[np.int64] = q) -> NDArray[np.float32]:
            """(c, V): cosine of every candidate to input `col` of each question."""
            return S[q[:, col]] if S is not None else unit[q[:, col]] @ unit.T

        if method == "3cosadd":
            scores = (cos(1) + cos(2)) - cos(0)
        elif method == "3cosmul":
            scores = ((cos(1) + 1) / 2) * ((cos(2) + 1) / 2) / ((cos(0) + 1) / 2 + EPSILON)
        else:
            scores = cos(2).copy()
        rows = np.arange(len(q))
        for col in range(3):
            scores[rows, q[:, col]] = -np.inf
        best = np.argmax(scores, axis=1)
        best[~np.isfinite(scores[rows, best])] = -1  # nothing left once the inputs are out
        out[start : start + len(q)] = best
    return out
