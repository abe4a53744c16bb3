"""`GET /metrics`: Prometheus text that prometheus-client's own parser reads, whose counters move
with the requests, searches and embeddings they count."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from .conftest import make_app_client

SEARCH = "/v1/collections/{name}/search"
Labels = dict[str, str]


def scrape(client: TestClient, **headers: str) -> dict[str, list[tuple[Labels, float]]]:
    """{sample name: [(labels, value)]} from one scrape."""
    r = client.get("/metrics", headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain; version=")
    samples: dict[str, list[tuple[Labels, float]]] = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            samples.setdefault(s.name, []).append((dict(s.labels), s.value))
    return samples


def value(samples: dict[str, list[tuple[Labels, float]]], name: str, **labels: str) -> float:
    """The sample whose labels include `labels` (0 if it does not exist yet)."""
    found = [v for ls, v in samples.get(name, []) if labels.items() <= ls.items()]
    assert len(found) <= 1, (name, labels, found)
    return found[0] if found else 0.0


def test_request_counters_and_latency_histograms_move_per_route_and_status(
    docs: TestClient,
) -> None:
    before = scrape(docs)
    for q in ("cat", "dog", "star"):
        assert docs.post("/v1/collections/docs/search", json={"query": q}).status_code == 200
    assert docs.get("/v1/collections/nope").status_code == 404
    after = scrape(docs)

    labels = {"method": "POST", "route": SEARCH, "status": "200"}
    assert (
        value(after, "vp_http_requests_total", **labels)
        - value(before, "vp_http_requests_total", **labels)
        == 3
    )
    count = "vp_http_request_duration_seconds_count"
    assert value(after, count, **labels) - value(before, count, **labels) == 3
    assert value(after, "vp_http_request_duration_seconds_sum", **labels) > 0
    inf = value(after, "vp_http_request_duration_seconds_bucket", le="+Inf", **labels)
    assert inf == value(after, count, **labels)
    # the template, never the raw path: one series for every collection name
    routes = {ls["route"] for ls, _ in after["vp_http_requests_total"]}
    assert "/v1/collections/{name}" in routes and "/v1/collections/nope" not in routes
    assert value(after, "vp_errors_total", error="collection_not_found", status="404") == 1


def test_search_latency_is_labelled_by_collection_and_index_kind(docs: TestClient) -> None:
    spec = {"name": "graph", "index": "hnsw"}
    assert docs.post("/v1/collections", json=spec).status_code == 201
    docs.put("/v1/collections/graph/documents", json={"documents": [{"id": "a", "text": "x y"}]})
    docs.post("/v1/collections/graph/search", json={"query": "x", "k": 1})
    docs.post("/v1/collections/docs/search", json={"query": "cat"})
    docs.post("/v1/collections/docs/search/batch", json={"searches": [{"query": "a"}] * 2})
    s = scrape(docs)
    name = "vp_search_duration_seconds_count"
    assert value(s, name, collection="graph", index="hnsw", endpoint="search") == 1
    assert value(s, name, collection="docs", index="flat", endpoint="search") == 1
    assert value(s, name, collection="docs", index="flat", endpoint="search_batch") == 1


def test_embedding_batches_and_documents_per_collection(docs: TestClient) -> None:
    before = scrape(docs)
    texts = [{"id": f"n{i}", "text": f"note number {i}"} for i in range(5)]
    docs.put("/v1/collections/docs/documents", json={"documents": texts})
    docs.post("/v1/embeddings", json={"input": ["one", "two", "three"]})
    after = scrape(docs)
    size = "vp_embed_batch_size"
    calls = value(after, f"{size}_count", embedder="hash-384") - value(
        before, f"{size}_count", embedder="hash-384"
    )
    texts_embedded = value(after, f"{size}_sum", embedder="hash-384") - value(
        before, f"{size}_sum", embedder="hash-384"
    )
    assert (calls, texts_embedded) == (2, 8)  # one call of 5 documents, one of 3 inputs
    assert value(after, "vp_embed_duration_seconds_count", embedder="hash-384") >= 3
    assert value(after, "vp_collection_documents", collection="docs", index="flat") == 9
    assert value(after, "vp_ready") == 1
    assert value(after, "process_resident_memory_bytes") > 0


def test_metrics_need_a_key_when_keys_are_set(tmp_path: Path) -> None:
    keys = {"api_key": "rw-key-123", "read_only_api_key": "ro-key-456"}
    with make_app_client(tmp_path, **keys) as client:
        r = client.get("/metrics")
        assert r.status_code == 401 and r.json()["error"] == "unauthorized"
        s = scrape(client, authorization="Bearer ro-key-456")  # Prometheus: the read-only key
        assert value(s, "vp_errors_total", error="unauthorized", status="401") == 1
        assert value(s, "vp_http_requests_total", route="/metrics", status="401") == 1


def test_the_metrics_route_is_not_in_the_openapi_schema(client: TestClient) -> None:
    assert "/metrics" not in client.get("/openapi.json").json()["paths"]
