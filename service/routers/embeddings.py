"""OpenAI-compatible embeddings, so OpenAI clients, LangChain and LlamaIndex work unchanged
(point their base URL at `http://host:port/v1`)."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from indexer import Engine
from indexer.embed import Embedder
from indexer.errors import InvalidInput
from service.batching import batcher_for
from service.errors import ModelNotFound
from service.models import EmbeddingsRequest, EmbeddingsResponse, FastJSONRoute, JSONBytes
from service.routers.search import EngineDep

router = APIRouter(tags=["embeddings"], route_class=FastJSONRoute)


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


@router.post("/embeddings", response_model=EmbeddingsResponse)
async def create_embeddings(req: EmbeddingsRequest, engine: EngineDep) -> JSONBytes:
    """`{input, model?}` → `{object: "list", data: [{object: "embedding", index, embedding}],
    model, usage}`, as in OpenAI's API; `encoding_format: "base64"` gives little-endian float32.
    One input shares a forward pass with concurrent requests (service/batching.py)."""
    return JSONBytes.of(await run_in_threadpool(_embeddings, engine, req))


def _embeddings(engine: Engine, req: EmbeddingsRequest) -> dict[str, Any]:
    embedder = engine.embedder()
    model = served_model(req.model, embedder.name)
    if req.dimensions is not None and req.dimensions != embedder.dim:
        raise InvalidInput(
            f"dimensions must be {embedder.dim} for {model!r} (it cannot be shortened)",
            field="dimensions",
        )
    texts = req.texts()
    if len(texts) == 1:
        vectors = batcher_for(embedder).embed(texts[0])[None, :]
    else:
        vectors = embedder.embed(texts)  # (n, dim) float32: already one batch
    data = [
        {"object": "embedding", "index": i, "embedding": _encode(v, req.encoding_format)}
        for i, v in enumerate(vectors)
    ]
    tokens = count_tokens(embedder, texts)
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def _encode(v: np.ndarray, encoding_format: str) -> list[float] | str:
    if encoding_format == "base64":
        return base64.b64encode(np.asarray(v, dtype="<f4").tobytes()).decode("ascii")
    return list(np.asarray(v, dtype=np.float32).tolist())
