"""The one array type primer_math speaks: float64 numpy arrays.

Everything is computed in float64 so the results can be compared with torch and scipy at 1e-8 and
below; callers may pass lists, float32 arrays or anything numpy can read.
"""

from typing import Any

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]
ArrayLike = npt.ArrayLike
Mask = npt.NDArray[np.bool_]
Index = npt.NDArray[np.intp]


def as_array(x: ArrayLike) -> Array:
    """Read anything array-like as a float64 array (no copy when it already is one).

    >>> as_array([1, 2]).dtype
    dtype('float64')
    """
    return np.asarray(x, dtype=np.float64)


def as_float(x: Any) -> float:
    """A numpy scalar (or 0-d array) as a plain Python float, so results print and serialise simply.

    >>> as_float(np.float64(0.5))
    0.5
    """
    return float(np.asarray(x))
