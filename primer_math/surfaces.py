"""Three 2-D landscapes to roll a ball down, each with its loss and its exact gradient.

- ``bowl``: a stretched quadratic valley, ``0.5 (x^2 + 10 y^2)``. Steep across, gentle along: a
  learning rate above 2/10 makes plain gradient descent bounce out of it.
- ``rosenbrock``: a curved, flat-bottomed banana valley, ``(1 - x)^2 + 100 (y - x^2)^2``; finding
  the valley is easy, following it to (1, 1) is slow.
- ``saddle``: ``x^2 - y^2 + y^4 / 4``, a saddle at the origin between two minima at (0, +-sqrt 2);
  started near the ridge, descent lingers on the saddle before it rolls off to one side.

Each function takes points of shape (..., 2) so one call evaluates a whole plotting grid.
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from primer_math.arrays import Array, ArrayLike, as_array

BOWL_STEEPNESS = 10.0


def bowl(p: ArrayLike) -> Array:
    """Height of the stretched bowl: ``0.5 (x^2 + 10 y^2)``. Shapes: (..., 2) -> (...).

    >>> bowl([1.0, 1.0])
    array(5.5)
    """
    x, y = np.moveaxis(as_array(p), -1, 0)
    return np.asarray(0.5 * (x**2 + BOWL_STEEPNESS * y**2))


def bowl_grad(p: ArrayLike) -> Array:
    """Slope of the bowl: ``(x, 10 y)``. Shapes: (..., 2) -> (..., 2).

    >>> bowl_grad([1.0, 1.0])
    array([ 1., 10.])
    """
    x, y = np.moveaxis(as_array(p), -1, 0)
    return np.stack([x, BOWL_STEEPNESS * y], axis=-1)


def rosenbrock(p: ArrayLike) -> Array:
    """Height of the banana valley: ``(1 - x)^2 + 100 (y - x^2)^2``, zero at (1, 1).

    >>> rosenbrock([1.0, 1.0]), rosenbrock([0.0, 0.0])
    (array(0.), array(1.))
    """
    x, y = np.moveaxis(as_array(p), -1, 0)
    return np.asarray((1 - x) ** 2 + 100 * (y - x**2) ** 2)


def rosenbrock_grad(p: ArrayLike) -> Array:
    """Slope of the banana valley: ``(-2 (1 - x) - 400 x (y - x^2), 200 (y - x^2))``.

    >>> rosenbrock_grad([0.0, 0.0])
    array([-2.,  0.])
    """
    x, y = np.moveaxis(as_array(p), -1, 0)
    return np.stack([-2 * (1 - x) - 400 * x * (y - x**2), 200 * (y - x**2)], axis=-1)


def saddle(p: ArrayLike) -> Array:
    """Height of the saddle landscape: ``x^2 - y^2 + y^4 / 4``; minima -1 at (0, +-sqrt 2).

    >>> saddle([0.0, 0.0]), saddle([0.0, np.sqrt(2)]).round(12)
    (array(0.), np.float64(-1.0))
    """
    x, y = np.moveaxis(as_array(p), -1, 0)
    return np.asarray(x**2 - y**2 + y**4 / 4)


def saddle_grad(p: ArrayLike) -> Array:
    """Slope of the saddle landscape: ``(2 x, -2 y + y^3)``, zero at the saddle and the minima.

    >>> saddle_grad([1.0, 1.0])
    array([ 2., -1.])
    """
    x, y = np.moveaxis(as_array(p), -1, 0)
    return np.stack([2 * x, -2 * y + y**3], axis=-1)


@dataclass(frozen=True)
class Surface:
    """A landscape: its height, its slope, a start point, its lowest point and a plotting window."""

    name: str
    f: Callable[[ArrayLike], Array]
    grad: Callable[[ArrayLike], Array]
    start: tuple[float, float]
    minimum: tuple[float, float]
    window: tuple[float, float, float, float]  # x_min, x_max, y_min, y_max


SURFACES: dict[str, Surface] = {
    "bowl": Surface("bowl", bowl, bowl_grad, (-4.0, 1.5), (0.0, 0.0), (-5, 5, -2.5, 2.5)),
    "rosenbrock": Surface(
        "rosenbrock", rosenbrock, rosenbrock_grad, (-1.2, 1.0), (1.0, 1.0), (-2, 2, -1, 3)
    ),
    "saddle": Surface(
        "saddle", saddle, saddle_grad, (1.5, 0.01), (0.0, float(np.sqrt(2))), (-2, 2, -2.2, 2.2)
    ),
}


def surface(name: str) -> Surface:
    """Look a landscape up by name (``bowl``, ``rosenbrock``, ``saddle``).

    >>> surface("bowl").minimum
    (0.0, 0.0)
    """
    if name not in SURFACES:
        raise KeyError(f"unknown surface {name!r}; known: {', '.join(SURFACES)}")
    return SURFACES[name]
