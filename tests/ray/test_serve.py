"""Ray Serve answers the single-process HTTP API over a sharded collection: for the same request
the ingress and the single-process service (which opens the same shards locally) give the same
status and body, in every search mode, for batches, documents and errors. One local Ray node
with shard0/shard1."""

import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from indexer import Settings
from indexer.ray_jobs import build_ray
from indexer.readers import Record
from service.app import create_app

pytestmark = pytest.mark.slow

WORDS = ["king", "queen", "river", "stone", "apple", "pear", "red", "blue", "man", "woman"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rounded(x: Any) -> Any:
    """A JSON body with its floats to 5 places: the two sides serialise floats alike, but a
    float32 score may come back one ulp apart through a different path."""
    if isinstance(x, float):
        return round(x, 5)
    if isinstance(x, list):
        return [rounded(v) for v in x]
    if isinstance(x, dict):
        return {k: rounded(v) for k, v in x.items()}
    return x


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory, local_ray: Any) -> Iterator[tuple[str, Any]]:
    """(the Serve URL, a TestClient of the single-process service) over one sharded collection."""
    from ray import serve

    from service.ray_serve import deploy

    data = tmp_path_factory.mktemp("serve") / "data"
    settings = Settings(data_dir=data, embedder="hash-384", build_words=False)
    recs = [
        Record(
            i + 1, f"d{i}", " ".join(WORDS[(i * j) % 10] for j in range(1, 3 + i % 7)), {"t": i % 2}
        )
        for i in range(200)
    ]
    build_ray(settings, "docs", recs, shards=2, batch_size=50)
    port = free_port()
    deploy(str(data), "docs", "hash-384", "127.0.0.1", port)
    try:
        with TestClient(create_app(settings)) as local:
            yield f"http://127.0.0.1:{port}", local
    finally:
        serve.shutdown()  # type: ignore[no-untyped-call]


SEARCHES: list[dict[str, Any]] = [
    {"query": "king river", "k": 7},
    {"query": "queen", "k": 5, "filter": {"t": 1}},
    {"query": "apple pear stone", "k": 6, "mode": "keyword"},
    {"query": "apple pear stone", "k": 6, "mode": "keyword", "filter": {"t": 0}},
    {"query": "red man", "k": 8, "mode": "hybrid", "fusion": "rrf"},
    {"query": "red man", "k": 8, "mode": "hybrid", "alpha": 0.3, "filter": {"t": 1}},
    {"query": "blue woman", "k": 5, "diversity": 0.7, "candidates": 30},
    {"query": "blue woman", "k": 5, "mode": "hybrid", "diversity": 0.0},
    {"query": "stone", "k": 3, "with_vectors": True},
]


@pytest.mark.parametrize("body", SEARCHES, ids=lambda b: f"{b.get('mode', 'vector')}-{b['k']}")
def test_serve_searches_like_the_single_process_service(
    both: tuple[str, Any], body: dict[str, Any]
) -> None:
    url, local = both
    served = httpx.post(f"{url}/v1/collections/docs/search", json=body, timeout=60)
    want = local.post("/v1/collections/docs/search", json=body)
    assert served.status_code == want.status_code == 200, served.text
    assert len(want.json()["hits"]) > 0
    assert rounded(served.json()) == rounded(want.json())


def test_serve_batch_search_and_documents_like_the_single_process_service(
    both: tuple[str, Any],
) -> None:
    url, local = both
    batch = {"searches": SEARCHES[:6]}
    served = httpx.post(f"{url}/v1/collections/docs/search/batch", json=batch, timeout=60)
    want = local.post("/v1/collections/docs/search/batch", json=batch)
    assert served.status_code == 200 and rounded(served.json()) == rounded(want.json())
    for path in (
        "/v1/collections/docs/documents/d17",
        "/v1/collections/docs/documents/d18?with_vectors=true",
        "/v1/collections/docs/documents?limit=7",
        "/v1/collections/docs/documents?limit=50&cursor=d150",
    ):
        served = httpx.get(f"{url}{path}", timeout=60)
        want = local.get(path)
        assert served.status_code == 200 and rounded(served.json()) == rounded(want.json()), path
    r = httpx.get(f"{url}/v1/collections/docs", timeout=60)
    assert r.status_code == 200 and r.json()["count"] == 200
    # every shard did work for the searches and the list; a document was asked of one shard
    assert sum(httpx.get(f"{url}/v1/nodes", timeout=60).json().values()) > 0


@pytest.mark.parametrize(
    "method, path, body",
    [
        ("POST", "/v1/collections/nope/search", {"query": "x"}),
        ("POST", "/v1/collections/docs/search", {"vector": [1.0, 2.0], "k": 3}),
        ("POST", "/v1/collections/docs/search", {"query": "x", "vector": [0.0] * 384}),
        ("POST", "/v1/collections/docs/search", {"vector": [0.1] * 384, "mode": "keyword"}),
        ("POST", "/v1/collections/docs/search", {"query": "x", "k": 5, "candidates": 5}),
        ("POST", "/v1/collections/docs/search", {"query": "x", "k": 0}),
        ("POST", "/v1/collections/docs/search", {"query": "x", "filter": {"t": {"$near": 1}}}),
        ("POST", "/v1/collections/docs/search", {"query": "x", "mode": "fuzzy"}),
        (
            "POST",
            "/v1/collections/docs/search/batch",
            {"searches": [{"query": "x"}, {"query": "y", "mode": "keyword", "vector": [0.0]}]},
        ),
        ("GET", "/v1/collections/docs/documents/no-such-id", None),
        ("GET", "/v1/collections/nope/documents/d1", None),
    ],
)
def test_serve_errors_like_the_single_process_service(
    both: tuple[str, Any], method: str, path: str, body: dict[str, Any] | None
) -> None:
    url, local = both
    served = httpx.request(method, f"{url}{path}", json=body, timeout=60)
    want = local.request(method, path, json=body)
    assert served.status_code == want.status_code >= 400, served.text
    assert served.json() == want.json()
