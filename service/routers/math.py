"""The math behind the service, over HTTP: softmax, attention, descent, explanations and plots.

A thin shell over ``primer_math`` (numpy only). Every input is bounded (sizes, steps, magnitudes)
so a request cannot exhaust the server and no answer can contain NaN or Infinity: beyond the
bounds is a 422 naming the field. The handlers are plain ``def``: FastAPI runs them in its worker
threads, off the event loop.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, Path, Query
from fastapi.responses import Response as HTTPResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator

from indexer import VPError
from primer_math import plots
from primer_math.attention import attention, measure_complexity, self_attention
from primer_math.descent import compare_learning_rates, run, suggested_lr
from primer_math.explain import ALIASES, TOPICS, explain, resolve_topic
from primer_math.softmax import entropy, sampling_distribution, softmax
from primer_math.surfaces import SURFACES
from service.deps import EngineDep

router = APIRouter(prefix="/v1/math", tags=["math"])

MAX_LOGITS = 4096
MAX_MATRIX = 512  # rows and columns of Q, K and V
MAX_ENTRY = 1e6  # |Q K^T| stays below 512 * 1e12: finite scores, finite weights
MAX_STEPS = 10_000
MAX_TEXT_CHARS = 1000
MAX_PLOT_TOKENS = 64
PLOT_LOGITS = [2.0, 1.0, 0.1]  # the seed's worked example
PLOT_TEMPERATURES = [0.1, 0.5, 1.0, 1.5, 5.0]

Logit = Annotated[float, Field(allow_inf_nan=False)]
Entry = Annotated[float, Field(ge=-MAX_ENTRY, le=MAX_ENTRY)]
Row = Annotated[list[Entry], Field(min_length=1, max_length=MAX_MATRIX)]
Matrix = Annotated[list[Row], Field(min_length=1, max_length=MAX_MATRIX)]
Temperature = Annotated[float, Field(gt=0, le=100)]
Coordinate = Annotated[float, Field(ge=-100, le=100)]
Surface = Literal["bowl", "rosenbrock", "saddle"]
Optimizer = Literal["sgd", "momentum", "adam", "adamw"]
PNG: dict[int | str, dict[str, Any]] = {200: {"content": {"image/png": {}}, "description": "PNG"}}


class TopicNotFound(VPError):
    """No explanation under that name or alias."""

    status = 404
    code = "topic_not_found"


class MathRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


# ---- softmax ------------------------------------------------------------------------------------
class SoftmaxRequest(MathRequest):
    logits: list[Logit] = Field(min_length=1, max_length=MAX_LOGITS, examples=[[2.0, 1.0, 0.1]])
    temperature: Temperature = 1.0
    top_p: float | None = Field(None, gt=0, le=1, description="nucleus: keep this much vote")
    top_k: int | None = Field(None, ge=1, le=MAX_LOGITS, description="keep the k best")


class SoftmaxResponse(BaseModel):
    probs: list[float] = Field(description="softmax(logits / temperature)")
    kept: list[int] = Field(
        description="indices a sampler may draw after top-k / top-p, best first"
    )
    sampled_probs: list[float] = Field(description="probs renormalised over the kept set")
    entropy: float = Field(description="of probs, in nats")
    kept_entropy: float = Field(description="of sampled_probs, in nats")
    temperature: float
    top_p: float | None
    top_k: int | None


@router.post("/softmax")
def softmax_post(req: SoftmaxRequest) -> SoftmaxResponse:
    """Scores to a vote: [2.0, 1.0, 0.1] gives [0.66, 0.24, 0.10]; a low temperature sharpens
    toward the argmax, a high one flattens; top-k / top-p cut the candidates a sampler may draw."""
    probs = softmax(req.logits, req.temperature)
    sampled, kept = sampling_distribution(req.logits, req.temperature, req.top_k, req.top_p)
    return SoftmaxResponse(
        probs=probs.tolist(),
        kept=kept.tolist(),
        sampled_probs=sampled.tolist(),
        entropy=float(entropy(probs)),
        kept_entropy=float(entropy(sampled)),
        temperature=req.temperature,
        top_p=req.top_p,
        top_k=req.top_k,
    )


# ---- attention ----------------------------------------------------------------------------------
class AttentionRequest(MathRequest):
    """Either Q, K and V (matrices with rows of equal length), or a text whose token embeddings
    attend to each other (Q = K = V = the tokens' vectors)."""

    Q: Matrix | None = Field(None, description="queries (n_q, d)")
    K: Matrix | None = Field(None, description="keys (n_k, d)")
    V: Matrix | None = Field(None, description="values (n_k, d_v)")
    text: str | None = Field(None, min_length=1, max_length=MAX_TEXT_CHARS)
    causal: bool = False

    @model_validator(mode="after")
    def _one_input_of_consistent_shapes(self) -> AttentionRequest:
        given = [m is not None for m in (self.Q, self.K, self.V)]
        if not (all(given) if self.text is None else not any(given)):
            raise ValueError("give either text, or all three of Q, K and V")
        if self.text is not None:
            if not self.text.strip():
                raise ValueError("text must not be blank")
            return self
        for name, m in (("Q", self.Q), ("K", self.K), ("V", self.V)):
            if len({len(row) for row in m or []}) != 1:
                raise ValueError(f"{name} must be rectangular (rows of equal length)")
        assert self.Q is not None and self.K is not None and self.V is not None
        if len(self.Q[0]) != len(self.K[0]):
            raise ValueError(
                f"Q and K need the same width d, got {len(self.Q[0])} and {len(self.K[0])}"
            )
        if len(self.K) != len(self.V):
            raise ValueError(
                f"K and V need the same number of rows, got {len(self.K)} and {len(self.V)}"
            )
        return self


class AttentionResponse(BaseModel):
    weights: list[list[float]] = Field(description="(n_q, n_k); each row is >= 0 and sums to 1")
    output: list[list[float]] = Field(description="(n_q, d_v) = weights @ V")
    tokens: list[str] | None = Field(None, description="the tokens, when a text was given")
    embedder: str | None = None
    causal: bool
    scale: float = Field(description="1 / sqrt(d), applied to Q K^T")


@router.post("/attention")
def attention_post(req: AttentionRequest, engine: EngineDep) -> AttentionResponse:
    """softmax(Q K^T / sqrt(d)) V: every output row is an average of V's rows weighted by how
    well each key matches the query. With `text`, the service's embedder gives one contextual
    vector per token and the tokens attend to each other."""
    if req.text is not None:
        embedder = engine.embedder()
        tokens, X = embedder.token_embeddings(req.text)
        tokens, X = tokens[:MAX_MATRIX], X[:MAX_MATRIX]
        output, weights = self_attention(X, causal=req.causal)
        d, name = X.shape[1], embedder.name
    else:
        Q, K, V = (np.asarray(m, dtype=np.float64) for m in (req.Q, req.K, req.V))
        output, weights = attention(Q, K, V, causal=req.causal)
        d, tokens, name = K.shape[1], None, None
    return AttentionResponse(
        weights=weights.tolist(),
        output=output.tolist(),
        tokens=tokens,
        embedder=name,
        causal=req.causal,
        scale=float(1 / np.sqrt(d)),
    )


# ---- descent ------------------------------------------------------------------------------------
class DescentRequest(MathRequest):
    surface: Surface = "rosenbrock"
    optimizer: Optimizer = "adam"
    lr: float | None = Field(None, gt=0, le=10, description="default: one that works here")
    steps: int = Field(200, ge=1, le=MAX_STEPS)
    start: tuple[Coordinate, Coordinate] | None = Field(None, description="default: the surface's")
    weight_decay: float | None = Field(None, ge=0, le=1, description="default as in torch.optim")


class DescentResponse(BaseModel):
    surface: str
    optimizer: str
    lr: float
    trajectory: list[tuple[float, float]] = Field(description="the start, then one point a step")
    losses: list[float]
    diverged: bool = Field(description="the run left |p| <= 1e6 and was stopped early")
    minimum: tuple[float, float]


@router.post("/descent")
def descent_post(req: DescentRequest) -> DescentResponse:
    """Roll down a 2-D surface (bowl, rosenbrock, saddle) with SGD, momentum, Adam or AdamW,
    following torch.optim's update rules; too large a learning rate shows as `diverged`."""
    lr = req.lr if req.lr is not None else suggested_lr(req.surface, req.optimizer)
    t = run(req.surface, req.optimizer, lr, req.steps, req.start, req.weight_decay)
    return DescentResponse(
        surface=req.surface,
        optimizer=req.optimizer,
        lr=lr,
        trajectory=[(float(x), float(y)) for x, y in t.points],
        losses=t.losses.tolist(),
        diverged=t.diverged,
        minimum=SURFACES[req.surface].minimum,
    )


# ---- explain ------------------------------------------------------------------------------------
class TopicsResponse(BaseModel):
    topics: list[str]
    aliases: dict[str, str]


class ExplainResponse(BaseModel):
    topic: str
    title: str
    intuition: str
    formula: str
    for_llm_apps: str
    try_it: list[str]


@router.get("/explain")
def list_topics() -> TopicsResponse:
    """The topics `explain/{topic}` knows, and the aliases that lead to them."""
    return TopicsResponse(topics=list(TOPICS), aliases=ALIASES)


@router.get("/explain/{topic}", responses={404: {"description": "no such topic"}})
def explain_topic(topic: Annotated[str, Path(max_length=100)]) -> ExplainResponse:
    """Intuition first, then the formula, then what it means for an LLM app. Aliases work:
    `geometry` is `vectors`, `temperature` is `softmax`, `adamw` is `descent`."""
    if resolve_topic(topic) is None:
        raise TopicNotFound(f"unknown topic {topic!r}; known: {', '.join(TOPICS)}", field="topic")
    return ExplainResponse.model_validate(explain(topic).as_dict())


# ---- plots --------------------------------------------------------------------------------------
def png(data: bytes) -> HTTPResponse:
    return HTTPResponse(content=data, media_type="image/png")


@router.get("/plot/softmax", response_class=HTTPResponse, responses=PNG)
def plot_softmax(
    logits: Annotated[list[Logit], Query(min_length=1, max_length=32)] = PLOT_LOGITS,
    temperatures: Annotated[
        list[Temperature], Query(min_length=1, max_length=8)
    ] = PLOT_TEMPERATURES,
) -> HTTPResponse:
    """The temperature sweep: the same logits voted at several temperatures."""
    return png(plots.softmax_temperature_png(logits, temperatures))


@router.get("/plot/attention", response_class=HTTPResponse, responses=PNG)
def plot_attention(
    engine: EngineDep,
    text: Annotated[str, Query(min_length=1, max_length=MAX_TEXT_CHARS)] = "the cat sat on the mat",
    causal: bool = False,
) -> HTTPResponse:
    """A heatmap of self-attention over the text's token embeddings (first 64 tokens)."""
    embedder = engine.embedder()
    tokens, X = embedder.token_embeddings(text)
    tokens, X = tokens[:MAX_PLOT_TOKENS], X[:MAX_PLOT_TOKENS]
    _, weights = self_attention(X, causal=causal)
    return png(plots.attention_heatmap_png(weights, tokens, f"self-attention ({embedder.name})"))


@router.get("/plot/descent", response_class=HTTPResponse, responses=PNG)
def plot_descent(
    surface: Surface = "rosenbrock",
    optimizer: Optimizer = "adam",
    lr: Annotated[float | None, Query(gt=0, le=10)] = None,
    steps: Annotated[int, Query(ge=1, le=2000)] = 300,
) -> HTTPResponse:
    """Paths at lr / 10, lr and 3 lr over the surface's contour lines."""
    runs = compare_learning_rates(surface, optimizer, steps, lr)
    return png(plots.descent_png(surface, [(f"{optimizer} {label}", t) for label, t in runs]))


@router.get("/plot/complexity", response_class=HTTPResponse, responses=PNG)
def plot_complexity(
    n_max: Annotated[int, Query(ge=256, le=2048)] = 1024,
    repeats: Annotated[int, Query(ge=1, le=7)] = 3,
) -> HTTPResponse:
    """Attention time measured at n = 128, 256, ... up to n_max on this server, with the fitted
    slope (about 2: every token meets every other one)."""
    ns = tuple(n for n in (128, 256, 512, 1024, 2048) if n <= n_max)
    return png(plots.complexity_png(measure_complexity(ns, repeats=repeats)))
