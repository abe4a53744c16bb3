"""Loss: one number that says how wrong the model is, and which way to move to be less wrong.

Cross-entropy asks "how surprised was the model by the right answer?": ``-log p(right answer)``.
Its gradient with respect to the logits is strikingly simple, ``softmax - one_hot``: push the right
answer's score up by what it lacked, push every other score down by what it took. That is what
every language model's training step starts from.
"""

import numpy as np

from primer_math.arrays import Array, ArrayLike, as_array, as_float
from primer_math.softmax import log_softmax, softmax


def one_hot(targets: ArrayLike, n_classes: int) -> Array:
    """The right answers as vectors: 1 at the right class, 0 elsewhere. Shapes: (N,) -> (N, C).

    >>> one_hot([2, 0], 3)
    array([[0., 0., 1.],
           [1., 0., 0.]])
    """
    t = np.asarray(targets, dtype=np.intp)
    return as_array(t[:, None] == np.arange(n_classes))


def cross_entropy(logits: ArrayLike, targets: ArrayLike) -> float:
    """The mean surprise at the right answers: small when the model gave them high probability.

    Computed through ``log_softmax`` so a confident wrong answer gives a large finite loss, never
    ``log(0)``. Formula: ``L = -(1/N) sum_n log softmax(z_n)[y_n]``. Shapes: (N, C), (N,) -> scalar.

    >>> round(cross_entropy([[2.0, 1.0, 0.1]], [0]), 4)  # -log 0.659
    0.417
    >>> cross_entropy([[0.0, 1000.0]], [0])
    1000.0
    """
    logp = log_softmax(logits, axis=-1)
    t = np.asarray(targets, dtype=np.intp)
    return as_float(-logp[np.arange(len(t)), t].mean())


def cross_entropy_grad(logits: ArrayLike, targets: ArrayLike) -> Array:
    """Which way each logit should move to lower the loss: ``(softmax - one_hot) / N``.

    The right class's logit is pulled up by ``1 - p``, every other pushed down by its own ``p``;
    each row sums to 0, so the mean logit never moves. Shapes: (N, C), (N,) -> (N, C).

    >>> cross_entropy_grad([[2.0, 1.0, 0.1]], [0]).round(2)
    array([[-0.34,  0.24,  0.1 ]])
    """
    z = as_array(logits)
    return as_array((softmax(z, axis=-1) - one_hot(targets, z.shape[-1])) / z.shape[0])
