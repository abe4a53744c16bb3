"""loss.py against torch autograd and central finite differences."""

import numpy as np
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from primer_math.loss import cross_entropy, cross_entropy_grad, one_hot


def torch_loss_and_grad(logits: np.ndarray, targets: np.ndarray) -> tuple[float, np.ndarray]:
    z = torch.tensor(logits, requires_grad=True)
    loss = F.cross_entropy(z, torch.from_numpy(targets))
    loss.backward()
    assert z.grad is not None
    return loss.item(), z.grad.numpy()


def test_cross_entropy_and_gradient_match_torch_autograd(rng: np.random.Generator) -> None:
    logits = rng.normal(scale=4.0, size=(32, 10))
    targets = rng.integers(0, 10, size=32)
    ref_loss, ref_grad = torch_loss_and_grad(logits, targets)
    assert abs(cross_entropy(logits, targets) - ref_loss) < 1e-12
    np.testing.assert_allclose(cross_entropy_grad(logits, targets), ref_grad, atol=1e-14)


def test_confident_wrong_answers_give_large_finite_losses() -> None:
    logits = np.array([[0.0, 1e5], [-1e5, 0.0]])
    ref_loss, ref_grad = torch_loss_and_grad(logits, np.array([0, 0]))
    assert cross_entropy(logits, [0, 0]) == ref_loss == 1e5
    np.testing.assert_allclose(cross_entropy_grad(logits, [0, 0]), ref_grad)


def test_gradient_rows_sum_to_zero_and_one_hot_is_the_target() -> None:
    grad = cross_entropy_grad([[2.0, 1.0, 0.1], [0.0, 0.0, 5.0]], [0, 2])
    np.testing.assert_allclose(grad.sum(axis=1), 0.0, atol=1e-15)
    assert one_hot([1], 3).tolist() == [[0.0, 1.0, 0.0]]


@st.composite
def logits_and_targets(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    n, c = draw(st.integers(1, 6)), draw(st.integers(2, 8))
    logits = draw(arrays(np.float64, (n, c), elements=st.floats(-20, 20)))
    targets = draw(arrays(np.intp, n, elements=st.integers(0, c - 1)))
    return logits, targets


@settings(max_examples=60, deadline=None)
@given(logits_and_targets())
def test_gradient_matches_central_finite_differences(case: tuple) -> None:
    logits, targets = case
    h, numeric = 1e-6, np.zeros_like(logits)
    for idx in np.ndindex(logits.shape):
        bump = np.zeros_like(logits)
        bump[idx] = h
        up, down = cross_entropy(logits + bump, targets), cross_entropy(logits - bump, targets)
        numeric[idx] = (up - down) / (2 * h)
    np.testing.assert_allclose(cross_entropy_grad(logits, targets), numeric, atol=1e-6)
