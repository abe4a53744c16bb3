"""OpenAI-compatible embeddings, so OpenAI clients, LangChain and LlamaIndex work unchanged
(point their base URL at `http://host:port/v1`)."""

from __future__ import annotations

import base64

import numpy as np
from fastapi import APIRouter

from indexer.embed import Embedder
from indexer.errors import InvalidInput
from service.deps import EngineDep
from service.errors import ModelNotFound
from service.models import Embedding, EmbeddingsRequest, EmbeddingsResponse, Usage

router = APIRouter(tags=["embeddings"])


def served_model(requested: str | None, default: str) -> str:
    """The default embedder answers to its own name and to `sentence-transformers/<name>`."""
    if requested is None or requested in (default, f"sentence-transformers/{default}"):
        return default
    raise ModelNotFound(
        f"model {requested!r} is not served here; use {default!r} (or omit model)", field="model"
    )


def count_tokens(embedder: Embedder, texts: list[str]) -> int:
    counter = getattr(embedder, "count_tokens", None)
    if counter is None:  # the hash embedder: one token per word
        return sum(len(t.split()) for t in texts)
    return sum(int(counter(t)) for t in texts)


@router.post("/embeddings")
def create_embeddings(req: EmbeddingsRequest, engine: EngineDep) -> EmbeddingsResponse:
    """`{input, model?}` → `{object: "list", data: [{object: "embedding", index, embedding}],
    model, usage}`, as in OpenAI's API; `encoding_format: "base64"` gives little-endian float32."""
    embedder = engine.embedder()
    model = served_model(req.model, embedder.name)
    if req.dimensions is not None and req.dimensions != embedder.dim:
        raise InvalidInput(
            f"dimensions must be {embedder.dim} for {model!r} (it cannot be shortened)",
            field="dimensions",
        )
    texts = req.texts()
    vectors = embedder.embed(texts)  # (n, dim) float32
    data = [
        Embedding(index=i, embedding=_encode(v, req.encoding_format)) for i, v in enumerate(vectors)
    ]
    tokens = count_tokens(embedder, texts)
    return EmbeddingsResponse(
        data=data, model=model, usage=Usage(prompt_tokens=tokens, total_tokens=tokens)
    )


def _encode(v: np.ndarray, encoding_format: str) -> list[float] | str:
    if encoding_format == "base64":
        return base64.b64encode(np.asarray(v, dtype="<f4").tobytes()).decode("ascii")
    return [float(x) for x in v]
