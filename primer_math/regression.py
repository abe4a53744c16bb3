"""The smallest model that learns: softmax regression, trained by the optimizers of ``descent``.

One weight vector per class scores an input (``logits = x W + b``), softmax turns the scores into a
vote, cross-entropy measures the surprise at the right class, and its gradient
``X^T (softmax - one_hot) / N`` says how to move the weights. On sentence embeddings this is a
text classifier in a dozen lines: the same loop, scaled up, trains every neural network.
"""

from dataclasses import dataclass

import numpy as np

from primer_math.arrays import Array, ArrayLike, Index, as_array
from primer_math.descent import make_step
from primer_math.loss import cross_entropy, cross_entropy_grad


def with_bias_column(X: ArrayLike) -> Array:
    """Append a constant 1 to each input, so the bias is just one more row of weights.

    Shapes: (N, d) -> (N, d + 1).

    >>> with_bias_column([[2.0], [3.0]])
    array([[2., 1.],
           [3., 1.]])
    """
    X = as_array(X)
    return np.concatenate([X, np.ones((X.shape[0], 1))], axis=1)


@dataclass(frozen=True)
class SoftmaxRegression:
    """Trained weights ``W`` (d + 1, C) whose last row is the bias, and the loss at every step."""

    W: Array
    losses: Array

    def logits(self, X: ArrayLike) -> Array:
        """Class scores ``[X, 1] W``. Shapes: (N, d) -> (N, C)."""
        return with_bias_column(X) @ self.W

    def predict(self, X: ArrayLike) -> Index:
        """The highest-scoring class per input. Shapes: (N, d) -> (N,)."""
        return np.asarray(np.argmax(self.logits(X), axis=-1), dtype=np.intp)


def train_softmax_regression(
    X: ArrayLike,
    y: ArrayLike,
    n_classes: int,
    optimizer: str = "adam",
    lr: float = 0.1,
    steps: int = 200,
    weight_decay: float | None = None,
) -> SoftmaxRegression:
    """Fit one weight vector per class by full-batch descent on the cross-entropy, from zero.

    Formula: ``L(W) = cross_entropy([X, 1] W, y)``, ``dL/dW = [X, 1]^T (softmax - one_hot) / N``.
    Shapes: X (N, d), y (N,) -> W (d + 1, C), losses (steps + 1,).

    >>> X = np.array([[0.0, 1.0], [1.0, 0.0], [0.0, 2.0], [2.0, 0.0]])
    >>> model = train_softmax_regression(X, [0, 1, 0, 1], n_classes=2, steps=50)
    >>> model.predict(X), bool(model.losses[-1] < 0.1 * model.losses[0])
    (array([0, 1, 0, 1]), True)
    """
    Xb, step = with_bias_column(X), make_step(optimizer, lr, weight_decay=weight_decay)
    W = np.zeros((Xb.shape[1], n_classes))
    losses = [cross_entropy(Xb @ W, y)]
    for _ in range(steps):
        W = step(W, Xb.T @ cross_entropy_grad(Xb @ W, y))
        losses.append(cross_entropy(Xb @ W, y))
    return SoftmaxRegression(W, np.array(losses))
