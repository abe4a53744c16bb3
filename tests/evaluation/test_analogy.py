"""The batched analogy formulas agree with a per-question loop and with the engine's own
`indexer.analogy.analogy` (fast here with the hash embedder; with the real model in
test_real_data.py)."""

from __future__ import annotations

import numpy as np
import pytest

from indexer import Engine, analogy
from indexer.evaluation.analogy import METHODS, top_candidates
from indexer.evaluation.backend import EngineBackend


def unit_rows(n: int, d: int, seed: int) -> np.ndarray:
    X = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    return X / np.linalg.norm(X, axis=1, keepdims=True)


def loop_reference(U: np.ndarray, q: np.ndarray, method: str) -> np.ndarray:
    """One question at a time, in float64, straight from the formulas."""
    out = []
    for a, a_star, b in q:
        cos = U.astype(np.float64) @ U[[a, a_star, b]].astype(np.float64).T  # (V, 3)
        if method == "3cosadd":
            s = cos[:, 1] + cos[:, 2] - cos[:, 0]
        elif method == "3cosmul":
            s = (cos[:, 1] + 1) / 2 * (cos[:, 2] + 1) / 2 / ((cos[:, 0] + 1) / 2 + 1e-3)
        else:
            s = cos[:, 2].copy()
        s[[a, a_star, b]] = -np.inf
        out.append(int(np.argmax(s)))
    return np.array(out)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("full_matrix", [True, False])
def test_batched_matches_a_per_question_loop(
    method: str, full_matrix: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not full_matrix:  # the chunked matmul path used for big vocabularies
        monkeypatch.setattr("indexer.evaluation.analogy.FULL_MATRIX_LIMIT", 0)
    U = unit_rows(300, 16, seed=1)
    q = np.random.default_rng(2).choice(300, size=(500, 3), replace=True)
    q = q[(q[:, 0] != q[:, 1]) & (q[:, 1] != q[:, 2]) & (q[:, 0] != q[:, 2])]
    got = top_candidates(U, q, method, chunk=64)
    want = loop_reference(U, q, method)
    assert (got == want).mean() > 0.99  # float32 vs float64 may swap a near-tie, rarely
    assert all(g not in row for g, row in zip(got, q, strict=True))  # inputs never answer


def test_no_candidate_left_is_minus_one() -> None:
    U = unit_rows(3, 4, seed=0)
    assert top_candidates(U, np.array([[0, 1, 2]]), "3cosadd").tolist() == [-1]


def test_unknown_method_is_refused() -> None:
    with pytest.raises(ValueError, match="method must be one of"):
        top_candidates(unit_rows(4, 2, 0), np.array([[0, 1, 2]]), "3cosfoo")


def test_batched_agrees_with_indexer_analogy_on_a_words_collection(engine: Engine) -> None:
    words = [f"w{i} {w}" for i, w in enumerate(["cat", "dog", "ox", "sun", "moon", "king"])]
    words += [f"word{i}" for i in range(60)]
    backend = EngineBackend(engine)
    col = backend.words_collection(words)
    labels, unit = col.unit_vectors()
    order = [col.id_by_label[int(lab)] for lab in labels]
    q = np.array([np.random.default_rng(i).choice(len(order), 3, replace=False) for i in range(40)])
    for method in ("3cosadd", "3cosmul"):
        batched = top_candidates(unit, q, method)
        for (a, a_star, b), top in zip(q, batched, strict=True):
            r = analogy(col, [order[a_star], order[b]], [order[a]], k=1, method=method)
            assert r.hits[0].id == order[top]
    # the same vectors, in the order asked
    np.testing.assert_allclose(backend.word_vectors(order[:5]), unit[:5], atol=1e-6)
