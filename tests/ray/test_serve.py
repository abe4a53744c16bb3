"""Ray Serve answers the single-process HTTP API over a sharded collection: the same hits as
the local sharded search, the same error bodies. One local Ray node with shard0/shard1."""

import socket
from pathlib import Path
from typing import Any

import httpx
import pytest

from indexer import Engine, Query, Settings
from indexer.ray_jobs import build_ray
from indexer.readers import Record

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_answers_like_the_local_sharded_collection(tmp_path: Path, local_ray: Any) -> None:
    from ray import serve

    from service.ray_serve import deploy

    settings = Settings(data_dir=tmp_path / "data", embedder="hash-384")
    recs = [Record(i + 1, f"d{i}", f"text {i} on topic {i % 9}", {"t": i % 2}) for i in range(200)]
    build_ray(settings, "docs", recs, shards=2, batch_size=50)
    port = free_port()
    deploy(str(tmp_path / "data"), "docs", "hash-384", "127.0.0.1", port)
    try:
        url = f"http://127.0.0.1:{port}"
        local = Engine(settings).collection("docs")
        for body in ({"query": "topic 4", "k": 7}, {"query": "text", "k": 5, "filter": {"t": 1}}):
            r = httpx.post(f"{url}/v1/collections/docs/search", json=body, timeout=30)
            assert r.status_code == 200, r.text
            want = local.search(Query(text=body["query"], k=body["k"], filter=body.get("filter")))
            got = r.json()
            assert got["metric"] == "cosine" and got["higher_is_better"] is True
            assert [h["score"] for h in got["hits"]] == pytest.approx([h.score for h in want])
        r = httpx.get(f"{url}/v1/collections/docs", timeout=30)
        assert r.status_code == 200 and r.json()["count"] == 200
        r = httpx.post(f"{url}/v1/collections/nope/search", json={"query": "x"}, timeout=30)
        assert r.status_code == 404 and r.json()["error"] == "collection_not_found"
        bad = {"vector": [1.0, 2.0], "k": 3}
        r = httpx.post(f"{url}/v1/collections/docs/search", json=bad, timeout=30)
        assert r.status_code == 422 and r.json()["error"] == "dimension_mismatch", r.text
    finally:
        serve.shutdown()
