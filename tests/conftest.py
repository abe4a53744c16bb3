"""Shared fixtures: a hash-embedder engine for fast tests, the real model for the few that need
it, and real sentence embeddings of ../shared/data/short_texts (cached outside the repo)."""

from __future__ import annotations

import gzip
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from indexer import Engine, Settings

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SHARED_DATA", REPO.parent / "shared" / "data"))
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "vector-primer-tests"


def shared_file(*parts: str) -> Path:
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared evaluation data not found at {path} (set SHARED_DATA)")
    return path


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    eng = Engine(Settings(data_dir=tmp_path / "data", embedder="hash-384"))
    yield eng
    eng.close()


@pytest.fixture(scope="session")
def real_embedder():  # type: ignore[no-untyped-def]
    from indexer.embed import load_embedder

    return load_embedder("all-MiniLM-L6-v2")


def _short_texts(n: int, seed: int = 0) -> list[str]:
    path = shared_file("short_texts", "short_texts.tsv.gz")
    with gzip.open(path, "rt", encoding="utf-8") as f:
        rows = [line.rstrip("\n").split("\t") for line in f][1:]
    rng = np.random.default_rng(seed)
    return [rows[i][2] for i in rng.choice(len(rows), n, replace=False)]


@pytest.fixture(scope="session")
def short_text_vectors(real_embedder) -> tuple[list[str], np.ndarray]:  # type: ignore[no-untyped-def]
    """3,200 real texts and their all-MiniLM-L6-v2 embeddings (3,000 corpus + 200 queries)."""
    texts = _short_texts(3200)
    key = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:16]
    cache = CACHE / f"short_texts-{real_embedder.name}-{key}.npy"
    if cache.exists():
        vectors = np.load(cache)
    else:
        vectors = real_embedder.embed(texts)
        CACHE.mkdir(parents=True, exist_ok=True)
        np.save(cache, vectors)
    return texts, vectors
