"""softmax.py against torch and scipy, the seed's worked example, and its properties."""

import numpy as np
import pytest
import scipy.special
import scipy.stats
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from primer_math.softmax import (
    entropy,
    log_softmax,
    sampling_distribution,
    softmax,
    temperature_sweep,
    top_k_mask,
    top_p_mask,
)

logit_vectors = arrays(
    np.float64,
    st.integers(1, 40),
    elements=st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False),
)


def test_worked_example_from_the_seed() -> None:
    assert softmax([2.0, 1.0, 0.1]).round(2).tolist() == [0.66, 0.24, 0.10]


def test_low_temperature_sharpens_and_high_temperature_flattens() -> None:
    base, cold, warm = (softmax([2.0, 1.0, 0.1], T) for T in (1.0, 0.1, 1.5))
    assert cold[0] > 0.9999 and cold.argmax() == 0
    assert warm.max() < base.max() and warm.min() > base.min()
    assert entropy(cold) < entropy(base) < entropy(warm) < np.log(3)


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_softmax_and_log_softmax_match_torch(rng: np.random.Generator, axis: int) -> None:
    z = rng.normal(scale=5.0, size=(7, 11, 5))
    T = float(rng.uniform(0.2, 3.0))
    zt = torch.from_numpy(z) / T
    np.testing.assert_allclose(softmax(z, T, axis), torch.softmax(zt, axis).numpy(), atol=1e-14)
    np.testing.assert_allclose(
        log_softmax(z, T, axis), torch.log_softmax(zt, axis).numpy(), atol=1e-12
    )


@pytest.mark.parametrize("axis", [0, -1])
def test_softmax_and_log_softmax_match_scipy(rng: np.random.Generator, axis: int) -> None:
    z = rng.normal(scale=30.0, size=(9, 13))
    np.testing.assert_allclose(softmax(z, axis=axis), scipy.special.softmax(z, axis), atol=1e-14)
    np.testing.assert_allclose(
        log_softmax(z, axis=axis), scipy.special.log_softmax(z, axis), atol=1e-12
    )


def test_entropy_matches_scipy(rng: np.random.Generator) -> None:
    p = softmax(rng.normal(size=(4, 10)))
    np.testing.assert_allclose(entropy(p), scipy.stats.entropy(p, axis=-1), atol=1e-13)
    assert entropy([1.0, 0.0, 0.0]) == 0.0


def test_extreme_finite_logits_stay_finite() -> None:
    z = np.array([1e308, -1e308, 0.0])
    assert softmax(z, temperature=1e-3).tolist() == [1.0, 0.0, 0.0]
    assert np.isfinite(log_softmax([0.0, 1e4])).all()


def test_temperature_must_be_positive() -> None:
    with pytest.raises(ValueError, match="temperature"):
        softmax([1.0, 2.0], temperature=0.0)


@settings(max_examples=60, deadline=None)
@given(logit_vectors, st.floats(0.05, 20.0))
def test_softmax_sums_to_one(z: np.ndarray, T: float) -> None:
    p = softmax(z, T)
    assert np.all(p >= 0) and abs(p.sum() - 1.0) < 1e-12


@settings(max_examples=60, deadline=None)
@given(logit_vectors, st.floats(-1e3, 1e3))
def test_softmax_is_shift_invariant(z: np.ndarray, c: float) -> None:
    np.testing.assert_allclose(softmax(z + c), softmax(z), atol=1e-9)
    np.testing.assert_allclose(log_softmax(z + c), log_softmax(z), atol=1e-8)


@settings(max_examples=60, deadline=None)
@given(logit_vectors)
def test_temperature_to_zero_tends_to_argmax(z: np.ndarray) -> None:
    gap = np.sort(z)[-1] - np.sort(z)[-2] if z.size > 1 else 1.0
    if gap < 1e-3:  # a near-tie splits the vote at any temperature; nothing to tend to
        return
    p = softmax(z, temperature=gap / 50)  # the runner-up is at most exp(-50) behind
    assert p.argmax() == z.argmax() and p[z.argmax()] > 1 - z.size * np.exp(-50) - 1e-12


def test_top_k_keeps_the_same_set_as_torch_topk(rng: np.random.Generator) -> None:
    p = softmax(rng.normal(size=50))
    for k in (1, 5, 50):
        expected = set(torch.topk(torch.from_numpy(p), k).indices.tolist())
        assert set(np.flatnonzero(top_k_mask(p, k))) == expected


def torch_top_p_reference(p: np.ndarray, top_p: float) -> np.ndarray:
    """Hugging Face's TopPLogitsWarper rule: drop the low tail whose mass is at most 1 - top_p."""
    sorted_p, idx = torch.sort(torch.from_numpy(p), descending=False)
    remove = torch.cumsum(sorted_p, 0) <= 1 - top_p
    remove[-1] = False  # always keep the top candidate
    keep = torch.ones_like(remove)
    keep[idx[remove]] = False
    return keep.numpy()


@pytest.mark.parametrize("top_p", [0.1, 0.5, 0.9, 0.99])
def test_top_p_matches_the_hugging_face_rule(rng: np.random.Generator, top_p: float) -> None:
    p = softmax(rng.normal(scale=2.0, size=200))
    np.testing.assert_array_equal(top_p_mask(p, top_p), torch_top_p_reference(p, top_p))


def test_top_p_adapts_to_how_decided_the_vote_is() -> None:
    assert top_p_mask(softmax([10.0, 0.0, 0.0, 0.0]), 0.9).sum() == 1
    assert top_p_mask(softmax([0.0, 0.0, 0.0, 0.0]), 0.9).sum() == 4


def test_sampling_distribution_applies_temperature_then_top_k_then_top_p() -> None:
    probs, kept = sampling_distribution([3.0, 2.0, 1.0, 0.0], temperature=2.0, top_k=3, top_p=0.7)
    after_k = softmax([3.0, 2.0, 1.0], 2.0)  # (0.51, 0.31, 0.19): 0.51 + 0.31 >= 0.7
    assert kept.tolist() == [0, 1]
    np.testing.assert_allclose(probs, [*(after_k[:2] / after_k[:2].sum()), 0.0, 0.0])


def test_temperature_sweep_rows_are_softmaxes() -> None:
    rows = temperature_sweep([2.0, 1.0, 0.1], [0.1, 1.0, 1.5])
    np.testing.assert_allclose(rows[1], softmax([2.0, 1.0, 0.1]))
    assert rows.shape == (3, 3)
