"""Search over HTTP: by text, by vector, filtered, thresholded, batched; bad queries are 422."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from service.app import create_app

from .conftest import DOCS, RecordingClient, assert_error, make_settings, open_client

URL = "/v1/collections/docs/search"


def ids(r: Any) -> list[str]:
    return [h["id"] for h in r.json()["hits"]]


def test_search_by_text_is_best_first(docs: RecordingClient) -> None:
    r = docs.post(URL, json={"query": "a cat on a mat", "k": 4})
    body = r.json()
    assert (body["metric"], body["higher_is_better"]) == ("cosine", True)
    assert ids(r)[0] == "cat"
    scores = [h["score"] for h in body["hits"]]
    assert scores == sorted(scores, reverse=True)
    hit = body["hits"][0]
    assert set(hit) == {"id", "score", "text", "metadata"}  # no vector unless asked
    assert hit["metadata"] == DOCS[0]["metadata"]


def test_search_by_vector_finds_the_document_itself(docs: RecordingClient) -> None:
    v = docs.get("/v1/collections/docs/documents/car", params={"with_vectors": True}).json()
    r = docs.post(URL, json={"vector": v["vector"], "k": 1, "with_vectors": True})
    (hit,) = r.json()["hits"]
    assert hit["id"] == "car"
    assert hit["score"] == pytest.approx(1.0, abs=1e-5)
    assert hit["vector"] == v["vector"]


def test_filter_and_threshold(docs: RecordingClient) -> None:
    r = docs.post(URL, json={"query": "cat", "filter": {"kind": "machine"}})
    assert ids(r) == ["car"]
    r = docs.post(URL, json={"query": "cat", "filter": {"year": {"$in": [2020, 2023]}}, "k": 4})
    assert set(ids(r)) == {"cat", "sun"}
    r = docs.post(URL, json={"query": "cat", "k": 4, "score_threshold": 0.2})
    assert r.json()["hits"] and all(h["score"] >= 0.2 for h in r.json()["hits"])


def test_l2_scores_are_distances_lowest_first(client: RecordingClient) -> None:
    client.post("/v1/collections", json={"name": "pts", "dim": 2, "metric": "l2"})
    points = [{"id": str(i), "vector": [float(i), 0.0]} for i in range(5)]
    client.put("/v1/collections/pts/documents", json={"documents": points})
    r = client.post("/v1/collections/pts/search", json={"vector": [1.2, 0.0], "k": 3})
    assert (r.json()["metric"], r.json()["higher_is_better"]) == ("l2", False)
    assert ids(r) == ["1", "2", "0"]
    assert [h["score"] for h in r.json()["hits"]] == pytest.approx([0.2, 0.8, 1.2], abs=1e-5)


def test_hnsw_search_takes_ef_search_and_exact(client: RecordingClient) -> None:
    client.post(
        "/v1/collections",
        json={"name": "h", "dim": 8, "index": "hnsw", "params": {"ann_threshold": 1}},
    )
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 8))
    client.put(
        "/v1/collections/h/documents",
        json={"documents": [{"id": f"d{i}", "vector": x.tolist()} for i, x in enumerate(X)]},
    )
    q = X[7].tolist()
    for body in ({"params": {"ef_search": 64}}, {"exact": True}):
        r = client.post("/v1/collections/h/search", json={"vector": q, "k": 3, **body})
        assert r.status_code == 200, r.text
        assert ids(r)[0] == "d7"


BAD_SEARCHES: list[tuple[dict[str, Any], str, str]] = [
    ({"query": "cat", "k": 0}, "invalid_input", "k"),
    ({"query": "cat", "k": 10_001}, "invalid_input", "k"),
    ({"query": "cat", "k": 1001}, "invalid_input", "k"),  # over VP_MAX_K (1000)
    ({"query": "cat", "k": "3"}, "invalid_input", "k"),
    ({"query": "cat", "k": True}, "invalid_input", "k"),
    ({"query": ""}, "invalid_input", "query"),
    ({"query": " \n"}, "invalid_input", "query"),
    ({"query": "x" * 100_001}, "invalid_input", "query"),
    ({}, "invalid_input", "query"),
    ({"query": "cat", "vector": [1.0] * 384}, "invalid_input", "query"),
    ({"vector": [1.0, 2.0]}, "dimension_mismatch", "vector"),
    ({"vector": []}, "invalid_input", "vector"),
    ({"query": "cat", "filter": {"kind": {"$regex": "a"}}}, "invalid_filter", "filter.kind.$regex"),
    ({"query": "cat", "filter": "kind=animal"}, "invalid_input", "filter"),
    ({"query": "cat", "params": {"nprobe": 0}}, "invalid_input", "params.nprobe"),
    ({"query": "cat", "top_k": 3}, "invalid_input", "top_k"),
]


@pytest.mark.parametrize(("body", "error", "field"), BAD_SEARCHES)
def test_bad_search_is_422_naming_the_field(
    docs: RecordingClient, body: dict[str, Any], error: str, field: str
) -> None:
    assert_error(docs.post(URL, json=body), 422, error, field)


def test_nan_in_a_query_vector_is_422(docs: RecordingClient) -> None:
    body = '{"vector": [NaN' + ", 0.0" * 383 + "]}"
    r = docs.post(URL, content=body, headers={"content-type": "application/json"})
    assert_error(r, 422, "invalid_input", "vector[0]")
    body = '{"query": "cat", "score_threshold": Infinity}'
    r = docs.post(URL, content=body, headers={"content-type": "application/json"})
    assert_error(r, 422, "invalid_input", "score_threshold")


def test_search_in_an_unknown_collection_is_404(client: RecordingClient) -> None:
    assert_error(
        client.post("/v1/collections/nope/search", json={"query": "x"}), 404, "collection_not_found"
    )
    r = client.post("/v1/collections/nope/search/batch", json={"searches": [{"query": "x"}]})
    assert_error(r, 404, "collection_not_found")


def test_max_k_comes_from_the_settings(tmp_path: Path) -> None:
    with open_client(create_app(make_settings(tmp_path, max_k=2))) as c:
        c.wait_ready()
        c.post("/v1/collections", json={"name": "docs"})
        r = c.post(URL, json={"query": "x", "k": 3})
        assert_error(r, 422, "invalid_input", "k")
        assert "VP_MAX_K" in r.json()["detail"]


def test_batch_search_answers_in_request_order(docs: RecordingClient) -> None:
    searches = [
        {"query": "red car"},
        {"query": "sun star", "k": 1},
        {"query": "cat", "filter": {"kind": "animal"}, "k": 2},
    ]
    r = docs.post(f"{URL}/batch", json={"searches": searches})
    body = r.json()
    assert body["metric"] == "cosine"
    firsts = [res["hits"][0]["id"] for res in body["results"]]
    assert firsts == ["car", "sun", "cat"]
    assert len(body["results"][1]["hits"]) == 1
    assert {h["id"] for h in body["results"][2]["hits"]} == {"cat", "dog"}
    single = docs.post(URL, json=searches[0]).json()
    assert body["results"][0]["hits"] == single["hits"]


@pytest.mark.parametrize(
    ("searches", "field"),
    [
        ([{"query": "a"}, {"k": 2}], "searches[1].query"),
        ([{"query": "a"}, {"query": "b", "k": 5000}], "searches[1].k"),
        ([{"query": "a"}, {"vector": [1.0]}], "searches[1].vector"),
        ([{"query": "a"}, {"query": ""}], "searches[1].query"),
        ([], "searches"),
        ([{"query": "a"}] * 257, "searches"),
    ],
)
def test_bad_batch_search_names_the_search(
    docs: RecordingClient, searches: list[dict[str, Any]], field: str
) -> None:
    assert_error(docs.post(f"{URL}/batch", json={"searches": searches}), 422, field=field)
