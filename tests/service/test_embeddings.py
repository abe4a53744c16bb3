"""The OpenAI-compatible embeddings endpoint: the wire format clients rely on, and clean errors
for what they may send that we cannot serve."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
import pytest

from .conftest import RecordingClient, assert_error

URL = "/v1/embeddings"


def test_a_single_string(client: RecordingClient) -> None:
    r = client.post(URL, json={"input": "The food was delicious"})
    body = r.json()
    assert body["object"] == "list"
    assert body["model"] == "hash-384"
    (item,) = body["data"]
    assert (item["object"], item["index"]) == ("embedding", 0)
    assert len(item["embedding"]) == 384
    assert np.linalg.norm(item["embedding"]) == pytest.approx(1.0, abs=1e-5)
    assert body["usage"] == {"prompt_tokens": 4, "total_tokens": 4}


def test_a_list_keeps_its_order_and_matches_the_engine(client: RecordingClient) -> None:
    texts = ["first text", "second text", "first text"]
    body = client.post(URL, json={"input": texts, "model": "hash-384"}).json()
    assert [d["index"] for d in body["data"]] == [0, 1, 2]
    E = np.array([d["embedding"] for d in body["data"]])
    np.testing.assert_array_equal(E[0], E[2])
    want = client.app.state.engine.embedder().embed(texts)  # type: ignore[attr-defined]
    np.testing.assert_allclose(E, want, atol=1e-7)


def test_base64_is_little_endian_float32(client: RecordingClient) -> None:
    plain = client.post(URL, json={"input": ["a cat"]}).json()["data"][0]["embedding"]
    r = client.post(URL, json={"input": ["a cat"], "encoding_format": "base64"})
    raw = base64.b64decode(r.json()["data"][0]["embedding"])
    np.testing.assert_array_equal(np.frombuffer(raw, dtype="<f4"), np.float32(plain))


def test_openai_extras_are_accepted(client: RecordingClient) -> None:
    body = {"input": "x", "encoding_format": "float", "dimensions": 384, "user": "u-1"}
    assert client.post(URL, json=body).status_code == 200


@pytest.mark.parametrize(
    ("body", "status", "error", "field", "says"),
    [
        (
            {"input": "x", "model": "text-embedding-3-small"},
            404,
            "model_not_found",
            "model",
            "not served",
        ),
        ({"input": [[15339, 1917]]}, 422, "invalid_input", "input", "check_embedding_ctx_length"),
        ({"input": [15339, 1917]}, 422, "invalid_input", "input", "token arrays"),
        ({"input": ""}, 422, "invalid_input", "input", "non-empty"),
        ({"input": ["ok", " "]}, 422, "invalid_input", "input", "input[1]"),
        ({"input": []}, 422, "invalid_input", "input", "1 to 2048"),
        ({"input": ["x"] * 2049}, 422, "invalid_input", "input", "1 to 2048"),
        ({"input": "x" * 100_001}, 422, "invalid_input", "input", "longer"),
        ({"input": {"text": "x"}}, 422, "invalid_input", "input", "string"),
        ({"input": "x", "encoding_format": "int8"}, 422, "invalid_input", "encoding_format", ""),
        ({"input": "x", "dimensions": 256}, 422, "invalid_input", "dimensions", "384"),
        ({}, 422, "invalid_input", "input", ""),
    ],
)
def test_bad_embeddings_requests(
    client: RecordingClient, body: dict[str, Any], status: int, error: str, field: str, says: str
) -> None:
    r = client.post(URL, json=body)
    assert_error(r, status, error, field)
    assert says in r.json()["detail"]
