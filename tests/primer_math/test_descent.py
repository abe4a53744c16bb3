"""descent.py, surfaces.py and regression.py against torch.optim and autograd."""

from collections.abc import Callable

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from primer_math.descent import OPTIMIZERS, make_step, run, suggested_lr
from primer_math.regression import train_softmax_regression
from primer_math.surfaces import SURFACES

TORCH_SURFACES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "bowl": lambda p: 0.5 * (p[0] ** 2 + 10 * p[1] ** 2),
    "rosenbrock": lambda p: (1 - p[0]) ** 2 + 100 * (p[1] - p[0] ** 2) ** 2,
    "saddle": lambda p: p[0] ** 2 - p[1] ** 2 + p[1] ** 4 / 4,
}


def torch_optimizer(name: str, params: list[torch.Tensor], lr: float, wd: float | None):
    """The torch.optim counterpart of each primer_math optimizer, with torch's own defaults."""
    extra = {} if wd is None else {"weight_decay": wd}
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, **extra)
    if name == "momentum":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, **extra)
    return {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[name](params, lr=lr, **extra)


def torch_trajectory(surface: str, optimizer: str, lr: float, steps: int, wd: float | None):
    p = torch.tensor(SURFACES[surface].start, dtype=torch.float64, requires_grad=True)
    opt = torch_optimizer(optimizer, [p], lr, wd)
    points = [p.detach().clone().numpy()]
    for _ in range(steps):
        opt.zero_grad()
        TORCH_SURFACES[surface](p).backward()
        opt.step()
        points.append(p.detach().clone().numpy())
    return np.array(points)


@pytest.mark.parametrize("surface", list(SURFACES))
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("weight_decay", [None, 0.1])
def test_trajectories_match_torch_optim_over_100_steps(
    surface: str, optimizer: str, weight_decay: float | None
) -> None:
    lr = suggested_lr(surface, optimizer)
    ours = run(surface, optimizer, lr, steps=100, weight_decay=weight_decay)
    ref = torch_trajectory(surface, optimizer, lr, 100, weight_decay)
    assert not ours.diverged and ours.points.shape == ref.shape == (101, 2)
    assert np.abs(ours.points - ref).max() < 1e-8


@pytest.mark.parametrize("surface", list(SURFACES))
def test_surface_gradients_match_torch_autograd(surface: str, rng: np.random.Generator) -> None:
    for point in rng.uniform(-2, 2, size=(5, 2)):
        p = torch.tensor(point, requires_grad=True)
        TORCH_SURFACES[surface](p).backward()
        assert p.grad is not None
        np.testing.assert_allclose(SURFACES[surface].grad(point), p.grad.numpy(), atol=1e-10)
        assert abs(SURFACES[surface].f(point) - TORCH_SURFACES[surface](p).item()) < 1e-10


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from(list(SURFACES)),
    st.tuples(st.floats(-2, 2), st.floats(-2, 2)),
)
def test_surface_gradients_match_central_finite_differences(
    surface: str, point: tuple[float, float]
) -> None:
    s, p, h = SURFACES[surface], np.array(point), 1e-6
    numeric = [(s.f(p + h * e) - s.f(p - h * e)) / (2 * h) for e in np.eye(2)]
    np.testing.assert_allclose(s.grad(p), numeric, rtol=1e-6, atol=1e-5)


def test_learning_rate_too_small_right_and_too_large_on_the_bowl() -> None:
    too_small, right, too_large = (run("bowl", "sgd", lr, steps=200) for lr in (0.001, 0.1, 0.21))
    assert too_small.losses[-1] > 1.0  # crawled: still far up the wall
    assert right.losses[-1] < 1e-12  # at the bottom
    assert too_large.losses[-1] > too_large.losses[0]  # each bounce overshoots further
    assert np.all(np.diff(right.losses) <= 0)


def test_divergence_stops_the_run_before_any_nan() -> None:
    t = run("rosenbrock", "sgd", lr=0.5, steps=10_000, start=[3.0, -3.0])
    assert t.diverged and len(t.points) < 100
    assert np.isfinite(t.points).all() and np.isfinite(t.losses).all()


def test_descent_leaves_the_saddle_for_a_minimum() -> None:
    t = run("saddle", "sgd", lr=0.05, steps=500)  # starts 0.01 off the ridge
    assert abs(t.points[-1][0]) < 1e-6 and abs(t.points[-1][1] - np.sqrt(2)) < 1e-6
    assert t.losses[-1] == pytest.approx(-1.0)


def test_momentum_and_adam_beat_plain_descent_along_the_banana_valley() -> None:
    steps = 300
    sgd = run("rosenbrock", "sgd", suggested_lr("rosenbrock", "sgd"), steps).losses[-1]
    for opt in ("momentum", "adam"):
        assert run("rosenbrock", opt, suggested_lr("rosenbrock", opt), steps).losses[-1] < sgd


def test_unknown_optimizer_is_refused() -> None:
    with pytest.raises(KeyError, match="unknown optimizer"):
        make_step("lion", lr=0.1)


def torch_softmax_regression(X, y, n_classes, optimizer, lr, steps, wd):
    W = torch.zeros(X.shape[1], n_classes, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(n_classes, dtype=torch.float64, requires_grad=True)
    opt = torch_optimizer(optimizer, [W, b], lr, wd)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(Xt @ W + b, yt).backward()
        opt.step()
    return torch.cat([W, b[None]]).detach().numpy()


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_softmax_regression_matches_torch_training(
    optimizer: str, rng: np.random.Generator
) -> None:
    X, y = rng.normal(size=(40, 6)), rng.integers(0, 3, size=40)
    ours = train_softmax_regression(X, y, 3, optimizer, lr=0.05, steps=100, weight_decay=0.01)
    ref = torch_softmax_regression(X, y, 3, optimizer, 0.05, 100, 0.01)
    assert np.abs(ours.W - ref).max() < 1e-8


def test_softmax_regression_separates_separable_classes(rng: np.random.Generator) -> None:
    centers = rng.normal(scale=5.0, size=(3, 4))
    y = rng.integers(0, 3, size=90)
    X = centers[y] + rng.normal(scale=0.5, size=(90, 4))
    model = train_softmax_regression(X, y, 3, steps=200)
    assert (model.predict(X) == y).mean() == 1.0
    assert model.losses[-1] < 0.05 * model.losses[0]


LABELLED = {  # topic -> (training sentences, held-out sentences)
    "animals": (
        [
            "The cat slept on the warm windowsill.",
            "A dog barked at the mailman.",
            "Wolves hunt in packs through the forest.",
            "The parrot repeated every word.",
            "Horses grazed in the open field.",
        ],
        ["A kitten chased a ball of yarn.", "The elephant sprayed water with its trunk."],
    ),
    "food": (
        [
            "She baked fresh bread this morning.",
            "The soup needs more salt.",
            "We ordered pizza with mushrooms.",
            "Ripe mangoes are sweet and juicy.",
            "He grilled vegetables for dinner.",
        ],
        ["The chocolate cake was delicious.", "Add garlic and onions to the pan."],
    ),
    "sports": (
        [
            "The striker scored in the final minute.",
            "She ran the marathon in record time.",
            "The team won the basketball championship.",
            "He served an ace to win the set.",
            "The cyclist climbed the mountain stage.",
        ],
        ["The goalkeeper saved a penalty kick.", "They trained for the swimming relay."],
    ),
}


@pytest.mark.model
def test_softmax_regression_on_real_sentence_embeddings_classifies_held_out_sentences(
    minilm_encode: Callable[[list[str]], np.ndarray],
) -> None:
    topics = list(LABELLED)
    train = [(s, i) for i, t in enumerate(topics) for s in LABELLED[t][0]]
    test = [(s, i) for i, t in enumerate(topics) for s in LABELLED[t][1]]
    X_train, X_test = minilm_encode([s for s, _ in train]), minilm_encode([s for s, _ in test])
    y_train, y_test = np.array([i for _, i in train]), np.array([i for _, i in test])
    model = train_softmax_regression(X_train, y_train, len(topics), lr=0.05, steps=150)
    assert (model.predict(X_train) == y_train).all()
    assert (model.predict(X_test) == y_test).all()
    assert model.losses[-1] < 0.1 * model.losses[0]
