"""Ready before the model (issue 7): /readyz turns 200 while the embedding model is still loading,
vector searches are answered then, a text search waits for the model, and a model that fails to
load (or fails the bf16 self-check) turns /readyz 503 with the reason.

The model's load is held at a gate (indexer.embed.load_embedder, which LazyEmbedder.load calls),
so "before the model is loaded" is a fact of the test, not a race it hopes to win."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from indexer import DocumentIn, Engine, embed
from indexer.errors import InvalidInput
from indexer.settings import BF16, DEFAULT_MODEL
from indexer.store import NewDoc, content_hash
from indexer.words import WORDS
from service.app import create_app

from .conftest import DOCS, RecordingClient, make_settings, open_client

pytestmark = pytest.mark.model

URL = "/v1/collections/docs/search"


class Gate:
    """Stands in for load_embedder: waits until opened, then loads (or fails with `fail`)."""

    def __init__(self) -> None:
        self.open = threading.Event()
        self.fail: str | None = None
        self.calls = 0
        self._load = embed.load_embedder

    def __call__(self, name: str, threads: int = 1, batch_size: int = 64) -> Any:
        self.calls += 1
        assert self.open.wait(30), "the test never opened the gate"
        if self.fail is not None:
            raise InvalidInput(f"cannot load embedder {name!r}: {self.fail}", field="embedder")
        return self._load(name, threads, batch_size)


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> Iterator[Gate]:
    """A fresh (unloaded) lazy embedder for every name, whose load waits at the gate."""
    g = Gate()
    embed._lazy.cache_clear()
    monkeypatch.setattr(embed, "load_embedder", g)
    yield g
    g.open.set()  # never leave the warmup thread waiting
    embed._lazy.cache_clear()


@pytest.fixture
def data(tmp_path: Path, real_embedder: Any) -> dict[str, Any]:
    """A data directory whose `docs` collection (all-MiniLM-L6-v2) holds DOCS, embedded."""
    settings = make_settings(tmp_path, embedder=DEFAULT_MODEL)
    engine = Engine(settings)
    col = engine.create_collection("docs")
    col.upsert([DocumentIn(d["id"], d["text"], metadata=d["metadata"]) for d in DOCS])
    cat = col.store.get(["cat"])[0].vector
    engine.close()
    return {"settings": settings, "cat": cat}


def _wait_status(client: RecordingClient, status: int, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while (r := client.get("/readyz")).status_code != status:
        assert time.monotonic() < deadline, r.json()
        time.sleep(0.02)
    return r


def test_ready_and_vector_search_before_the_model_then_a_text_search_waits_for_it(
    data: dict[str, Any], gate: Gate
) -> None:
    app = create_app(data["settings"])
    with open_client(app) as client, ThreadPoolExecutor(1) as pool:
        client.wait_ready()  # the gate is shut: the model cannot have loaded
        embedder = app.state.engine.embedder()
        assert embedder.name == DEFAULT_MODEL and embedder.loaded is False
        r = client.post(URL, json={"vector": data["cat"].tolist(), "k": 2})
        assert r.status_code == 200, r.text
        assert r.json()["hits"][0]["id"] == "cat"
        assert r.json()["hits"][0]["score"] == pytest.approx(1.0, abs=1e-5)

        text = pool.submit(client.post, URL, json={"query": "a kitten sitting on a rug", "k": 1})
        time.sleep(0.5)
        assert not text.done(), "a text search was answered without the model"
        assert client.get("/readyz").status_code == 200  # still ready while it loads
        gate.open.set()
        r = text.result(timeout=60)
        assert r.status_code == 200, r.text
        assert r.json()["hits"][0]["id"] == "cat"
        assert embedder.loaded is True
        assert client.get("/readyz").status_code == 200


def test_a_model_that_fails_to_load_turns_readyz_503_with_the_reason(
    data: dict[str, Any], gate: Gate
) -> None:
    gate.fail = "no such file: model.safetensors"
    app = create_app(data["settings"])
    with open_client(app) as client:
        client.wait_ready()
        assert client.post(URL, json={"vector": data["cat"].tolist(), "k": 1}).status_code == 200
        gate.open.set()
        r = _wait_status(client, 503)
        body = r.json()
        assert body["error"] == "not_ready"
        assert "start-up failed" in body["detail"]
        assert "no such file: model.safetensors" in body["detail"]
        assert DEFAULT_MODEL in body["detail"]
        # a text request is the server's failure (503), not the client's; vectors still work
        r = client.post(URL, json={"query": "cat", "k": 1})
        assert (r.status_code, r.json()["error"]) == (503, "model_unavailable"), r.text
        assert client.post(URL, json={"vector": data["cat"].tolist(), "k": 1}).status_code == 200


def test_a_bf16_model_that_fails_its_self_check_turns_readyz_503(
    tmp_path: Path, real_embedder: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """VP_EMBED_BACKEND=bf16 and a model whose bf16 vectors disagree with its fp32 ones: ready
    first (no collection needs it), then 503 naming the failed check, no fallback to fp32."""
    import torch

    plain = embed.SentenceTransformerEmbedder.embed

    def off_in_bf16(self: Any, texts: list[str]) -> Any:
        out = plain(self, texts)
        if next(self.model.parameters()).dtype == torch.bfloat16:
            return np.roll(out, 1, axis=0)  # each sentence gets another's vector
        return out

    monkeypatch.setattr(embed.SentenceTransformerEmbedder, "embed", off_in_bf16)
    # a bf16 model loaded by another test must not be handed out from the cache
    monkeypatch.setattr(embed, "_load_embedder", embed._load_embedder.__wrapped__)
    embed._lazy.cache_clear()
    try:
        settings = make_settings(tmp_path, embedder=DEFAULT_MODEL, embed_backend="bf16")
        assert settings.embedder == DEFAULT_MODEL + BF16
        with open_client(create_app(settings)) as client:
            _wait_status(client, 200)  # ready first (a 503 before it is only "starting")
            r = _wait_status(client, 503)
            assert "bf16 self-check failed" in r.json()["detail"], r.json()
            assert client.get("/readyz").status_code == 503
    finally:
        embed._lazy.cache_clear()


def test_a_complete_words_collection_is_checked_without_the_model(
    tmp_path: Path, gate: Gate
) -> None:
    """VP_BUILD_WORDS=true (the default): the words check reads the vocabulary from the model's
    tokenizer.json, and a complete `words` collection needs no embedding, so /readyz is 200 with
    the model's load still held at the gate."""
    settings = make_settings(tmp_path, embedder=DEFAULT_MODEL, build_words=True)
    engine = Engine(settings)
    col = engine.create_collection(WORDS, metric="cosine", index="flat")
    words = embed.LazyEmbedder(DEFAULT_MODEL, 384, 1, 64).vocabulary()  # tokenizer.json
    rng = np.random.default_rng(0)
    X = rng.normal(size=(len(words), 384)).astype(np.float32)  # (n, 384) stand-in vectors
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    # rows as an embedding build writes them: the checksum covers text and metadata only
    col.store.upsert(
        [NewDoc(w, w, {}, x, content_hash(w, {}, None)) for w, x in zip(words, X, strict=True)]
    )
    engine.close()
    app = create_app(settings)
    with open_client(app) as client:
        client.wait_ready()
        body = client.get("/readyz").json()
        assert body["words"] == f"ready ({len(words)} words)", body
        assert app.state.engine.embedder().loaded is False
        r = client.post(f"/v1/collections/{WORDS}/search", json={"vector": X[5].tolist(), "k": 1})
        assert r.json()["hits"][0]["id"] == words[5]
        gate.fail = "not needed here"  # let the warmup thread end without loading the model
        gate.open.set()


def test_a_bf16_service_keeps_fp32_collections_on_their_own_embedder(
    tmp_path: Path, gate: Gate
) -> None:
    """VP_EMBED_BACKEND=bf16 renames the default embedder: an fp32 collection still opens (with
    the model it was made with), asking for it with the bf16 default is 409 embedder_mismatch,
    and a new collection records '+bf16'. No model is loaded for any of it."""
    old = make_settings(tmp_path, embedder=DEFAULT_MODEL)
    Engine(old).create_collection("old").close()
    settings = make_settings(tmp_path, embedder=DEFAULT_MODEL, embed_backend="bf16")
    with open_client(create_app(settings)) as client:
        client.wait_ready()
        r = client.post("/v1/collections", json={"name": "old", "get_or_create": True})
        assert r.status_code == 409 and r.json()["error"] == "embedder_mismatch", r.text
        assert client.get("/v1/collections/old").json()["embedder"] == DEFAULT_MODEL
        r = client.post("/v1/collections", json={"name": "new"})
        assert r.status_code == 201 and r.json()["embedder"] == DEFAULT_MODEL + BF16, r.text
        gate.fail = "not needed here"
        gate.open.set()
