"""Documents over HTTP: upsert, get, list with a cursor, delete, delete by filter; each refused
request leaves the collection exactly as it was."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from service.app import create_app

from .conftest import DOCS, RecordingClient, assert_error, describe, make_settings, open_client

URL = "/v1/collections/docs/documents"


def vec(*head: float, dim: int = 384) -> list[float]:
    return [*head, *([0.0] * (dim - len(head)))]


def test_upsert_embeds_texts_and_reports_counts(docs: RecordingClient) -> None:
    r = docs.put(URL, json={"documents": [{"id": "moon", "text": "the moon is bright"}]})
    assert r.json() == {"collection": "docs", "upserted": 1, "skipped": 0, "count": 5}
    r = docs.put(URL, json={"documents": DOCS, "skip_unchanged": True})
    assert (r.json()["upserted"], r.json()["skipped"]) == (0, 4)


def test_upsert_replaces_by_id(docs: RecordingClient) -> None:
    docs.put(URL, json={"documents": [{"id": "cat", "text": "a new cat", "metadata": {"v": 2}}]})
    got = docs.get(f"{URL}/cat").json()
    assert got == {"id": "cat", "text": "a new cat", "metadata": {"v": 2}}
    assert describe(docs, "docs")["count"] == 4


def test_upsert_with_a_vector_stores_it_exactly(docs: RecordingClient) -> None:
    v = vec(0.25, -1.5, 3.0)
    docs.put(URL, json={"documents": [{"id": "v", "vector": v, "metadata": {"tag": ["a"]}}]})
    got = docs.get(f"{URL}/v", params={"with_vectors": True}).json()
    assert got["vector"] == v
    assert got["text"] is None
    assert "vector" not in docs.get(f"{URL}/v").json()


def test_ids_may_contain_slashes_and_spaces(docs: RecordingClient) -> None:
    doc_id = "notes/2024/a file.txt"
    docs.put(URL, json={"documents": [{"id": doc_id, "text": "slashes in ids"}]})
    assert docs.get(f"{URL}/notes/2024/a%20file.txt").json()["id"] == doc_id
    assert docs.delete(f"{URL}/notes/2024/a%20file.txt").json()["deleted"] == [doc_id]


BAD_UPSERTS: list[tuple[Any, str, str]] = [
    ([{"id": "x", "vector": [1.0, 2.0]}], "dimension_mismatch", "documents[0].vector"),
    ([{"id": "x", "text": ""}], "invalid_input", "documents[0].text"),
    ([{"id": "x", "text": "   "}], "invalid_input", "documents[0].text"),
    ([{"id": "x", "text": "t"}, {"id": "x", "text": "u"}], "invalid_input", "documents[1].id"),
    ([{"id": "x"}], "invalid_input", "documents[0]"),
    ([{"id": "", "text": "t"}], "invalid_input", "documents[0].id"),
    ([{"id": "x" * 513, "text": "t"}], "invalid_input", "documents[0].id"),
    ([{"id": 7, "text": "t"}], "invalid_input", "documents[0].id"),
    ([{"id": "x", "text": "t", "metadata": [1]}], "invalid_input", "documents[0].metadata"),
    ([{"id": "x", "vector": ["1"] * 384}], "invalid_input", "documents[0].vector[0]"),
    ([{"id": "x", "vector": [0.0] * 384}], "invalid_input", "documents[0].vector"),
    ([{"id": "x", "text": "t", "colour": "red"}], "invalid_input", "documents[0].colour"),
    ([], "invalid_input", "documents"),
]


@pytest.mark.parametrize(("documents", "error", "field"), BAD_UPSERTS)
def test_bad_upsert_is_422_naming_the_field_and_writes_nothing(
    docs: RecordingClient, documents: Any, error: str, field: str
) -> None:
    good = {"id": "good", "text": "a good document"}  # all or nothing: this one is not written
    batch = [*documents, good] if documents else documents
    before = describe(docs, "docs")
    assert_error(docs.put(URL, json={"documents": batch}), 422, error, field)
    assert describe(docs, "docs") == before


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_refused(docs: RecordingClient, token: str) -> None:
    before = describe(docs, "docs")
    vector = token + ", 0.0" * 383
    body = '{"documents": [{"id": "x", "vector": [' + vector + "]}]}"
    r = docs.put(URL, content=body, headers={"content-type": "application/json"})
    assert_error(r, 422, "invalid_input", "documents[0].vector[0]")
    assert "finite" in r.json()["detail"]
    body = '{"documents": [{"id": "x", "text": "t", "metadata": {"score": ' + token + "}}]}"
    r = docs.put(URL, content=body, headers={"content-type": "application/json"})
    assert_error(r, 422, "invalid_input", "documents[0].metadata")
    assert describe(docs, "docs") == before


def test_malformed_json_is_422_on_the_body(docs: RecordingClient) -> None:
    r = docs.put(URL, content=b'{"documents": [', headers={"content-type": "application/json"})
    assert_error(r, 422, "invalid_input", "body")


def test_a_text_in_a_vector_only_collection_is_422(client: RecordingClient) -> None:
    client.post("/v1/collections", json={"name": "vecs", "dim": 2})
    r = client.put("/v1/collections/vecs/documents", json={"documents": [{"id": "a", "text": "t"}]})
    assert_error(r, 422, "invalid_input", "documents[0].vector")
    assert describe(client, "vecs")["count"] == 0


def test_more_documents_than_max_batch_is_422(tmp_path: Path) -> None:
    with open_client(create_app(make_settings(tmp_path, max_batch=2))) as c:
        c.wait_ready()
        c.post("/v1/collections", json={"name": "docs"})
        r = c.put(URL, json={"documents": DOCS[:3]})
        assert_error(r, 422, "invalid_input", "documents")
        assert "VP_MAX_BATCH" in r.json()["detail"]
        r = c.post(f"{URL}/delete", json={"ids": ["a", "b", "c"]})
        assert_error(r, 422, "invalid_input", "ids")
        assert describe(c, "docs")["count"] == 0


def test_get_document_and_its_errors(docs: RecordingClient) -> None:
    assert docs.get(f"{URL}/dog").json() == {
        "id": "dog",
        "text": DOCS[1]["text"],
        "metadata": DOCS[1]["metadata"],
    }
    assert_error(docs.get(f"{URL}/wolf"), 404, "document_not_found", "id")
    assert_error(docs.get("/v1/collections/nope/documents/dog"), 404, "collection_not_found")


def test_listing_pages_through_every_document_once(docs: RecordingClient) -> None:
    seen, cursor = [], None
    while True:
        params: dict[str, Any] = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = docs.get(URL, params=params).json()
        assert len(page["documents"]) <= 3
        seen += [d["id"] for d in page["documents"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(d["id"] for d in DOCS)
    page = docs.get(URL, params={"limit": 1, "with_vectors": True}).json()
    assert len(page["documents"][0]["vector"]) == 384


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 1001}, {"limit": "many"}])
def test_listing_limit_is_bounded(docs: RecordingClient, params: dict[str, Any]) -> None:
    assert_error(docs.get(URL, params=params), 422, "invalid_input", "limit")


def test_listing_an_unknown_collection_is_404(client: RecordingClient) -> None:
    assert_error(client.get("/v1/collections/nope/documents"), 404, "collection_not_found")


def test_delete_one_document(docs: RecordingClient) -> None:
    r = docs.delete(f"{URL}/cat")
    assert r.json() == {"deleted": ["cat"], "count": 1}
    assert_error(docs.get(f"{URL}/cat"), 404)
    hits = docs.post("/v1/collections/docs/search", json={"query": "cat", "k": 10}).json()["hits"]
    assert "cat" not in [h["id"] for h in hits]


def test_deleting_a_missing_document_is_404_and_changes_nothing(docs: RecordingClient) -> None:
    before = describe(docs, "docs")
    assert_error(docs.delete(f"{URL}/wolf"), 404, "document_not_found")
    assert_error(docs.delete("/v1/collections/nope/documents/cat"), 404, "collection_not_found")
    assert describe(docs, "docs") == before


def test_delete_by_ids_and_by_filter(docs: RecordingClient) -> None:
    r = docs.post(f"{URL}/delete", json={"ids": ["cat", "wolf"]})
    assert r.json() == {"deleted": ["cat"], "count": 1}
    r = docs.post(f"{URL}/delete", json={"filter": {"year": {"$gte": 2022}}})
    assert sorted(r.json()["deleted"]) == ["car", "sun"]
    assert [d["id"] for d in docs.get(URL).json()["documents"]] == ["dog"]


@pytest.mark.parametrize(
    ("body", "error", "field"),
    [
        ({}, "invalid_input", "ids"),
        ({"filter": {}}, "invalid_input", "filter"),
        ({"filter": {"year": {"$near": 3}}}, "invalid_filter", "filter.year.$near"),
        ({"filter": {"$or": []}}, "invalid_filter", "filter.$or"),
        ({"ids": "cat"}, "invalid_input", "ids"),
        ({"ids": [""]}, "invalid_input", "ids[0]"),
    ],
)
def test_bad_delete_is_422_and_deletes_nothing(
    docs: RecordingClient, body: dict[str, Any], error: str, field: str
) -> None:
    before = describe(docs, "docs")
    assert_error(docs.post(f"{URL}/delete", json=body), 422, error, field)
    assert describe(docs, "docs") == before


def test_delete_in_an_unknown_collection_is_404(client: RecordingClient) -> None:
    r = client.post("/v1/collections/nope/documents/delete", json={"ids": ["a"]})
    assert_error(r, 404, "collection_not_found")
