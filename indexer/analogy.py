"""Word analogies over a collection: king − man + woman ≈ queen.

3CosAdd (Mikolov et al. 2013): score(x) = Σ cos(x, p) − Σ cos(x, n), i.e. the cosine of x to
b − a + c up to a constant factor, so it ranks like a search for the normalised sum.
3CosMul (Levy & Goldberg 2014): score(x) = Π s(x, p) / (Π s(x, n) + ε) with s = (cos + 1) / 2,
which keeps one large similarity from drowning the others.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from .collection import Collection
from .errors import InvalidInput

Method = Literal["3cosadd", "3cosmul"]
EPSILON = 1e-3


@dataclass
class AnalogyHit:
    id: str
    score: float
    text: str | None
    metadata: dict[str, Any]
    cosines: dict[str, float] = field(default_factory=dict)


@dataclass
class AnalogyResult:
    method: str
    hits: list[AnalogyHit]
    terms: list[dict[str, Any]]


def analogy(
    col: Collection,
    positive: list[str],
    negative: list[str],
    k: int = 5,
    method: str = "3cosadd",
    exclude_inputs: bool = True,
) -> AnalogyResult:
    if method not in ("3cosadd", "3cosmul"):
        raise InvalidInput("method must be '3cosadd' or '3cosmul'", field="method")
    if not positive:
        raise InvalidInput("positive needs at least one term", field="positive")
    if not 1 <= k <= 1000:
        raise InvalidInput("k must be in [1, 1000]", field="k")
    for name, terms in (("positive", positive), ("negative", negative)):
        for i, t in enumerate(terms):
            if not isinstance(t, str) or not t.strip():
                raise InvalidInput(f"{name}[{i}] must be a non-empty string", field=f"{name}[{i}]")
    labels, unit = col.unit_vectors()
    resolved = [(t, *col.term_vector(t)) for t in positive + negative]
    P = np.stack([v for _, v, _, _ in resolved[: len(positive)]])  # (p, d)
    N = np.stack([v for _, v, _, _ in resolved[len(positive) :]]) if negative else None
    cos_p = unit @ P.T  # (n, p)
    cos_n = unit @ N.T if N is not None else np.zeros((len(unit), 0), np.float32)
    if method == "3cosadd":
        scores = cos_p.sum(axis=1) - cos_n.sum(axis=1)
    else:
        scores = np.prod((cos_p + 1) / 2, axis=1) / (np.prod((cos_n + 1) / 2, axis=1) + EPSILON)
    if exclude_inputs:
        excluded = {t.lower() for t, *_ in resolved} | {d for *_, d in resolved if d}
        for i, lab in enumerate(labels):
            if col.id_by_label.get(int(lab), "").lower() in excluded:
                scores[i] = -np.inf
    order = np.argsort(-scores, kind="stable")[:k]
    order = order[np.isfinite(scores[order])]
    docs = col.store.get_by_labels([int(labels[i]) for i in order])
    names = [t for t, *_ in resolved]
    hits = []
    for i in order:
        d = docs.get(int(labels[i]))
        if d is None:
            continue
        cos = dict(
            zip(names, [float(c) for c in np.concatenate([cos_p[i], cos_n[i]])], strict=True)
        )
        hits.append(AnalogyHit(d.id, float(scores[i]), d.text, d.metadata, cos))
    sources = [{"term": t, "source": src, "document": doc} for t, _, src, doc in resolved]
    return AnalogyResult(method, hits, sources)


_EXPR = re.compile(r"^\s*[+-]?\s*[^+\-\s][^+\-]*(\s*[+-]\s*[^+\-\s][^+\-]*)*$")


def parse_expression(q: str) -> tuple[list[str], list[str]]:
    """'king - man + woman' (or 'king-man+woman') -> (['king', 'woman'], ['man'])."""
    if not _EXPR.match(q):
        raise InvalidInput(f"expression {q!r} must look like 'king - man + woman'", field="q")
    positive: list[str] = []
    negative: list[str] = []
    for sign, term in re.findall(r"([+-]?)\s*([^+\-]+)", q):
        (negative if sign == "-" else positive).append(term.strip())
    if not positive:
        raise InvalidInput(f"expression {q!r} needs at least one positive term", field="q")
    return positive, negative
