"""attention.py against torch's scaled_dot_product_attention and MultiheadAttention, its
properties, and the measured O(n^2) growth."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from primer_math.attention import (
    attention,
    attention_in_tiles,
    causal_mask,
    measure_complexity,
    merge_heads,
    multi_head_attention,
    padding_mask,
    self_attention,
    split_heads,
)


def sdpa(Q: np.ndarray, K: np.ndarray, V: np.ndarray, **kwargs: object) -> np.ndarray:
    t = [torch.from_numpy(x) for x in (Q, K, V)]
    mask = kwargs.pop("attn_mask", None)
    if mask is not None:
        kwargs["attn_mask"] = torch.from_numpy(np.asarray(mask))
    return F.scaled_dot_product_attention(*t, **kwargs).numpy()  # type: ignore[arg-type]


def qkv(rng: np.random.Generator, *lead: int, n_q: int, n_k: int, d: int, d_v: int) -> tuple:
    return (
        rng.normal(size=(*lead, n_q, d)),
        rng.normal(size=(*lead, n_k, d)),
        rng.normal(size=(*lead, n_k, d_v)),
    )


@pytest.mark.parametrize("causal", [False, True])
def test_attention_matches_torch_sdpa(rng: np.random.Generator, causal: bool) -> None:
    Q, K, V = qkv(rng, n_q=9, n_k=9, d=16, d_v=7)
    out, _ = attention(Q, K, V, causal=causal)
    np.testing.assert_allclose(out, sdpa(Q, K, V, is_causal=causal), atol=1e-12)


def test_causal_attention_with_more_keys_than_queries_matches_torch(
    rng: np.random.Generator,
) -> None:
    Q, K, V = qkv(rng, 2, n_q=4, n_k=10, d=8, d_v=3)
    out, _ = attention(Q, K, V, causal=True)
    np.testing.assert_allclose(out, sdpa(Q, K, V, is_causal=True), atol=1e-12)


def test_boolean_mask_matches_torch_including_fully_masked_rows(rng: np.random.Generator) -> None:
    Q, K, V = qkv(rng, n_q=6, n_k=8, d=4, d_v=5)
    mask = rng.random((6, 8)) < 0.6
    mask[2] = False  # a query that may look at nothing: torch returns zeros, so must we
    out, A = attention(Q, K, V, mask=mask)
    np.testing.assert_allclose(out, sdpa(Q, K, V, attn_mask=mask), atol=1e-12)
    assert np.all(A[2] == 0) and np.all(A[~mask] == 0)


def test_padding_mask_over_a_batch_matches_torch(rng: np.random.Generator) -> None:
    Q, K, V = qkv(rng, 3, n_q=7, n_k=7, d=8, d_v=8)
    mask = padding_mask([7, 4, 1], 7)  # (3, 1, 7): padded keys are never looked at
    out, A = attention(Q, K, V, mask=mask, causal=True)
    both = mask & causal_mask(7)
    np.testing.assert_allclose(out, sdpa(Q, K, V, attn_mask=both), atol=1e-12)
    assert np.all(A[1, :, 4:] == 0) and np.all(A[2, :, 1:] == 0)


@pytest.mark.parametrize("causal", [False, True])
def test_multi_head_shapes_match_torch_sdpa(rng: np.random.Generator, causal: bool) -> None:
    Q, K, V = qkv(rng, 2, 4, n_q=6, n_k=6, d=8, d_v=8)  # (batch, heads, n, d_head)
    out, A = attention(Q, K, V, causal=causal)
    np.testing.assert_allclose(out, sdpa(Q, K, V, is_causal=causal), atol=1e-12)
    assert A.shape == (2, 4, 6, 6)


@pytest.mark.parametrize("causal", [False, True])
def test_multi_head_attention_matches_torch_module(rng: np.random.Generator, causal: bool) -> None:
    d, h, n = 12, 3, 5
    mha = torch.nn.MultiheadAttention(d, h, bias=False, batch_first=True, dtype=torch.float64)
    W_in = mha.in_proj_weight.detach().numpy()  # torch computes X @ W^T
    W_q, W_k, W_v = (W_in[i * d : (i + 1) * d].T for i in range(3))
    W_o = mha.out_proj.weight.detach().numpy().T
    X = rng.normal(size=(2, n, d))
    out, A = multi_head_attention(X, W_q, W_k, W_v, W_o, h, causal=causal)
    Xt = torch.from_numpy(X)
    blocked = torch.from_numpy(~causal_mask(n)) if causal else None  # torch: True = blocked
    ref, ref_A = mha(Xt, Xt, Xt, attn_mask=blocked, average_attn_weights=False)
    np.testing.assert_allclose(out, ref.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(A, ref_A.detach().numpy(), atol=1e-12)


def test_split_and_merge_heads_are_inverse(rng: np.random.Generator) -> None:
    X = rng.normal(size=(2, 5, 12))
    assert split_heads(X, 4).shape == (2, 4, 5, 3)
    np.testing.assert_array_equal(merge_heads(split_heads(X, 4)), X)
    with pytest.raises(ValueError, match="divisible"):
        split_heads(X, 5)


matrices = st.integers(1, 8).flatmap(
    lambda n: st.tuples(
        *(
            arrays(np.float64, (n, 4), elements=st.floats(-10, 10, allow_nan=False))
            for _ in range(3)
        )
    )
)


@settings(max_examples=60, deadline=None)
@given(matrices, st.booleans())
def test_attention_rows_are_convex_combinations_of_V(qkv: tuple, causal: bool) -> None:
    Q, K, V = qkv
    out, A = attention(Q, K, V, causal=causal)
    assert np.all(A >= 0)
    np.testing.assert_allclose(A.sum(axis=-1), 1.0, atol=1e-12)
    np.testing.assert_allclose(out, A @ V, atol=1e-12)
    assert np.all(out <= V.max(axis=0) + 1e-9) and np.all(out >= V.min(axis=0) - 1e-9)


def test_self_attention_is_attention_with_q_k_v_the_same(rng: np.random.Generator) -> None:
    X = rng.normal(size=(6, 10))
    out, A = self_attention(X)
    np.testing.assert_allclose(out, sdpa(X, X, X), atol=1e-12)
    assert A.shape == (6, 6)


def test_tiled_attention_gives_the_same_output(rng: np.random.Generator) -> None:
    Q, K, V = qkv(rng, n_q=37, n_k=50, d=8, d_v=3)
    for tile in (1, 64, 100_000):
        np.testing.assert_allclose(attention_in_tiles(Q, K, V, tile), sdpa(Q, K, V), atol=1e-12)


def test_attention_cost_grows_as_n_squared() -> None:
    """A benchmark-style check with generous bounds: the fitted slope, never absolute seconds."""
    try:  # one BLAS thread, so every bit of the work is on the thread whose CPU time we measure
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover
        result = measure_complexity(ns=(256, 512, 1024, 2048), d=16, repeats=7)
    else:
        with threadpool_limits(limits=1):
            result = measure_complexity(ns=(256, 512, 1024, 2048), d=16, repeats=7)
    print(result)
    assert 1.7 <= result.exponent <= 2.3, result
