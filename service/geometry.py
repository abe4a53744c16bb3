"""Pairwise geometry of embedded texts: the four ways to compare two arrows.

For n vectors X (n, d): dot = X Xᵀ; cosine = dot / (|a||b|); L2 = sqrt(|a|² + |b|² − 2 a·b);
angle = arccos(cosine). Checked in the tests against `primer_math.vectors`, one pair at a time.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

Matrix = NDArray[np.float64]


def pairwise(X: NDArray[np.floating]) -> dict[str, Matrix]:
    """(n, d) -> {'cosine', 'l2', 'dot', 'angle_degrees'}, each (n, n).

    >>> m = pairwise(np.array([[1.0, 0.0], [1.0, 1.0]]))
    >>> round(float(m["cosine"][0, 1]), 4), round(float(m["angle_degrees"][0, 1]), 1)
    (0.7071, 45.0)
    >>> float(m["l2"][0, 1]), float(m["dot"][1, 1])
    (1.0, 2.0)
    """
    X = np.asarray(X, dtype=np.float64)
    dot = X @ X.T  # (n, n)
    sq = np.diag(dot)  # (n,) squared lengths
    lengths = np.sqrt(sq)
    denom = np.outer(lengths, lengths)
    cosine = np.clip(dot / np.where(denom == 0, 1.0, denom), -1.0, 1.0)
    np.fill_diagonal(cosine, np.where(lengths > 0, 1.0, 0.0))  # a·a/|a|² is 1, not 0.9999999
    l2 = np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2 * dot, 0.0))
    np.fill_diagonal(l2, 0.0)  # exact zero, not rounding noise
    angle = np.degrees(np.arccos(cosine))
    return {"cosine": cosine, "l2": l2, "dot": dot, "angle_degrees": angle}
