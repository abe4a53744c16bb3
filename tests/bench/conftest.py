"""Tiny data for the bench smoke tests: synthetic short texts (no shared data needed), embedded
by the hash embedder, so every script runs end to end in seconds with our own stack only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

WORDS = (
    "cat",
    "dog",
    "mat",
    "rug",
    "car",
    "road",
    "tree",
    "leaf",
    "river",
    "boat",
    "rain",
    "sun",
    "cold",
    "warm",
    "fast",
    "slow",
    "red",
    "blue",
    "green",
    "music",
    "film",
    "book",
    "story",
    "plot",
    "actor",
    "camera",
    "battery",
    "screen",
    "price",
    "cheap",
    "great",
    "poor",
    "sound",
    "light",
)


def write_texts(path: Path, n: int, seed: int = 0) -> Path:
    """`id<TAB>source<TAB>text` with a header, like ../shared/data/short_texts."""
    rng = np.random.default_rng(seed)
    lines = ["id\tsource\ttext"]
    for i in range(n):
        words = rng.choice(WORDS, size=int(rng.integers(3, 9)))
        lines.append(f"{i}\tsynthetic\t{' '.join(words)} {i}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def tiny_texts(tmp_path: Path) -> Path:
    return write_texts(tmp_path / "texts.tsv", 300)
