"""Every metric x index kind against a brute-force numpy reference, on real sentence embeddings."""

from __future__ import annotations

import numpy as np
import pytest

from indexer import DocumentIn, Engine, Query, Settings

pytestmark = pytest.mark.model
METRICS = ["cosine", "l2", "dot"]
ANN_RECALL = {"hnsw": 0.95, "ivf": 0.95, "sq8": 0.95, "ivfpq": 0.90}
K = 10


def reference_scores(metric: str, corpus: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """(n_queries, n_corpus) scores in float64, oriented so that higher is better."""
    c64, q64 = corpus.astype(np.float64), queries.astype(np.float64)
    if metric == "cosine":
        c64 = c64 / np.linalg.norm(c64, axis=1, keepdims=True)
        q64 = q64 / np.linalg.norm(q64, axis=1, keepdims=True)
        scores = q64 @ c64.T
    elif metric == "dot":
        scores = q64 @ c64.T
    else:
        scores = -np.sqrt(((q64[:, None, :] - c64[None, :, :]) ** 2).sum(-1))
    return scores


def brute_force(
    metric: str, corpus: np.ndarray, queries: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top-k ids and scores, best first (cosine/dot: higher is better; l2 distance: lower), and
    the full score matrix (higher is better) to judge ties."""
    scores = reference_scores(metric, corpus, queries)
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    best = np.take_along_axis(scores, top, axis=1)
    return top, (-best if metric == "l2" else best), scores


def assert_same_ranking(got: list[str], want: np.ndarray, row: np.ndarray) -> None:
    """Identical ids, except that two documents with the same score (duplicate texts give
    identical vectors) may swap places."""
    for pos, (g, w) in enumerate(zip(got, want, strict=True)):
        assert g == str(w) or abs(row[int(g)] - row[int(w)]) < 1e-5, f"rank {pos}: {g} != {w}"


@pytest.fixture(scope="module")
def data(short_text_vectors):  # type: ignore[no-untyped-def]
    _, vectors = short_text_vectors
    return vectors[:3000], vectors[3000:3200]


def build(tmp_path, metric: str, kind: str, corpus: np.ndarray):  # type: ignore[no-untyped-def]
    engine = Engine(Settings(data_dir=tmp_path, embedder="hash-384"))
    col = engine.create_collection("c", metric=metric, index=kind, dim=corpus.shape[1])
    col.upsert([DocumentIn(id=str(i), vector=v) for i, v in enumerate(corpus)])
    return engine, col


@pytest.mark.parametrize("metric", METRICS)
def test_flat_equals_brute_force(tmp_path, data, metric: str) -> None:  # type: ignore[no-untyped-def]
    corpus, queries = data
    engine, col = build(tmp_path, metric, "flat", corpus)
    ids, scores, full = brute_force(metric, corpus, queries, K)
    for q, want_ids, want_scores, row in zip(queries, ids, scores, full, strict=True):
        hits = col.search(Query(vector=q, k=K))
        assert_same_ranking([h.id for h in hits], want_ids, row)
        np.testing.assert_allclose([h.score for h in hits], want_scores, rtol=1e-4, atol=1e-4)
    engine.close()


@pytest.mark.parametrize("kind", sorted(ANN_RECALL))
@pytest.mark.parametrize("metric", METRICS)
def test_ann_recall_at_default_parameters(tmp_path, data, metric: str, kind: str) -> None:  # type: ignore[no-untyped-def]
    corpus, queries = data
    engine, col = build(tmp_path, metric, kind, corpus)
    assert col.describe()["ann"]["built"], "the ANN index must really be in use"
    ids, scores, full = brute_force(metric, corpus, queries, K)
    recall = []
    for q, want_ids, want_scores, row in zip(queries, ids, scores, full, strict=True):
        hits = col.search(Query(vector=q, k=K))
        assert len(hits) == K
        got = [h.score for h in hits]
        assert got == sorted(got, reverse=metric != "l2"), "hits must be ordered best first"
        recall.append(len({h.id for h in hits} & {str(i) for i in want_ids}) / K)
        # scores are exact (re-ranked against the stored vectors), whatever the index kind
        exact_hits = col.search(Query(vector=q, k=K, exact=True))
        assert_same_ranking([h.id for h in exact_hits], want_ids, row)
        np.testing.assert_allclose([h.score for h in exact_hits], want_scores, rtol=1e-4, atol=1e-4)
    assert np.mean(recall) >= ANN_RECALL[kind], f"{kind}/{metric} recall@10 {np.mean(recall):.3f}"
    engine.close()
