"""The bridge: primer_math's few lines of numpy predict the engine's own search and analogy
results exactly on a seeded data set (same order, same scores up to float32 rounding).

The engine stores float32 vectors and searches them with FAISS; primer_math recomputes the same
quantities in float64 from the same vectors. If the two ever disagree, one of them is wrong.
"""

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from primer_math.vectors import (
    cosine_scores,
    dot_scores,
    l2_distances,
    normalize,
    rank,
    three_cos_add,
    three_cos_mul,
)

indexer = pytest.importorskip("indexer")

N, DIM, K = 300, 24, 10


@pytest.fixture(scope="module")
def seeded() -> tuple[list[str], np.ndarray]:
    rng = np.random.default_rng(20240601)
    vectors = rng.normal(size=(N, DIM)).astype(np.float32)
    return [f"doc{i:03d}" for i in range(N)], vectors


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator["indexer.Engine"]:
    data = Path(tmp_path_factory.mktemp("bridge"))
    eng = indexer.Engine(indexer.Settings(data_dir=data, embedder="hash-384", build_words=False))
    yield eng
    eng.close()


def collection(engine, metric: str, ids: list[str], vectors: np.ndarray):  # type: ignore[no-untyped-def]
    col = engine.create_collection(f"bridge-{metric}", metric=metric, dim=DIM, exist_ok=True)
    docs = [indexer.DocumentIn(id=i, vector=v.tolist()) for i, v in zip(ids, vectors, strict=True)]
    col.upsert(docs)
    return col


@pytest.mark.parametrize(
    ("metric", "predict", "higher_is_better"),
    [("cosine", cosine_scores, True), ("dot", dot_scores, True), ("l2", l2_distances, False)],
)
def test_primer_math_predicts_the_engines_search(
    engine, seeded, metric: str, predict, higher_is_better: bool
) -> None:  # type: ignore[no-untyped-def]
    ids, vectors = seeded
    col = collection(engine, metric, ids, vectors)
    M = vectors.astype(np.float64)
    for q in np.random.default_rng(7).normal(size=(5, DIM)).astype(np.float32):
        hits = col.search(indexer.Query(vector=q.tolist(), k=K, exact=True))
        scores = predict(q.astype(np.float64), M)
        order = rank(scores if higher_is_better else -scores, K)
        assert [h.id for h in hits] == [ids[i] for i in order]
        np.testing.assert_allclose([h.score for h in hits], scores[order], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("method", ["3cosadd", "3cosmul"])
def test_primer_math_predicts_the_engines_analogy(engine, seeded, method: str) -> None:  # type: ignore[no-untyped-def]
    ids, vectors = seeded
    col = collection(engine, "cosine", ids, vectors)
    M = vectors.astype(np.float64)
    a, b, c = 3, 14, 15  # "a is to b as c is to ?" = b - a + c
    result = indexer.analogy(col, positive=[ids[b], ids[c]], negative=[ids[a]], k=K, method=method)
    if method == "3cosadd":
        ours = three_cos_add(M[a], M[b], M[c], M, exclude=[a, b, c])
        # the engine reports the sum of cosines; ours is the cosine to the normalised target
        ours = ours * np.linalg.norm(normalize(M[b]) - normalize(M[a]) + normalize(M[c]))
    else:
        ours = three_cos_mul(M[a], M[b], M[c], M, exclude=[a, b, c])
    order = rank(ours, K)
    assert [h.id for h in result.hits] == [ids[i] for i in order]
    np.testing.assert_allclose([h.score for h in result.hits], ours[order], rtol=1e-5, atol=1e-5)
