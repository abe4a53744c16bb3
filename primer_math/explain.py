"""The four intuitions (and the loss behind the fourth) as structured text, in our own words.

``explain(topic)`` returns an ``Explanation``: a title, the intuition in plain words, the formula,
what it means for someone building an LLM application, and where to try it in this package.
Topics have aliases (``geometry`` -> ``vectors``, ``temperature`` -> ``softmax``, ...).
"""

import textwrap
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Explanation:
    """One topic, explained: read ``intuition`` first, then ``formula``, then ``for_llm_apps``."""

    topic: str
    title: str
    intuition: str
    formula: str
    for_llm_apps: str
    try_it: tuple[str, ...]

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready dict (``try_it`` as a list)."""
        return {**asdict(self), "try_it": list(self.try_it)}

    def as_text(self) -> str:
        """The explanation as a few labelled paragraphs, for a terminal."""

        def wrap(text: str, indent: str = "") -> str:
            return textwrap.fill(text, 100, initial_indent=indent, subsequent_indent=indent)

        try_it = "\n".join(f"  {line}" for line in self.try_it)
        return (
            f"{self.title}\n{'=' * len(self.title)}\n\n{wrap(self.intuition)}\n\n"
            f"Formula:\n{wrap(self.formula, '  ')}\n\n"
            f"For an LLM app:\n{wrap(self.for_llm_apps, '  ')}\n\nTry it:\n{try_it}\n"
        )


class UnknownTopic(KeyError):
    """No explanation under that name or alias."""


TOPICS: dict[str, Explanation] = {
    "vectors": Explanation(
        topic="vectors",
        title="Embeddings as geometry",
        intuition=(
            "An embedding model turns a text into an arrow in a space of a few hundred dimensions"
            " (384 for all-MiniLM-L6-v2). Texts that mean similar things get arrows that point the"
            " same way, so 'how similar?' becomes 'how small is the angle between the arrows?'."
            " Cosine measures that angle directly. Once the arrows have length 1 the dot product"
            " equals the cosine and the L2 distance is a fixed function of it, so all three rank"
            " neighbours in the same order. Directions can also be added: king - man + woman lands"
            " near queen, because the step from man to king is roughly the step from woman to"
            " queen."
        ),
        formula=(
            "cos(a, b) = a.b / (|a| |b|);  for unit vectors |a - b|^2 = 2 - 2 cos(a, b);"
            "  3CosAdd: argmax_x cos(x, b - a + c);"
            "  3CosMul: argmax_x s(x,b) s(x,c) / (s(x,a) + eps), s = (cos + 1) / 2"
        ),
        for_llm_apps=(
            "Retrieval-augmented generation is nearest-neighbour search over these arrows: the"
            " question is embedded, the closest passages are handed to the LLM. Normalise your"
            " vectors and cosine, dot and L2 agree; forget to, and dot product favours long"
            " documents. Similarity is about direction, not truth: a confident wrong passage can"
            " sit right next to the question."
        ),
        try_it=(
            "primer_math.vectors.cosine([1, 0], [1, 1])",
            "primer_math.vectors.three_cos_add(man, king, woman, vocabulary, exclude=[...])",
            "GET /v1/analogy?q=king-man+woman",
        ),
    ),
    "softmax": Explanation(
        topic="softmax",
        title="Softmax as a vote",
        intuition=(
            "A language model ends each step with one score (logit) per token of its vocabulary."
            " Softmax turns the scores into a vote: every token gets exp(score), and the shares are"
            " scaled to sum to 1. Only differences between scores matter. Temperature divides the"
            " scores first: a low temperature makes the vote decisive (the top token takes almost"
            " everything), a high one makes it even. Top-k keeps the k best candidates; top-p"
            " (nucleus) keeps the fewest that together hold p of the vote. Entropy measures how"
            " undecided the vote is. Worked example: logits [2.0, 1.0, 0.1] give"
            " [0.66, 0.24, 0.10]; at T = 0.1 nearly all goes to the first, at T = 1.5 the shares"
            " move toward a third each."
        ),
        formula=(
            "p_i = exp(z_i / T) / sum_j exp(z_j / T), computed as exp((z_i - max z) / T) / ...;"
            "  H(p) = -sum_i p_i log p_i"
        ),
        for_llm_apps=(
            "The temperature, top_p and top_k parameters of every LLM API are these knobs."
            " T = 0 (greedy) gives repeatable answers for extraction and classification; a higher"
            " T gives variety for brainstorming, at the price of more unlikely tokens. A high"
            " entropy at a step means the model was unsure there: a hint where it may be guessing."
        ),
        try_it=(
            "python -m primer_math softmax 2.0 1.0 0.1 --temperature 0.5",
            "python -m primer_math plot softmax --out softmax.png",
            "POST /v1/math/softmax {logits, temperature, top_p, top_k}",
        ),
    ),
    "attention": Explanation(
        topic="attention",
        title="Attention as a similarity-weighted average",
        intuition=(
            "Inside a transformer, each token rewrites itself as an average of the tokens around"
            " it, weighted by relevance. Each token asks a question (its query), offers a label"
            " (its key) and carries content (its value). The weights are a softmax vote over how"
            " well each key matches the query, scaled by the square root of the dimension so long"
            " vectors do not make the vote too decisive. A causal mask lets a token look only at"
            " the past (how text is generated); a padding mask hides filler. Several heads do this"
            " in parallel on different slices. Every token meets every other token, so the work"
            " grows as n^2 with the length n: double the prompt, four times the attention."
        ),
        formula=(
            "Attention(Q, K, V) = softmax(Q K^T / sqrt(d) + mask) V;"
            "  Q: (n, d), K: (n, d), V: (n, d_v), weights: (n, n)"
        ),
        for_llm_apps=(
            "Context length costs quadratically in attention compute (and memory, unless it is"
            " tiled as FlashAttention does): long prompts are slower and dearer per token. What"
            " sits in the context is all the model can attend to, which is why retrieval chooses"
            " the few passages worth the cost. The attention weights show which tokens a layer"
            " mixed together, not a reliable explanation of the output."
        ),
        try_it=(
            'python -m primer_math attention "the cat sat on the mat"',
            "python -m primer_math plot complexity --out complexity.png",
            "POST /v1/math/attention {text} or {Q, K, V, causal}",
        ),
    ),
    "loss": Explanation(
        topic="loss",
        title="Cross-entropy: how surprised the model was",
        intuition=(
            "Training needs one number that says how wrong the model is. Cross-entropy is the"
            " surprise at the right answer: -log of the probability the model gave it. Certain and"
            " right costs 0; certain and wrong costs a lot. Its gradient with respect to the"
            " logits is simply softmax minus one-hot: raise the right answer's score by what it"
            " lacked, lower every other score by what it took."
        ),
        formula="L = -(1/N) sum_n log softmax(z_n)[y_n];  dL/dz = (softmax(z) - onehot(y)) / N",
        for_llm_apps=(
            "Language models are trained to lower exactly this loss on the next token. exp(loss)"
            " is the perplexity reported for models; log-probabilities returned by an API are the"
            " same quantity per token, useful to spot where a generation was unlikely."
        ),
        try_it=(
            "primer_math.loss.cross_entropy([[2.0, 1.0, 0.1]], [0])",
            "primer_math.loss.cross_entropy_grad([[2.0, 1.0, 0.1]], [0])",
        ),
    ),
    "descent": Explanation(
        topic="descent",
        title="Gradient descent as rolling downhill",
        intuition=(
            "The loss is a landscape over the model's weights; the gradient points uphill. Take a"
            " step the other way, of size learning-rate times the slope, and repeat. Too small a"
            " learning rate crawls; too large overshoots the valley and bounces out of it."
            " Momentum lets the ball keep its speed along a steady slope and damps zig-zags. Adam"
            " gives every weight its own step size from the recent size of its gradients. AdamW"
            " also pulls every weight slightly toward zero, applied to the weights directly."
        ),
        formula=(
            "SGD: p <- p - lr g;  momentum: v <- mu v + g, p <- p - lr v;"
            "  Adam: m <- b1 m + (1-b1) g, v <- b2 v + (1-b2) g^2,"
            " p <- p - lr m_hat / (sqrt(v_hat) + eps);  AdamW: p <- p (1 - lr wd), then Adam"
        ),
        for_llm_apps=(
            "Every model you call was trained by this loop, nearly always with AdamW; fine-tuning"
            " runs it again on your data. The learning rate is the first knob when fine-tuning"
            " diverges (loss explodes: too large) or stalls (too small). A small softmax"
            " regression on frozen sentence embeddings is often a strong, cheap classifier."
        ),
        try_it=(
            "python -m primer_math descent --optimizer adam --surface rosenbrock",
            "python -m primer_math plot descent --surface bowl --optimizer sgd --out descent.png",
            "POST /v1/math/descent {surface, optimizer, lr, steps, start}",
        ),
    ),
}

ALIASES: dict[str, str] = {
    **dict.fromkeys(
        ["geometry", "embedding", "embeddings", "cosine", "similarity", "analogy", "vector"],
        "vectors",
    ),
    **dict.fromkeys(["vote", "temperature", "sampling", "top-p", "top-k", "entropy"], "softmax"),
    **dict.fromkeys(["self-attention", "transformer", "multi-head", "complexity"], "attention"),
    **dict.fromkeys(["cross-entropy", "crossentropy", "perplexity"], "loss"),
    **dict.fromkeys(
        ["gradient", "gradient-descent", "sgd", "momentum", "adam", "adamw", "training"], "descent"
    ),
}


def resolve_topic(name: str) -> str | None:
    """The canonical topic for a name or alias (case and ``_``/space insensitive), else None.

    >>> resolve_topic("Geometry"), resolve_topic("top_p"), resolve_topic("astrology")
    ('vectors', 'softmax', None)
    """
    key = name.strip().lower().replace("_", "-").replace(" ", "-")
    return key if key in TOPICS else ALIASES.get(key)


def explain(topic: str) -> Explanation:
    """The explanation of a topic or alias; ``UnknownTopic`` (a KeyError) names the known ones.

    >>> explain("attention").title
    'Attention as a similarity-weighted average'
    """
    name = resolve_topic(topic)
    if name is None:
        raise UnknownTopic(f"unknown topic {topic!r}; known: {', '.join(TOPICS)}")
    return TOPICS[name]
