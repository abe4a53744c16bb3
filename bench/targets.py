"""What the harness asks of each system over HTTP: load documents, and the request that queries
by vector or by text. Every target answers `hit_ids` for recall@10 against the same truth."""

from __future__ import annotations

import json
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
from numpy.typing import NDArray

from bench.load import Req

Vectors = NDArray[np.float32]


def check(resp: httpx.Response) -> Any:
    if not resp.is_success:
        raise RuntimeError(
            f"{resp.request.method} {resp.request.url}: {resp.status_code} {resp.text[:300]}"
        )
    return resp.json()


@dataclass
class Encoded:
    """A request whose JSON body is encoded already: timing `send` times the server and the
    transport, not this client's JSON encoding (0.2 s for 1,000 vectors with Python's json)."""

    method: str
    path: str
    body: bytes


def encoded(method: str, path: str, body: Any) -> Encoded:
    return Encoded(method, path, json.dumps(body).encode())


def send(client: httpx.Client, req: Encoded) -> Any:
    return check(
        client.request(
            req.method, req.path, content=req.body, headers={"content-type": "application/json"}
        )
    )


class Ours:
    """vector-primer: a collection per index kind; text queries are embedded by the service."""

    def __init__(self, base: str, collection: str = "bench") -> None:
        self.base, self.name = base, collection
        self.client = httpx.Client(base_url=base, timeout=600.0)

    def create(self, index: str = "hnsw", embedder: str | None = None) -> None:
        body: dict[str, Any] = {
            "name": self.name,
            "index": index,
            "metric": "cosine",
            "get_or_create": True,
        }
        if embedder:
            body["embedder"] = embedder
        check(self.client.post("/v1/collections", json=body))

    def count(self) -> int:
        return int(check(self.client.get(f"/v1/collections/{self.name}"))["count"])

    def upsert(self, ids: list[str], texts: list[str], vectors: Vectors | None) -> None:
        send(self.client, self.upsert_req(ids, texts, vectors))

    def upsert_req(self, ids: list[str], texts: list[str], vectors: Vectors | None) -> Encoded:
        docs = [
            {"id": i, "text": t, **({} if vectors is None else {"vector": v})}
            for i, t, v in zip(
                ids, texts, vectors.tolist() if vectors is not None else texts, strict=True
            )
        ]
        return encoded("PUT", f"/v1/collections/{self.name}/documents", {"documents": docs})

    def vector_req(self, v: Vectors, ef: int | None = None, exact: bool = False) -> Req:
        body: dict[str, Any] = {"vector": v.tolist(), "k": 10}
        if ef is not None:
            body["params"] = {"ef_search": ef}
        if exact:
            body["exact"] = True
        return Req("POST", f"/v1/collections/{self.name}/search", body)

    def text_req(self, text: str) -> Req:
        return Req("POST", f"/v1/collections/{self.name}/search", {"query": text, "k": 10})

    @staticmethod
    def hit_ids(answer: Any) -> list[str]:
        return [h["id"] for h in answer["hits"]]


class Reference:
    """bench/reference.py: the corpus rows are its ids."""

    def __init__(self, base: str, ids: list[str]) -> None:
        self.base, self.ids = base, ids

    def vector_req(self, v: Vectors, ef: int | None = None) -> Req:
        return Req("POST", "/search", {"vector": v.tolist(), "k": 10, "ef_search": ef})

    def hit_ids(self, answer: Any) -> list[str]:
        return [self.ids[i] for i in answer["ids"] if i >= 0]


class Empty:
    def __init__(self, base: str) -> None:
        self.base = base

    def vector_req(self, v: Vectors, ef: int | None = None) -> Req:
        return Req("POST", "/empty", {"vector": v.tolist(), "k": 10})


class Chroma:
    """Chroma's server (HTTP API v2). HNSW parameters live in the collection's configuration;
    ef_search can be changed in place."""

    PREFIX = "/api/v2/tenants/default_tenant/databases/default_database/collections"

    def __init__(self, base: str, name: str = "bench") -> None:
        self.base, self.name = base, name
        self.client = httpx.Client(base_url=base, timeout=600.0)
        self.id = ""

    def create(self, ef_search: int = 100) -> None:
        body = {
            "name": self.name,
            "get_or_create": True,
            "configuration": {"hnsw": {"space": "cosine", "ef_search": ef_search}},
        }
        self.id = check(self.client.post(self.PREFIX, json=body))["id"]

    def set_ef(self, ef: int) -> None:
        body = {"new_configuration": {"hnsw": {"ef_search": ef}}}
        check(self.client.put(f"{self.PREFIX}/{self.id}", json=body))

    def count(self) -> int:
        return int(check(self.client.get(f"{self.PREFIX}/{self.id}/count")))

    def upsert(self, ids: list[str], texts: list[str], vectors: Vectors) -> None:
        send(self.client, self.upsert_req(ids, texts, vectors))

    def upsert_req(self, ids: list[str], texts: list[str], vectors: Vectors) -> Encoded:
        body = {"ids": ids, "documents": texts, "embeddings": vectors.tolist()}
        return encoded("POST", f"{self.PREFIX}/{self.id}/upsert", body)

    def vector_req(self, v: Vectors, ef: int | None = None) -> Req:
        body = {
            "query_embeddings": [v.tolist()],
            "n_results": 10,
            "include": ["documents", "metadatas", "distances"],
        }
        return Req("POST", f"{self.PREFIX}/{self.id}/query", body)

    @staticmethod
    def hit_ids(answer: Any) -> list[str]:
        return list(answer["ids"][0])


class Txtai:
    """txtai's API (FastAPI, in-process sentence-transformers + FAISS): text in, text out."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.client = httpx.Client(base_url=base, timeout=600.0)

    def count(self) -> int:
        return int(check(self.client.get("/count")))

    def upsert(self, ids: list[str], texts: list[str]) -> None:
        check(
            self.client.post(
                "/add", json=[{"id": i, "text": t} for i, t in zip(ids, texts, strict=True)]
            )
        )
        check(self.client.get("/upsert"))

    def text_req(self, text: str) -> Req:
        return Req("GET", "/search?" + urllib.parse.urlencode({"query": text, "limit": 10}))

    @staticmethod
    def hit_ids(answer: Any) -> list[str]:
        return [h["id"] for h in answer]


def recall_at_10(
    target: Any, reqs: list[Req], truth_ids: list[list[str]], workers: int = 2
) -> float:
    """Mean |hits ∩ exact top-10| / 10 over the queries, asked over HTTP."""
    from concurrent.futures import ThreadPoolExecutor

    client = httpx.Client(base_url=target.base, timeout=60.0)

    def one(i: int) -> float:
        r = reqs[i]
        answer = check(client.request(r.method, r.path, json=r.body))
        return len(set(target.hit_ids(answer)[:10]) & set(truth_ids[i])) / 10

    with ThreadPoolExecutor(workers) as pool:
        scores = list(pool.map(one, range(len(reqs))))
    client.close()
    return float(np.mean(scores))


def timed(fn: Any, *args: Any) -> float:
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0
