"""bench/data.py: held-out queries, exact truth, and a cache that embeds each text once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench import data


def test_queries_are_held_out_and_truth_is_exact(tiny_texts: Path, tmp_path: Path) -> None:
    ds = data.load(n_queries=20, path=tiny_texts, embedder="hash-384", cache=tmp_path / "c")
    assert (len(ds.ids), len(ds.query_texts), ds.dim) == (280, 20, 384)
    assert not set(ds.query_texts) & set(ds.texts)
    assert np.allclose(np.linalg.norm(ds.vectors, axis=1), 1, atol=1e-5)
    scores = ds.queries @ ds.vectors.T  # cosine of unit vectors, brute force
    for row, truth in zip(scores, ds.truth, strict=True):
        assert np.allclose(np.sort(row)[::-1][:10], row[truth], atol=1e-5)


def test_vectors_are_embedded_once_and_a_limit_is_a_prefix(
    tiny_texts: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from indexer import embed

    calls: list[int] = []
    real = embed.load_embedder

    def counting(*args: object, **kwargs: object) -> embed.Embedder:
        inner = real(*args, **kwargs)  # type: ignore[arg-type]

        class Counting:
            name, dim = inner.name, inner.dim

            def embed(self, texts: list[str]) -> np.ndarray:
                calls.append(len(texts))
                return inner.embed(texts)

        return Counting()  # type: ignore[return-value]

    monkeypatch.setattr(embed, "load_embedder", counting)
    monkeypatch.setattr(data, "CHUNK", 50)
    cache = tmp_path / "c"
    small = data.load(limit=100, n_queries=20, path=tiny_texts, embedder="hash-384", cache=cache)
    assert sum(calls) == 150  # the chunks that hold what the limited run needs (120)
    full = data.load(n_queries=20, path=tiny_texts, embedder="hash-384", cache=cache)
    assert sum(calls) == 300  # the rest, once
    data.load(n_queries=20, path=tiny_texts, embedder="hash-384", cache=cache)
    assert sum(calls) == 300  # nothing again
    assert full.ids[:100] == small.ids
    assert np.array_equal(full.queries, small.queries)
