"""R9: every malformed input of the reliability table, one row each, through the whole app
(middlewares included). Each row: the documented 4xx, an error body in the service's shape that
names the field, no 5xx, and nothing changed (collections, counts, seq and documents).

The limits here are the ones the table assumes (body 2 MiB, batch 256, k 100); the defaults are
larger (32 MiB, 10,000, 1,000: see the README) and are settings. Router-level cases with more
variants live in tests/service (test_documents, test_search, test_analogy, ...); this file is
the table in one place, with the state check on every row.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, NamedTuple

import pytest
from fastapi.testclient import TestClient

from service.app import create_app

from .http_support import DOCS, http_settings, wait_ready

LIMITS = {"max_body_bytes": 2 * 1024 * 1024, "max_batch": 256, "max_k": 100}
DOCS_URL = "/v1/collections/docs/documents"
SEARCH = "/v1/collections/docs/search"
TEN_MB = 10 * 1024 * 1024


class Case(NamedTuple):
    method: str
    url: str
    status: int
    field: str | None  # the field the error names (None: the detail must hold `detail`)
    body: Any = None  # sent as JSON
    raw: bytes | None = None  # sent as is, with content-type application/json
    detail: str = ""  # a substring of the detail
    headers: dict[str, str] | None = None


def vec(first: str, dim: int = 384) -> bytes:
    """A vector whose first entry is a raw JSON token (NaN, 1e39, ...)."""
    return (f'{{"vector": [{first}' + ", 0.5" * (dim - 1) + "]}").encode()


def upsert_vec(first: str, dim: int = 384) -> bytes:
    entries = first + ", 0.5" * (dim - 1)
    return f'{{"documents": [{{"id": "x", "vector": [{entries}]}}]}}'.encode()


def chunks(total: int) -> Iterator[bytes]:
    yield b'{"documents": [{"id": "x", "text": "'
    for _ in range(total // 65536):
        yield b"a" * 65536
    yield b'"}]}'


def doc(**fields: Any) -> dict[str, Any]:
    return {"documents": [{"id": "x", "text": "t", **fields}]}


CASES: dict[str, Case] = {
    # vectors
    "nan": Case("PUT", DOCS_URL, 422, "documents[0].vector[0]", raw=upsert_vec("NaN")),
    "infinity": Case("POST", SEARCH, 422, "vector[0]", raw=vec("Infinity")),
    "-infinity": Case("PUT", DOCS_URL, 422, "documents[0].vector[0]", raw=upsert_vec("-Infinity")),
    "1e39 beyond float32": Case(
        "PUT", DOCS_URL, 422, "documents[0].vector", raw=upsert_vec("1e39"), detail="float32"
    ),
    "1e39 in a query": Case("POST", SEARCH, 422, "vector", raw=vec("-1e39"), detail="float32"),
    "dimension 0": Case("POST", SEARCH, 422, "vector", {"vector": []}),
    "dimension 383": Case(
        "PUT", DOCS_URL, 422, "documents[0].vector", raw=upsert_vec("1", 383), detail="384"
    ),
    "dimension 385": Case("POST", SEARCH, 422, "vector", raw=vec("1", 385), detail="384"),
    "zero vector, cosine": Case(
        "PUT", DOCS_URL, 422, "documents[0].vector", doc(vector=[0.0] * 384), detail="zero"
    ),
    "zero query, cosine": Case(
        "POST", SEARCH, 422, "vector", {"vector": [0.0] * 384}, detail="zero"
    ),
    "vector of strings": Case("POST", SEARCH, 422, "vector[0]", {"vector": ["1"] * 384}),
    # k
    "k 0": Case("POST", SEARCH, 422, "k", {"query": "cat", "k": 0}),
    "k -1": Case("POST", SEARCH, 422, "k", {"query": "cat", "k": -1}),
    "k 101 over VP_MAX_K": Case("POST", SEARCH, 422, "k", {"query": "cat", "k": 101}),
    "k 10**9": Case("POST", SEARCH, 422, "k", {"query": "cat", "k": 10**9}),
    "k string": Case("POST", SEARCH, 422, "k", {"query": "cat", "k": "10"}),
    "k bool": Case("POST", SEARCH, 422, "k", {"query": "cat", "k": True}),
    "k float": Case("POST", SEARCH, 422, "k", {"query": "cat", "k": 2.5}),
    "k in a query string": Case("GET", "/v1/analogy?q=cat&collection=docs&k=huge", 422, "k"),
    # ids
    "id 2**63": Case("PUT", DOCS_URL, 422, "documents[0].id", {"documents": [{"id": 2**63}]}),
    "id -1": Case("POST", f"{DOCS_URL}/delete", 422, "ids[0]", {"ids": [-1]}),
    "id true": Case("PUT", DOCS_URL, 422, "documents[0].id", {"documents": [{"id": True}]}),
    "id empty": Case("PUT", DOCS_URL, 422, "documents[0].id", doc(id="")),
    "id 513 chars": Case("PUT", DOCS_URL, 422, "documents[0].id", doc(id="x" * 513)),
    "get unknown id": Case("GET", f"{DOCS_URL}/nope", 404, "id"),
    "delete unknown id": Case("DELETE", f"{DOCS_URL}/nope", 404, "id"),
    "unknown collection": Case("POST", "/v1/collections/nope/search", 404, "name", {"query": "a"}),
    "bad collection name": Case("POST", "/v1/collections", 422, "name", {"name": "../etc"}),
    # text
    "empty text": Case("PUT", DOCS_URL, 422, "documents[0].text", doc(text="")),
    "whitespace text": Case("PUT", DOCS_URL, 422, "documents[0].text", doc(text=" \n\t")),
    "empty query": Case("POST", SEARCH, 422, "query", {"query": ""}),
    "text over 100,000 chars": Case(
        "PUT", DOCS_URL, 422, "documents[0].text", doc(text="a" * 100_001)
    ),
    "query over 100,000 chars": Case("POST", SEARCH, 422, "query", {"query": "a" * 100_001}),
    "neither query nor vector": Case("POST", SEARCH, 422, "query", {"k": 3}),
    # bodies
    "10 MB body": Case("PUT", DOCS_URL, 413, None, doc(text="a" * TEN_MB), detail="2097152"),
    "10 MB chunked": Case("PUT", DOCS_URL, 413, None, raw=b"chunked", detail="2097152"),
    "invalid JSON": Case("PUT", DOCS_URL, 422, "body", raw=b'{"documents": [', detail="JSON"),
    "invalid UTF-8": Case("PUT", DOCS_URL, 400, "body", raw=b'{"documents": [{"id": "\xff\xfe"}]}'),
    "wrong content-type": Case(
        "PUT",
        DOCS_URL,
        422,
        "body",
        raw=json.dumps(doc()).encode(),
        headers={"content-type": "text/plain"},
        detail="Content-Type",
    ),
    "no body": Case("PUT", DOCS_URL, 422, "body", raw=b""),
    "a list, not an object": Case("PUT", DOCS_URL, 422, "body", [1, 2]),
    "unknown field": Case("PUT", DOCS_URL, 422, "documents[0].colour", doc(colour="red")),
    "unknown top-level field": Case("POST", SEARCH, 422, "top_k", {"query": "a", "top_k": 3}),
    "metadata NaN": Case(
        "PUT",
        DOCS_URL,
        422,
        "documents[0].metadata",
        raw=b'{"documents": [{"id": "x", "text": "t", "metadata": {"s": NaN}}]}',
    ),
    "bad filter operator": Case(
        "POST",
        SEARCH,
        422,
        "filter.kind.$regex",
        {"query": "a", "filter": {"kind": {"$regex": "."}}},
    ),
    # batches
    "batch of 257": Case(
        "PUT",
        DOCS_URL,
        422,
        "documents",
        {"documents": [{"id": f"d{i}", "text": "t"} for i in range(257)]},
        detail="VP_MAX_BATCH",
    ),
    "empty batch": Case("PUT", DOCS_URL, 422, "documents", {"documents": []}),
    "duplicate ids in a batch": Case(
        "PUT", DOCS_URL, 422, "documents[1].id", {"documents": [DOCS[0], DOCS[0]]}
    ),
    "delete 257 ids": Case(
        "POST", f"{DOCS_URL}/delete", 422, "ids", {"ids": [f"d{i}" for i in range(257)]}
    ),
    "257 searches": Case(
        "POST", f"{SEARCH}/batch", 422, "searches", {"searches": [{"query": "a"}] * 257}
    ),
    # analogy
    "analogy, no terms": Case("POST", "/v1/analogy", 422, "positive", {"positive": []}),
    "analogy, empty term": Case("POST", "/v1/analogy", 422, "positive[0]", {"positive": [""]}),
    "analogy, 17 terms": Case("POST", "/v1/analogy", 422, "positive", {"positive": ["a"] * 17}),
    "analogy, unknown term": Case(
        "POST", "/v1/analogy", 404, "terms", {"positive": ["zebra"], "collection": "vecs"}
    ),
    "analogy, bad expression": Case("GET", "/v1/analogy?q=cat--dog&collection=docs", 422, "q"),
    # other endpoints
    "similarity, one text": Case("POST", "/v1/similarity", 422, "texts", {"texts": ["a"]}),
    "embeddings, token ids": Case("POST", "/v1/embeddings", 422, "input", {"input": [[1, 2]]}),
    "embeddings, empty": Case("POST", "/v1/embeddings", 422, "input", {"input": ""}),
}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    tmp = tmp_path_factory.mktemp("bad-input")
    with TestClient(create_app(http_settings(tmp, **LIMITS))) as c:
        wait_ready(c)
        assert c.post("/v1/collections", json={"name": "docs"}).status_code == 201
        assert c.put(DOCS_URL, json={"documents": DOCS}).status_code == 200
        assert c.post("/v1/collections", json={"name": "vecs", "dim": 2}).status_code == 201
        vecs = [{"id": "a", "vector": [1.0, 0.0]}, {"id": "b", "vector": [0.0, 1.0]}]
        assert c.put("/v1/collections/vecs/documents", json={"documents": vecs}).is_success
        yield c


def snapshot(c: TestClient) -> Any:
    cols = [
        (x["name"], x["count"], x["seq"]) for x in c.get("/v1/collections").json()["collections"]
    ]
    listed = c.get(DOCS_URL, params={"with_vectors": "true"}).json()["documents"]
    return cols, listed


def send(c: TestClient, case: Case) -> Any:
    headers = {"content-type": "application/json", **(case.headers or {})}
    if case.raw == b"chunked":
        return c.request(case.method, case.url, content=chunks(TEN_MB), headers=headers)
    if case.raw is not None:
        return c.request(case.method, case.url, content=case.raw, headers=headers)
    if case.body is not None:
        return c.request(case.method, case.url, json=case.body)
    return c.request(case.method, case.url)


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_a_documented_4xx_naming_the_field(client: TestClient, name: str) -> None:
    case = CASES[name]
    before = snapshot(client)
    r = send(client, case)
    assert r.status_code == case.status, r.text[:300]
    body = r.json()  # always JSON
    assert set(body) >= {"error", "detail", "field"}, body
    assert body["field"] == case.field, body
    assert case.detail in body["detail"], body
    assert "Traceback" not in r.text and len(r.content) < 100_000  # no echo of a huge input
    assert snapshot(client) == before


def test_k_beyond_the_count_gives_every_document_and_no_placeholder(client: TestClient) -> None:
    r = client.post(SEARCH, json={"query": "cat", "k": 100})
    assert r.status_code == 200
    hits = r.json()["hits"]
    assert sorted(h["id"] for h in hits) == sorted(d["id"] for d in DOCS)  # no -1, no padding
