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

from indexer import Engine, Settings
from indexer.jobs import build
from indexer.ray_jobs import build_ray
from indexer.readers import Record
from indexer.shards import shard_of
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


def records() -> list[Record]:
    return [
        Record(
            i + 1, f"d{i}", " ".join(WORDS[(i * j) % 10] for j in range(1, 3 + i % 7)), {"t": i % 2}
        )
        for i in range(200)
    ]


@pytest.fixture(scope="module")
def whole(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A TestClient of the single-process service over one unsharded collection `docs` of the
    same records: the reference for writes (a sharded collection refuses them locally)."""
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("whole") / "data", embedder="hash-384", build_words=False
    )
    eng = Engine(settings)
    build(eng, "docs", records(), batch_size=50)
    eng.close()
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory, local_ray: Any) -> Iterator[tuple[str, Any]]:
    """(the Serve URL, a TestClient of the single-process service) over one sharded collection."""
    from ray import serve

    from service.ray_serve import deploy

    data = tmp_path_factory.mktemp("serve") / "data"
    settings = Settings(data_dir=data, embedder="hash-384", build_words=False)
    build_ray(settings, "docs", records(), shards=2, batch_size=50)
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


ANALOGIES: list[dict[str, Any]] = [
    {"positive": ["king", "woman"], "negative": ["man"], "collection": "docs", "k": 5},
    {"positive": ["king", "woman"], "negative": ["man"], "collection": "docs", "method": "3cosmul"},
    {"positive": ["d17", "D18"], "negative": ["d3"], "collection": "docs", "k": 7},
    {"positive": ["d17", "river"], "collection": "docs", "k": 4, "exclude_inputs": False},
    {"positive": ["king"], "collection": "nope"},
    {"positive": [" "], "collection": "docs"},
    {"positive": ["king"], "collection": "docs", "k": 0},
]


@pytest.mark.parametrize("body", ANALOGIES, ids=lambda b: "-".join(b["positive"]))
def test_serve_analogy_like_the_local_sharded_collection(
    both: tuple[str, Any], body: dict[str, Any]
) -> None:
    """Each shard scores its own vectors; the merge equals indexer/analogy.py over the local
    ShardedCollection (terms that are document ids resolved on their shard)."""
    url, local = both
    served = httpx.post(f"{url}/v1/analogy", json=body, timeout=60)
    want = local.post("/v1/analogy", json=body)
    assert served.status_code == want.status_code, served.text
    assert rounded(served.json()) == rounded(want.json())
    if want.status_code == 200:
        assert len(want.json()["hits"]) > 0
    path = "/v1/analogy?q=king-man%2Bwoman&collection=docs&k=6"
    served = httpx.get(f"{url}{path}", timeout=60)
    assert served.status_code == 200 and rounded(served.json()) == rounded(local.get(path).json())


def on_shard(shard: int, prefix: str, n: int = 2) -> list[str]:
    """Ids with this prefix that live on `shard` (of n)."""
    return [f"{prefix}{i}" for i in range(100) if shard_of(f"{prefix}{i}", n) == shard]


def test_serve_writes_like_the_single_process_service(both: tuple[str, Any], whole: Any) -> None:
    """Upsert and delete through the ingress answer like one collection of the same documents,
    and land on the shards (the local sharded service reads them back). Runs after the read
    tests of this module, which expect the 200 built documents."""
    url, local = both
    a, b = on_shard(0, "new-"), on_shard(1, "new-")

    def same(method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        served = httpx.request(method, f"{url}{path}", json=body, timeout=60)
        want = whole.request(method, path, json=body)
        assert served.status_code == want.status_code, (path, body, served.text)
        assert rounded(served.json()) == rounded(want.json()), (path, body)
        return served.json()

    docs = [
        {"id": a[0], "text": "king queen river", "metadata": {"tag": "x"}},
        {"id": b[0], "text": "apple pear", "metadata": {"tag": "x"}},
        {"id": b[1], "vector": [0.5] * 384},
        {"id": "d5", "text": "a replaced text"},
    ]
    assert same("PUT", "/v1/collections/docs/documents", {"documents": docs})["count"] == 203
    again = {"documents": docs, "skip_unchanged": True}
    assert same("PUT", "/v1/collections/docs/documents", again)["skipped"] == 4
    for doc_id in (a[0], b[0], "d5"):  # on the shards: the local sharded service reads it back
        path = f"/v1/collections/docs/documents/{doc_id}?with_vectors=true"
        assert rounded(local.get(path).json()) == rounded(same("GET", path))
    same("POST", "/v1/collections/docs/search", {"query": "king queen river", "k": 3})
    same("POST", "/v1/collections/docs/documents/delete", {"ids": [a[0], "nope", b[1]]})
    same("POST", "/v1/collections/docs/documents/delete", {"filter": {"tag": "x"}})
    same("DELETE", "/v1/collections/docs/documents/d5")
    same("DELETE", "/v1/collections/docs/documents/d5")  # 404 now
    same("POST", "/v1/collections/docs/documents/delete", {})  # neither ids nor a filter
    same("POST", "/v1/collections/docs/documents/delete", {"ids": []})
    assert httpx.get(f"{url}/v1/collections/docs", timeout=60).json()["count"] == 199
    for bad in (
        [{"id": "x", "text": "x"}, {"id": "x", "text": "y"}],  # a duplicate id
        [{"id": "x"}],  # neither text nor vector
        [{"id": "x", "vector": [1.0] * 3}],  # a dimension mismatch
        [{"id": "", "text": "x"}],
    ):
        same("PUT", "/v1/collections/docs/documents", {"documents": bad})
    same("PUT", "/v1/collections/nope/documents", {"documents": [{"id": "x", "text": "x"}]})


def test_serve_batch_over_two_shards_is_atomic_per_shard_only(
    both: tuple[str, Any], whole: Any
) -> None:
    """The error names the request's index, as one collection does; the other shard's part of
    the batch stays written (documented: not atomic across shards)."""
    url, local = both
    a, b = on_shard(0, "part-"), on_shard(1, "part-")
    batch = {
        "documents": [
            {"id": a[0], "text": "stone"},
            {"id": a[1], "text": "stone blue"},
            {"id": b[0], "vector": [1.0, 2.0]},  # the shard's documents[0], the request's [2]
        ]
    }
    served = httpx.put(f"{url}/v1/collections/docs/documents", json=batch, timeout=60)
    want = whole.put("/v1/collections/docs/documents", json=batch)
    assert served.status_code == want.status_code == 422
    assert served.json() == want.json() and "documents[2]" in served.json()["field"]
    assert whole.get(f"/v1/collections/docs/documents/{a[0]}").status_code == 404
    assert local.get(f"/v1/collections/docs/documents/{a[0]}").status_code == 200  # shard 0's
    assert local.get(f"/v1/collections/docs/documents/{b[0]}").status_code == 404


COLLECTION_FREE: list[tuple[str, dict[str, Any]]] = [
    ("/v1/embeddings", {"input": ["a red king", "pear"], "model": "hash-384"}),
    ("/v1/similarity", {"texts": ["a red king", "the queen", "pears"]}),
    ("/v1/math/softmax", {"logits": [2.0, 1.0, 0.1], "temperature": 0.5}),
]


@pytest.mark.parametrize(("path", "body"), COLLECTION_FREE, ids=lambda x: str(x))
def test_serve_answers_the_collection_free_routes_like_the_single_process_service(
    both: tuple[str, Any], path: str, body: dict[str, Any]
) -> None:
    url, local = both
    served = httpx.post(f"{url}{path}", json=body, timeout=60)
    want = local.post(path, json=body)
    assert served.status_code == want.status_code, (served.text, want.text)
    assert rounded(served.json()) == rounded(want.json())
    bad = httpx.post(f"{url}{path}", json={}, timeout=60)  # the same 422 naming the field
    assert (bad.status_code, bad.json()) == (422, local.post(path, json={}).json())
