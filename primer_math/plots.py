"""Pictures for people who would rather look than read: each function returns PNG bytes.

matplotlib is imported here only, lazily, and drawn with the Agg canvas on a standalone ``Figure``
(no pyplot): no display needed and no global figure state. matplotlib does not promise thread
safety even then (font and text caches are shared), so a server's worker threads draw one picture
at a time.
"""

import functools
import io
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, ParamSpec

import numpy as np

from primer_math.arrays import ArrayLike, as_array
from primer_math.attention import Complexity
from primer_math.descent import Trajectory
from primer_math.softmax import entropy, temperature_sweep
from primer_math.surfaces import surface

if TYPE_CHECKING:
    from matplotlib.figure import Figure

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
P = ParamSpec("P")
_DRAWING = threading.Lock()


def _one_at_a_time(draw: Callable[P, bytes]) -> Callable[P, bytes]:
    """Serialise a drawing function across threads (see the module docstring)."""

    @functools.wraps(draw)
    def serialised(*args: P.args, **kwargs: P.kwargs) -> bytes:
        with _DRAWING:
            return draw(*args, **kwargs)

    return serialised


def _figure(width: float = 7.0, height: float = 4.0) -> "Figure":
    """A blank figure with an Agg canvas attached (matplotlib is imported here, on first use)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig: "Figure") -> bytes:
    """Render a figure to PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


@_one_at_a_time
def softmax_temperature_png(
    logits: ArrayLike,
    temperatures: Sequence[float] = (0.1, 0.5, 1.0, 1.5, 5.0),
    labels: Sequence[str] | None = None,
) -> bytes:
    """The same vote at several temperatures: bars per temperature (left), and each candidate's
    share as T sweeps from 0.05 to 20 (right), with the vote's entropy dashed.

    >>> softmax_temperature_png([2.0, 1.0, 0.1])[:8] == PNG_SIGNATURE
    True
    """
    z = as_array(logits)
    names = list(labels) if labels is not None else [f"z{i}={v:g}" for i, v in enumerate(z)]
    fig = _figure(10, 4)
    bars, curves = fig.subplots(1, 2)
    width = 0.8 / len(temperatures)
    sweep_at = temperature_sweep(z, temperatures)
    for j, (T, probs) in enumerate(zip(temperatures, sweep_at, strict=True)):
        bars.bar(np.arange(len(z)) + j * width, probs, width, label=f"T={T:g}")
    bars.set(xticks=np.arange(len(z)) + 0.4 - width / 2, ylabel="probability", ylim=(0, 1))
    bars.set_xticklabels(names, rotation=30 if len(z) > 6 else 0)
    bars.legend(fontsize="small")
    sweep_T = np.geomspace(0.05, 20, 200)
    sweep = temperature_sweep(z, sweep_T)
    for i, name in enumerate(names[:12]):
        curves.plot(sweep_T, sweep[:, i], label=name)
    if len(z) > 1:  # one option has zero entropy at every T: there is nothing to normalise
        curves.plot(sweep_T, entropy(sweep) / np.log(len(z)), "k--", label="entropy / log n")
    curves.set(xscale="log", xlabel="temperature T", ylabel="probability", ylim=(0, 1))
    curves.legend(fontsize="small")
    fig.suptitle("softmax: low T sharpens toward the argmax, high T flattens toward uniform")
    return _png(fig)


@_one_at_a_time
def attention_heatmap_png(
    weights: ArrayLike, tokens: Sequence[str], title: str = "attention weights"
) -> bytes:
    """Who listens to whom: row i is query token i's vote over the key tokens (rows sum to 1).

    >>> attention_heatmap_png(np.eye(3), ["a", "b", "c"])[:8] == PNG_SIGNATURE
    True
    """
    A = as_array(weights)
    n = A.shape[0]
    fig = _figure(max(4.5, 0.45 * n + 2.5), max(4.0, 0.45 * n + 1.5))
    ax = fig.subplots()
    image = ax.imshow(A, cmap="viridis", vmin=0, vmax=max(float(A.max()), 1e-12))
    ax.set_xticks(range(A.shape[1]), list(tokens)[: A.shape[1]], rotation=60, ha="right")
    ax.set_yticks(range(n), list(tokens)[:n])
    ax.set(xlabel="key (attended to)", ylabel="query (attending)", title=title)
    if n <= 16:
        for (i, j), w in np.ndenumerate(A):
            ax.text(j, i, f"{w:.2f}", ha="center", va="center", fontsize=7,
                    color="black" if w > 0.6 * A.max() else "white")  # fmt: skip
    fig.colorbar(image, ax=ax, shrink=0.8)
    return _png(fig)


@_one_at_a_time
def descent_png(surface_name: str, runs: Sequence[tuple[str, Trajectory]]) -> bytes:
    """Paths of the rolling ball over the surface's contour lines; the star is the minimum.

    >>> from primer_math.descent import run
    >>> descent_png("bowl", [("sgd", run("bowl", "sgd", 0.1, 20))])[:8] == PNG_SIGNATURE
    True
    """
    s = surface(surface_name)
    x0, x1, y0, y1 = s.window
    X, Y = np.meshgrid(np.linspace(x0, x1, 200), np.linspace(y0, y1, 200))
    Z = s.f(np.stack([X, Y], axis=-1))
    fig = _figure(7, 5)
    ax = fig.subplots()
    levels = np.unique(np.quantile(Z, np.linspace(0, 1, 30) ** 2))  # denser near the bottom
    ax.contour(X, Y, Z, levels=levels, cmap="viridis", linewidths=0.7, alpha=0.6)
    for label, t in runs:
        tag = f"{label} ({'diverged' if t.diverged else f'loss {t.losses[-1]:.3g}'})"
        ax.plot(t.points[:, 0], t.points[:, 1], ".-", markersize=3, linewidth=1, label=tag)
    ax.plot(*s.start, "ko", label="start")
    ax.plot(*s.minimum, "r*", markersize=14, label="minimum")
    ax.set(xlim=(x0, x1), ylim=(y0, y1), xlabel="x", ylabel="y", title=f"descent on {s.name}")
    ax.legend(fontsize="small", loc="upper right")
    return _png(fig)


@_one_at_a_time
def complexity_png(result: Complexity) -> bytes:
    """Measured attention time against n on log-log axes: a straight line of slope 2 is n^2.

    >>> c = Complexity((256, 512, 1024), (0.001, 0.004, 0.016), 2.0)
    >>> complexity_png(c)[:8] == PNG_SIGNATURE
    True
    """
    ns, seconds = as_array(result.ns), as_array(result.seconds)
    fig = _figure(6, 4.5)
    ax = fig.subplots()
    ax.loglog(ns, seconds * 1e3, "o", label="measured (best of repeats)")
    k = result.exponent
    c = np.exp(np.mean(np.log(seconds) - k * np.log(ns)))  # the least-squares intercept
    ax.loglog(ns, c * ns**k * 1e3, "-", label=f"fit: time ~ n^{k:.2f}")
    c2 = np.exp(np.mean(np.log(seconds) - 2 * np.log(ns)))
    ax.loglog(ns, c2 * ns**2 * 1e3, ":", color="grey", label="n^2 reference")
    ax.set_xticks(ns, [f"{n:g}" for n in ns])
    ax.minorticks_off()
    ax.set(xlabel="sequence length n", ylabel="milliseconds", title="attention cost grows as n^2")
    ax.legend()
    return _png(fig)
