"""Analogies over HTTP on a tiny hand-made space (royal, male, female, fruit) where
king − man + woman is exactly queen; the real model's version is in test_server.py."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import RecordingClient, assert_error

SPACE = {
    "king": [1.0, 1.0, 0.0, 0.1],
    "queen": [1.0, 0.0, 1.0, 0.1],
    "man": [0.0, 1.0, 0.0, 0.1],
    "woman": [0.0, 0.0, 1.0, 0.1],
    "prince": [0.8, 1.0, 0.0, 0.3],
    "apple": [0.0, 0.0, 0.0, 1.0],
}


@pytest.fixture
def space(client: RecordingClient) -> RecordingClient:
    client.post("/v1/collections", json={"name": "space", "dim": 4})
    documents = [{"id": w, "vector": v, "metadata": {"len": len(w)}} for w, v in SPACE.items()]
    client.put("/v1/collections/space/documents", json={"documents": documents})
    return client


def analogy(client: RecordingClient, **body: Any) -> Any:
    return client.post("/v1/analogy", json={"collection": "space", **body})


def test_king_minus_man_plus_woman_is_queen(space: RecordingClient) -> None:
    r = analogy(space, positive=["king", "woman"], negative=["man"], k=3)
    body = r.json()
    assert body["expression"] == "king - man + woman"
    assert (body["collection"], body["method"]) == ("space", "3cosadd")
    top = body["hits"][0]
    assert top["id"] == "queen"
    assert set(top["cosines"]) == {"king", "woman", "man"}
    assert top["score"] == pytest.approx(
        top["cosines"]["king"] + top["cosines"]["woman"] - top["cosines"]["man"], abs=1e-5
    )
    assert {h["id"] for h in body["hits"]}.isdisjoint({"king", "man", "woman"})
    assert [t["source"] for t in body["terms"]] == ["document"] * 3


def test_3cosmul_and_keeping_the_inputs(space: RecordingClient) -> None:
    r = analogy(space, positive=["king", "woman"], negative=["man"], method="3cosmul")
    assert r.json()["method"] == "3cosmul"
    assert r.json()["hits"][0]["id"] == "queen"
    r = analogy(space, positive=["king"], exclude_inputs=False, k=1)
    assert r.json()["hits"][0]["id"] == "king"


def test_get_accepts_the_arithmetic_as_text(space: RecordingClient) -> None:
    r = space.get("/v1/analogy", params={"q": "king-man+woman", "collection": "space", "k": 2})
    assert r.status_code == 200, r.text
    assert r.json()["hits"][0]["id"] == "queen"
    assert r.json()["expression"] == "king - man + woman"
    post = analogy(space, positive=["king", "woman"], negative=["man"], k=2).json()
    assert r.json() == post
    r = space.get("/v1/analogy?q=king%20-%20man%20%2B%20woman&collection=space&method=3cosmul")
    assert r.json()["hits"][0]["id"] == "queen"


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"positive": [], "negative": ["man"]}, 422, "positive"),
        ({"positive": [""]}, 422, "positive[0]"),
        ({"positive": ["king"], "negative": [" "]}, 422, "negative[0]"),
        ({"positive": ["king"] * 17}, 422, "positive"),
        ({"positive": ["king"], "k": 0}, 422, "k"),
        ({"positive": ["king"], "k": 1001}, 422, "k"),
        ({"positive": ["king"], "method": "3cosdiv"}, 422, "method"),
        ({"positive": ["king"], "collection": "no such"}, 422, "collection"),
        ({"positive": ["king"], "collection": "nope"}, 404, "name"),
        ({"positive": ["emperor"]}, 404, "terms"),  # not a document, and no embedder
    ],
)
def test_bad_analogy_names_the_field(
    space: RecordingClient, body: dict[str, Any], status: int, field: str
) -> None:
    assert_error(analogy(space, **body), status, field=field)


@pytest.mark.parametrize(
    ("params", "status", "field"),
    [
        ({"q": "king--man"}, 422, "q"),
        ({"q": "-man"}, 422, "q"),
        ({"q": ""}, 422, "q"),
        ({}, 422, "q"),
        ({"q": "king", "k": "five"}, 422, "k"),
        ({"q": "king", "method": "x"}, 422, "method"),
        ({"q": "king", "collection": "nope"}, 404, "name"),
    ],
)
def test_bad_analogy_query_string_names_the_parameter(
    space: RecordingClient, params: dict[str, Any], status: int, field: str
) -> None:
    params = {"collection": "space", **params}
    assert_error(space.get("/v1/analogy", params=params), status, field=field)


def test_default_collection_is_words(client: RecordingClient) -> None:
    r = client.post("/v1/analogy", json={"positive": ["king"]})
    assert_error(r, 404, "collection_not_found")
    assert "words" in r.json()["detail"]
