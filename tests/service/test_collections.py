"""Collections over HTTP: create, list, describe, drop, and every way creating can fail."""

from __future__ import annotations

from typing import Any

import pytest

from indexer import DocumentIn, Engine

from .conftest import RecordingClient, assert_error, describe


def names(client: RecordingClient) -> list[str]:
    return [c["name"] for c in client.get("/v1/collections").json()["collections"]]


def test_create_describe_list_and_drop(client: RecordingClient) -> None:
    assert client.get("/v1/collections").json() == {"collections": []}
    r = client.post("/v1/collections", json={"name": "notes", "metric": "l2"})
    assert r.status_code == 201, r.text
    info = r.json()
    assert info["name"] == "notes"
    assert (info["metric"], info["index"], info["dim"], info["count"]) == ("l2", "flat", 384, 0)
    assert info["embedder"] == "hash-384"
    assert "lower is better" in info["score"]
    assert describe(client, "notes") == info
    assert names(client) == ["notes"]
    r = client.delete("/v1/collections/notes")
    assert r.status_code == 200
    assert r.json() == {"name": "notes", "dropped": True}
    assert names(client) == []
    assert_error(client.get("/v1/collections/notes"), 404, "collection_not_found")


@pytest.mark.parametrize("index", ["hnsw", "ivf", "sq8"])
def test_ann_collections_take_their_params(client: RecordingClient, index: str) -> None:
    params: dict[str, Any] = {"hnsw": {"M": 16}, "ivf": {"nlist": 4}, "sq8": {}}[index]
    body = {"name": f"c-{index}", "metric": "dot", "index": index, "params": params}
    r = client.post("/v1/collections", json=body)
    assert r.status_code == 201, r.text
    assert (r.json()["index"], r.json()["params"]) == (index, params)


def test_vector_only_collection_has_no_embedder(client: RecordingClient) -> None:
    r = client.post("/v1/collections", json={"name": "vecs", "dim": 3})
    assert r.status_code == 201
    assert (r.json()["dim"], r.json()["embedder"]) == (3, None)


def test_creating_an_existing_collection_is_409_and_changes_nothing(
    client: RecordingClient,
) -> None:
    client.post("/v1/collections", json={"name": "notes"})
    client.put("/v1/collections/notes/documents", json={"documents": [{"id": "a", "text": "x"}]})
    before = describe(client, "notes")
    r = client.post("/v1/collections", json={"name": "notes", "metric": "dot"})
    assert_error(r, 409, "collection_exists", "name")
    assert describe(client, "notes") == before


def test_get_or_create_returns_the_same_spec_and_refuses_another(client: RecordingClient) -> None:
    body = {"name": "notes", "metric": "dot", "get_or_create": True}
    first = client.post("/v1/collections", json=body)
    assert first.status_code == 201
    client.put("/v1/collections/notes/documents", json={"documents": [{"id": "a", "text": "x"}]})
    again = client.post("/v1/collections", json=body)
    assert again.status_code == 200
    assert again.json()["count"] == 1
    before = describe(client, "notes")
    r = client.post("/v1/collections", json={**body, "metric": "l2"})
    assert_error(r, 409, "spec_mismatch", "metric")
    r = client.post("/v1/collections", json={**body, "embedder": "hash-64"})
    assert_error(r, 409, "embedder_mismatch", "embedder")
    assert describe(client, "notes") == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "bad name!"}, "name"),
        ({"name": ""}, "name"),
        ({"name": "x" * 65}, "name"),
        ({"name": "c", "metric": "manhattan"}, "metric"),
        ({"name": "c", "index": "lsh"}, "index"),
        ({"name": "c", "index": "hnsw", "params": {"depth": 3}}, "params.depth"),
        ({"name": "c", "index": "hnsw", "params": {"M": 0}}, "params.M"),
        ({"name": "c", "params": {"M": "16"}}, "params.M"),
        ({"name": "c", "dim": 0}, "dim"),
        ({"name": "c", "dim": 3, "embedder": "hash-384"}, "dim"),
        ({"name": "c", "embedder": "/etc/some-model"}, "embedder"),
        ({"name": "c", "metrik": "l2"}, "metrik"),
        ({"metric": "l2"}, "name"),
    ],
)
def test_bad_create_is_422_naming_the_field_and_creates_nothing(
    client: RecordingClient, body: dict[str, Any], field: str
) -> None:
    assert_error(client.post("/v1/collections", json=body), 422, field=field)
    assert names(client) == []


def test_unknown_collection_is_404_everywhere(client: RecordingClient) -> None:
    assert_error(client.get("/v1/collections/nope"), 404, "collection_not_found", "name")
    assert_error(client.delete("/v1/collections/nope"), 404, "collection_not_found")


def test_a_collection_built_by_a_batch_job_is_served_without_restart(
    client: RecordingClient,
) -> None:
    """Another process (here: another Engine on the same directory) builds a collection and
    later adds to it; the running service lists and searches it without a restart."""
    settings = client.app.state.settings  # type: ignore[attr-defined]
    job = Engine(settings)
    try:
        col = job.create_collection("batch")
        col.upsert([DocumentIn("one", "the first document")])
        assert "batch" in names(client)
        hits = client.post("/v1/collections/batch/search", json={"query": "first"}).json()["hits"]
        assert [h["id"] for h in hits] == ["one"]
        col.upsert([DocumentIn("two", "the second document")])
        assert describe(client, "batch")["count"] == 2
        job.drop_collection("batch")
        col = job.create_collection("batch", metric="l2")  # rebuilt with another spec
        col.upsert([DocumentIn("three", "a third one")])
        assert describe(client, "batch")["metric"] == "l2"
        hits = client.post("/v1/collections/batch/search", json={"query": "third"}).json()["hits"]
        assert [h["id"] for h in hits] == ["three"]
    finally:
        job.close()
