"""The official `openai` client, unchanged, against /v1/embeddings (it asks for base64 by
default and decodes it itself)."""

from __future__ import annotations

import numpy as np
import pytest

from .conftest import RecordingClient

openai = pytest.importorskip("openai")


def make(client: RecordingClient) -> object:
    return openai.OpenAI(base_url="http://testserver/v1", api_key="unused", http_client=client)


def test_openai_client_gets_our_vectors(client: RecordingClient) -> None:
    oa = make(client)
    texts = ["the cat sat", "a dog barked"]
    out = oa.embeddings.create(input=texts, model="hash-384")  # type: ignore[attr-defined]
    got = np.array([d.embedding for d in out.data], dtype=np.float32)
    want = client.app.state.engine.embedder().embed(texts)  # type: ignore[attr-defined]
    np.testing.assert_array_equal(got, want)
    assert out.model == "hash-384" and out.usage.prompt_tokens == 6
    floats = oa.embeddings.create(input="x", model="hash-384", encoding_format="float")  # type: ignore[attr-defined]
    assert len(floats.data[0].embedding) == 384


def test_openai_client_sees_an_unknown_model_as_not_found(client: RecordingClient) -> None:
    with pytest.raises(openai.NotFoundError):
        make(client).embeddings.create(input="x", model="text-embedding-3-small")  # type: ignore[attr-defined]
