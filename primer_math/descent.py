"""Gradient descent as rolling downhill, and the three refinements every trainer uses.

The gradient points uphill; a step of size ``lr`` the other way lowers the loss, if ``lr`` is
small enough. Momentum lets the ball keep its speed through flat stretches and damps the zig-zag
across narrow valleys. Adam gives every coordinate its own step size, scaled by how large its
gradients have recently been. AdamW shrinks the weights directly ("decoupled" weight decay) instead
of folding the decay into the gradient, where Adam's rescaling would blunt it.

Each step function follows ``torch.optim`` exactly (same defaults, same update order), so a whole
trajectory matches torch to rounding error; the tests hold them to 1e-8 over 100 steps.
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from primer_math.arrays import Array, ArrayLike, as_array
from primer_math.surfaces import Surface, surface

OPTIMIZERS = ("sgd", "momentum", "adam", "adamw")
Step = Callable[[Array, Array], Array]  # (params, grad) -> new params; state lives in the closure

# Learning rates that reach the bottom of each surface in a few hundred steps (found by a sweep over
# 1e-4..0.3 with 1000 steps); ten times smaller crawls, a few times larger bounces or flies off.
SUGGESTED_LR: dict[str, dict[str, float]] = {
    "bowl": {"sgd": 0.1, "momentum": 0.03, "adam": 0.1, "adamw": 0.1},
    "rosenbrock": {"sgd": 0.003, "momentum": 0.001, "adam": 0.1, "adamw": 0.1},
    "saddle": {"sgd": 0.05, "momentum": 0.01, "adam": 0.05, "adamw": 0.05},
}


def sgd_step(params: ArrayLike, grad: ArrayLike, lr: float, weight_decay: float = 0.0) -> Array:
    """One step straight downhill: move against the gradient, ``lr`` times its size.

    Formula (``torch.optim.SGD``): ``g <- g + wd * p``; ``p <- p - lr * g``. Shapes: any, same.

    >>> sgd_step([1.0, 2.0], [0.5, -1.0], lr=0.1)
    array([0.95, 2.1 ])
    """
    g = as_array(grad) + weight_decay * as_array(params)
    return as_array(params) - lr * g


def momentum_step(
    params: ArrayLike,
    grad: ArrayLike,
    velocity: ArrayLike,
    lr: float,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
) -> tuple[Array, Array]:
    """A heavy ball: the velocity remembers past gradients, so steps build up along a steady slope.

    Formula (``torch.optim.SGD(momentum=mu)``, no dampening): ``g <- g + wd * p``;
    ``v <- mu * v + g`` (``v = 0`` at first); ``p <- p - lr * v``. Returns (params, velocity).

    >>> p, v = momentum_step([1.0], [1.0], velocity=[0.0], lr=0.1)
    >>> p, v = momentum_step(p, [1.0], v, lr=0.1)  # same slope, longer stride: 0.19 not 0.1
    >>> p.round(2), v
    (array([0.71]), array([1.9]))
    """
    g = as_array(grad) + weight_decay * as_array(params)
    v = momentum * as_array(velocity) + g
    return as_array(params) - lr * v, v


@dataclass(frozen=True)
class AdamState:
    """Adam's memory: running means of gradients ``m`` and squared gradients ``v``, step count."""

    m: Array
    v: Array
    t: int = 0


def adam_init(params: ArrayLike) -> AdamState:
    """Empty memory: zero means, step 0. Shapes: params (...) -> m, v (...).

    >>> adam_init([1.0, 2.0]).m
    array([0., 0.])
    """
    zeros = np.zeros_like(as_array(params))
    return AdamState(zeros, zeros.copy(), 0)


def adam_step(
    params: ArrayLike,
    grad: ArrayLike,
    state: AdamState,
    lr: float = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
) -> tuple[Array, AdamState]:
    """A per-coordinate step size: divide the average slope by its typical size.

    Where gradients are large, steps shrink; where they are tiny, steps grow: each coordinate moves
    about ``lr`` per step whatever its scale. The bias corrections undo the zero start of m and v.

    Formula (``torch.optim.Adam``): ``g <- g + wd * p``; ``m <- b1 m + (1 - b1) g``;
    ``v <- b2 v + (1 - b2) g^2``; ``p <- p - (lr / (1 - b1^t)) m / (sqrt(v / (1 - b2^t)) + eps)``.

    >>> p, s = adam_step([1.0, 1.0], [100.0, 0.001], adam_init([0.0, 0.0]), lr=0.1)
    >>> p.round(4)  # both coordinates move by lr, however different their gradients
    array([0.9, 0.9])
    """
    p, g = as_array(params), as_array(grad) + weight_decay * as_array(params)
    (b1, b2), t = betas, state.t + 1
    m = b1 * state.m + (1 - b1) * g
    v = b2 * state.v + (1 - b2) * g * g
    denom = np.sqrt(v) / np.sqrt(1 - b2**t) + eps
    return p - (lr / (1 - b1**t)) * m / denom, AdamState(m, v, t)


def adamw_step(
    params: ArrayLike,
    grad: ArrayLike,
    state: AdamState,
    lr: float = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 1e-2,
) -> tuple[Array, AdamState]:
    """Adam plus a steady pull of every weight toward zero, applied to the weights themselves.

    Formula (``torch.optim.AdamW``): ``p <- p (1 - lr * wd)``, then the Adam step without weight
    decay in the gradient.

    >>> p, s = adamw_step([1.0], [0.0], adam_init([0.0]), lr=0.1, weight_decay=0.5)
    >>> p  # zero gradient: only the decay acts, 1 * (1 - 0.1 * 0.5)
    array([0.95])
    """
    shrunk = as_array(params) * (1 - lr * weight_decay)
    return adam_step(shrunk, grad, state, lr, betas, eps, weight_decay=0.0)


def make_step(
    optimizer: str,
    lr: float,
    momentum: float = 0.9,
    betas: tuple[float, float] = (0.9, 0.999),
    weight_decay: float | None = None,
) -> Step:
    """An optimizer by name, as one ``step(params, grad) -> params`` function that keeps its state.

    ``weight_decay`` defaults as in torch: 0, except 1e-2 for AdamW.

    >>> step = make_step("momentum", lr=0.1)
    >>> step(np.array([1.0]), np.array([1.0])), step(np.array([0.9]), np.array([1.0]))
    (array([0.9]), array([0.71]))
    """
    wd = weight_decay if weight_decay is not None else (1e-2 if optimizer == "adamw" else 0.0)
    if optimizer == "sgd":
        return lambda p, g: sgd_step(p, g, lr, wd)
    if optimizer == "momentum":
        return _with_velocity(lr, momentum, wd)
    if optimizer in ("adam", "adamw"):
        return _with_adam_state(adam_step if optimizer == "adam" else adamw_step, lr, betas, wd)
    raise KeyError(f"unknown optimizer {optimizer!r}; known: {', '.join(OPTIMIZERS)}")


def _with_velocity(lr: float, momentum: float, weight_decay: float) -> Step:
    """``momentum_step`` as a Step whose velocity lives in the closure (zero at first)."""
    velocity: Array | None = None

    def step(p: Array, g: Array) -> Array:
        nonlocal velocity
        v = np.zeros_like(p) if velocity is None else velocity
        p, velocity = momentum_step(p, g, v, lr, momentum, weight_decay)
        return p

    return step


def _with_adam_state(
    update: Callable[..., tuple[Array, AdamState]],
    lr: float,
    betas: tuple[float, float],
    weight_decay: float,
) -> Step:
    """``adam_step`` or ``adamw_step`` as a Step whose moments live in the closure."""
    state: AdamState | None = None

    def step(p: Array, g: Array) -> Array:
        nonlocal state
        state = adam_init(p) if state is None else state
        p, state = update(p, g, state, lr, betas, 1e-8, weight_decay)
        return p

    return step


def suggested_lr(surface_name: str, optimizer: str) -> float:
    """A learning rate that works for this optimizer on this surface (see ``SUGGESTED_LR``).

    >>> suggested_lr("rosenbrock", "adam")
    0.1
    """
    return SUGGESTED_LR[surface(surface_name).name][optimizer]


@dataclass(frozen=True)
class Trajectory:
    """Where the ball went: points (steps + 1, 2), the loss at each, and whether it flew off."""

    points: Array
    losses: Array
    diverged: bool


DIVERGED_NORM = 1e6  # beyond this the ball has left any landscape worth drawing


def run(
    surface_name: str,
    optimizer: str,
    lr: float,
    steps: int,
    start: ArrayLike | None = None,
    weight_decay: float | None = None,
) -> Trajectory:
    """Roll down a named surface with a named optimizer, recording every point and loss.

    The run stops early, marked ``diverged``, when the point leaves ``|p| <= 1e6`` or the loss
    overflows, so a too-large learning rate shows as a short, exploding path and never as NaN.

    >>> t = run("bowl", "sgd", lr=0.1, steps=100)
    >>> t.points.shape, bool(t.losses[-1] < 1e-4), t.diverged
    ((101, 2), True, False)
    >>> run("bowl", "sgd", lr=0.25, steps=1000).diverged  # above 2/10: bounces out of the bowl
    True
    """
    s: Surface = surface(surface_name)
    step = make_step(optimizer, lr, weight_decay=weight_decay)
    p = as_array(s.start if start is None else start).copy()
    points, losses, diverged = [p], [float(s.f(p))], False
    with np.errstate(over="ignore", invalid="ignore"):
        for _ in range(steps):
            p = step(p, s.grad(p))
            loss = float(s.f(p))
            if not (np.isfinite(p).all() and np.isfinite(loss)):
                diverged = True
                break
            points.append(p)
            losses.append(loss)
            if np.linalg.norm(p) > DIVERGED_NORM:
                diverged = True
                break
    return Trajectory(np.array(points), np.array(losses), diverged)


def compare_learning_rates(
    surface_name: str, optimizer: str, steps: int = 200, lr: float | None = None
) -> list[tuple[str, Trajectory]]:
    """The same descent at lr / 10, lr and 3 lr: crawling, arriving, overshooting (or worse).

    ``lr`` defaults to the surface's suggested rate for this optimizer.

    >>> [(label, t.diverged) for label, t in compare_learning_rates("bowl", "sgd", steps=100)]
    [('lr=0.01', False), ('lr=0.1', False), ('lr=0.3', True)]
    """
    base = suggested_lr(surface_name, optimizer) if lr is None else lr
    rates = (base / 10, base, 3 * base)
    return [(f"lr={r:.3g}", run(surface_name, optimizer, r, steps)) for r in rates]
