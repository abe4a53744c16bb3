"""`vector_primer_client` against the real server (a subprocess on 127.0.0.1, API keys on):
every method, the automatic batching, and the exception for each kind of error."""

from __future__ import annotations

import base64
import json
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from indexer.cli import main as index_main
from vector_primer_client import (
    APIError,
    Client,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    NotReady,
    PayloadTooLarge,
    RateLimited,
    ServerError,
    TransportError,
    Unauthorized,
)

from .conftest import DOCS
from .live import ROOT, LiveServer, free_port, live_server

RW, RO = "rw-key-for-tests-1", "ro-key-for-tests-2"
WORDS = ["king", "queen", "man", "woman", "prince", "princess", "boy", "girl", "car", "tree"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    tmp = tmp_path_factory.mktemp("client")
    keys = {"api_key": RW, "read_only_api_key": RO, "max_body_bytes": "65536"}
    with live_server(tmp / "data", tmp / "server.log", **keys) as s:
        yield s


@pytest.fixture
def vp(server: LiveServer) -> Iterator[Client]:
    with Client(server.url, RW, batch_size=3) as c:
        yield c


def test_collections_and_documents(vp: Client) -> None:
    assert vp.livez() == {"status": "ok"} and vp.wait_ready(5)["status"] == "ready"
    assert "VP_BUILD_WORDS" in vp.readyz()["words"]  # details, since we sent a key
    made = vp.create_collection("notes", metric="cosine", index="flat")
    assert (made["name"], made["count"], made["dim"]) == ("notes", 0, 384)
    assert vp.create_collection("notes", get_or_create=True)["name"] == "notes"
    assert "notes" in {c["name"] for c in vp.list_collections()}

    out = vp.upsert("notes", [*DOCS, {"id": "sky", "text": "blue sky at noon"}])
    assert out == {"collection": "notes", "upserted": 5, "skipped": 0, "count": 5, "batches": 2}
    again = vp.upsert("notes", (d for d in DOCS), skip_unchanged=True)  # any iterable
    assert (again["upserted"], again["skipped"], again["batches"]) == (0, 4, 2)
    assert vp.get_collection("notes")["count"] == 5

    doc = vp.get_document("notes", "cat", with_vector=True)
    assert (doc["text"], doc["metadata"]["kind"], len(doc["vector"])) == (
        "the cat sat on the mat",
        "animal",
        384,
    )
    page = vp.list_documents("notes", limit=2)
    assert [d["id"] for d in page["documents"]] == ["car", "cat"] and page["next_cursor"]
    assert [d["id"] for d in vp.iter_documents("notes", page_size=2)] == [
        "car",
        "cat",
        "dog",
        "sky",
        "sun",
    ]

    assert vp.delete_document("notes", "sky") == {"deleted": ["sky"], "count": 1}
    with pytest.raises(NotFound) as e:
        vp.delete_document("notes", "sky")
    assert (e.value.status, e.value.field) == (404, "id")
    assert vp.delete_documents("notes", ["sun", "nope"])["deleted"] == ["sun"]
    assert vp.delete_documents("notes", filter={"kind": "machine"})["deleted"] == ["car"]
    vp.drop_collection("notes")
    with pytest.raises(NotFound) as e:
        vp.get_collection("notes")
    assert e.value.error == "collection_not_found"


def test_search_analogy_similarity_and_embeddings(vp: Client) -> None:
    vp.create_collection("pets", get_or_create=True)
    vp.upsert("pets", DOCS)
    hits = vp.search("pets", "the cat sat", k=2)
    assert hits["metric"] == "cosine" and hits["hits"][0]["id"] == "cat"
    only = vp.search("pets", "the", k=4, filter={"kind": "animal"}, exact=True)
    assert {h["id"] for h in only["hits"]} == {"cat", "dog"}
    vector = vp.embed(["a red car drove fast"])[0]
    near = vp.search("pets", vector=vector, k=1, with_vectors=True)["hits"][0]
    assert near["id"] == "car" and len(near["vector"]) == 384
    batch = vp.search_batch("pets", [{"query": "dog barked", "k": 1}, {"vector": vector, "k": 1}])
    assert [r["hits"][0]["id"] for r in batch["results"]] == ["dog", "car"]

    vp.create_collection("w", get_or_create=True)
    vp.upsert("w", [{"id": w, "text": w} for w in WORDS])
    solved = vp.analogy(["king", "woman"], ["man"], collection="w", k=3)
    assert solved["expression"] == "king - man + woman" and len(solved["hits"]) == 3
    assert set(solved["hits"][0]["cosines"]) == {"king", "man", "woman"}
    assert not {"king", "man", "woman"} & {h["id"] for h in solved["hits"]}
    same = vp.analogy_expression("king - man + woman", collection="w", k=3, method="3cosadd")
    assert [h["id"] for h in same["hits"]] == [h["id"] for h in solved["hits"]]

    sim = vp.similarity(["a cat", "a cat", "a truck"])
    assert sim["cosine"][0][1] == pytest.approx(1.0) and sim["dim"] == 384
    assert vp.similarity(["a", "b"])["pair"]["angle_degrees"] >= 0
    floats = vp.embeddings(["one", "two"])
    assert floats["model"] == "hash-384" and len(floats["data"]) == 2
    packed = vp.embeddings("one", encoding_format="base64")["data"][0]["embedding"]
    raw = base64.b64decode(packed)
    assert list(struct.unpack(f"<{len(raw) // 4}f", raw)) == pytest.approx(
        floats["data"][0]["embedding"], abs=1e-6
    )


def test_hybrid_search_with_a_filter_fuses_both_rankings(vp: Client) -> None:
    made = vp.create_collection("hyb")
    assert (made["keyword_index"], made["chunking"]) == ({"documents": 0}, None)
    more = [
        {"id": "kitten", "text": "a kitten chased the cat toy", "metadata": {"kind": "animal"}},
        {"id": "mat", "text": "a mat for the car floor", "metadata": {"kind": "machine"}},
    ]
    vp.upsert("hyb", [*DOCS, *more])
    assert "mat" in {
        h["id"] for h in vp.search("hyb", "cat on a mat", k=3, mode="hybrid", fusion="rrf")["hits"]
    }

    hits = vp.search(
        "hyb", "cat on a mat", k=3, mode="hybrid", fusion="rrf", filter={"kind": "animal"}
    )["hits"]
    assert {h["metadata"]["kind"] for h in hits} == {"animal"} and hits[0]["id"] == "cat"
    assert (hits[0]["vector_rank"], hits[0]["keyword_rank"]) == (1, 1)
    for h in hits:  # rrf: the sum of 1 / (60 + rank) over the sides that found the hit
        ranks = [r for r in (h.get("vector_rank"), h.get("keyword_rank")) if r is not None]
        assert ranks and h["score"] == pytest.approx(sum(1 / (60 + r) for r in ranks))
    tight = vp.search(
        "hyb", "cat on a mat", k=1, mode="hybrid", fusion="rrf", rrf_k=10, filter={"year": 2020}
    )
    assert tight["hits"][0]["id"] == "cat" and tight["hits"][0]["score"] == pytest.approx(2 / 11)
    # convex with all the weight on the vector side: min-max scaled cosines, in their order
    convex = vp.search("hyb", "cat on a mat", k=4, mode="hybrid", fusion="convex", alpha=1.0)
    cosines = [h["vector_score"] for h in convex["hits"]]
    assert convex["hits"][0]["score"] == pytest.approx(1.0) and cosines == sorted(cosines)[::-1]

    batch = vp.search_batch("hyb", [{"query": "cat mat", "mode": "keyword", "k": 5}])
    keyword = batch["results"][0]["hits"]  # BM25: only the texts with "cat" or "mat"
    assert keyword[0]["id"] == "cat" and {h["id"] for h in keyword} == {"cat", "kitten", "mat"}
    assert not any("vector_rank" in h for h in keyword)

    vp.create_collection("vectors-only", keyword_index=False)
    assert vp.get_collection("vectors-only")["keyword_index"] is None
    with pytest.raises(InvalidInput) as e:
        vp.search("vectors-only", "cat", mode="hybrid")
    assert e.value.field == "mode"


def test_mmr_diversity_trades_relevance_for_novelty(vp: Client) -> None:
    texts = [
        "red apple pie recipe",
        "red apple pie recipe easy",
        "red apple pie recipe quick",
        "apple orchard in autumn",
        "red sports car",
        "pie crust baking tips",
    ]
    vp.create_collection("mmr")
    vp.upsert("mmr", [{"id": f"d{i}", "text": t} for i, t in enumerate(texts)])

    def ids(**kw: Any) -> list[str]:
        return [h["id"] for h in vp.search("mmr", "red apple pie", k=3, **kw)["hits"]]

    def closest_pair(hit_ids: list[str]) -> float:
        cos = vp.similarity([texts[int(i[1:])] for i in hit_ids])["cosine"]
        return max(cos[i][j] for i in range(3) for j in range(i + 1, 3))

    plain = ids()
    assert plain == ["d0", "d1", "d2"] and ids(diversity=0.0, candidates=6) == plain
    diverse = ids(diversity=0.9, candidates=6)
    assert diverse[0] == plain[0] and len(set(diverse)) == 3 and set(diverse) != set(plain)
    assert closest_pair(diverse) < closest_pair(plain) - 0.3
    with pytest.raises(InvalidInput) as e:  # MMR over k candidates could only reorder them
        vp.search("mmr", "red apple pie", k=3, diversity=0.5, candidates=3)
    assert e.value.field == "candidates"


def test_chunked_collection_groups_passages_by_document(vp: Client) -> None:
    long = " ".join(f"part {i} tells of ocean waves and tides." for i in range(12))
    made = vp.create_collection("chunked", chunking={"max_tokens": 16, "overlap": 4})
    assert made["chunking"] == {"max_tokens": 16, "overlap": 4}
    docs: list[dict[str, Any]] = [
        {"id": "long", "text": long, "metadata": {"kind": "sea"}},
        {"id": "dawn", "text": "ocean waves at dawn"},
        {"id": "trail", "text": "a mountain trail in snow"},
    ]
    out = vp.upsert("chunked", docs)
    assert out["upserted"] == 3 and out["passages"] == out["count"] > 3  # long: many passages
    assert vp.get_document("chunked", "long")["text"] == long  # rebuilt from its passages

    flat = vp.search("chunked", "ocean waves tides", k=4)["hits"]
    assert all(h["passage"]["document"] == "long" for h in flat)  # all four are passages of it
    assert len({h["id"] for h in flat}) == 4 and all(h["id"].startswith("long#") for h in flat)

    for mode in ("vector", "hybrid"):
        hits = vp.search("chunked", "ocean waves tides", k=3, mode=mode, group_by_document=True)
        got = [h["id"] for h in hits["hits"]]
        assert len(got) == len(set(got)) and {"long", "dawn"} <= set(got), (mode, got)
        top = next(h for h in hits["hits"] if h["id"] == "long")
        p = top["passage"]
        assert p["document"] == "long" and p["id"] == f"long#{p['index']}"
        assert long[p["start"] : p["end"]] == top["text"] and 0 < p["end"] - p["start"] < len(long)
        assert top["passages_matched"] > 1 and top["metadata"] == {"kind": "sea"}
        dawn = next(h for h in hits["hits"] if h["id"] == "dawn")
        assert "passage" not in dawn and dawn["passages_matched"] == 1  # stored whole
        if mode == "hybrid":
            assert all("keyword_rank" in h or "vector_rank" in h for h in hits["hits"])


def test_math(vp: Client) -> None:
    sm = vp.softmax([2.0, 1.0, 0.1])
    assert [round(p, 2) for p in sm["probs"]] == [0.66, 0.24, 0.1]
    assert vp.softmax([2.0, 1.0, 0.1], 0.1, top_k=1)["kept"] == [0]
    att = vp.attention(Q=[[1.0, 0.0]], K=[[1.0, 0.0], [0.0, 1.0]], V=[[1.0], [0.0]])
    assert att["weights"][0][0] > att["weights"][0][1] and sum(att["weights"][0]) == (
        pytest.approx(1.0)
    )
    assert vp.attention("the cat sat", causal=True)["tokens"] == ["the", "cat", "sat"]
    run = vp.descent("bowl", "sgd", lr=0.1, steps=50, start=(1.0, 1.0))
    assert len(run["trajectory"]) == 51 and run["losses"][-1] < run["losses"][0]
    assert "softmax" in vp.topics() and vp.explain("temperature")["topic"] == "softmax"
    assert vp.plot("softmax", temperatures=[0.5, 2.0]).startswith(b"\x89PNG")
    assert "vp_http_requests_total" in vp.metrics()


def test_errors_become_exceptions(server: LiveServer, vp: Client) -> None:
    with pytest.raises(Unauthorized) as e:
        Client(server.url).list_collections()
    assert e.value.status == 401 and "API key" in e.value.detail
    reader = Client(server.url, RO)
    assert isinstance(reader.list_collections(), list)  # reads work with the read-only key
    with pytest.raises(Forbidden):
        reader.create_collection("nope")
    vp.create_collection("errs", get_or_create=True)
    with pytest.raises(Conflict) as c:
        vp.create_collection("errs")
    assert c.value.error == "collection_exists"
    with pytest.raises(InvalidInput) as i:
        vp.search("errs", "x", k=0)
    assert (i.value.status, i.value.field) == (422, "k")
    with pytest.raises(PayloadTooLarge):  # one document over the server's 64 KiB limit
        vp.upsert("errs", [{"id": "big", "text": "x " * 40_000}])
    with pytest.raises(NotFound) as n:
        vp.explain("no-such-topic")
    assert n.value.error == "topic_not_found"


def test_upsert_batches_by_size_and_names_the_document_of_the_whole_call(
    server: LiveServer,
) -> None:
    with Client(server.url, RW, batch_size=2, batch_bytes=200) as vp:
        vp.create_collection("batched", get_or_create=True)
        docs = [{"id": f"d{i}", "text": f"document {i}"} for i in range(5)]
        assert vp.upsert("batched", docs)["batches"] == 3  # 2 + 2 + 1
        fat = [{"id": f"f{i}", "text": "word " * 30} for i in range(3)]  # ~170 bytes each
        assert vp.upsert("batched", fat)["batches"] == 3  # the byte budget, not the count
        docs[3]["text"] = "   "
        with pytest.raises(InvalidInput) as e:
            vp.upsert("batched", [{**d, "id": f"e{i}"} for i, d in enumerate(docs)])
        assert e.value.field == "documents[3].text"  # the 2nd batch's documents[1]
        assert "documents[3].text" in str(e.value)
        stored = {d["id"] for d in vp.iter_documents("batched")}
        assert {"e0", "e1"} <= stored and "e2" not in stored  # batches before it are stored


def test_status_codes_without_a_server() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        status = int(request.url.path.rsplit("/", 1)[1])
        if status == 502:
            return httpx.Response(502, text="<html>bad gateway</html>")
        headers = {"retry-after": "3"} if status == 429 else {}
        body = {"error": f"e{status}", "detail": "d", "field": None}
        return httpx.Response(status, json=body, headers=headers)

    http = httpx.Client(transport=httpx.MockTransport(answer))
    vp = Client("http://svc", http=http)
    expected = {400: InvalidInput, 413: PayloadTooLarge, 429: RateLimited, 500: ServerError}
    expected |= {502: ServerError, 503: NotReady, 418: APIError}
    for status, cls in expected.items():
        with pytest.raises(cls) as e:
            vp.request("GET", f"/s/{status}")
        assert type(e.value) is cls and e.value.status == status
    with pytest.raises(RateLimited) as r:
        vp.request("GET", "/s/429")
    assert r.value.retry_after == 3.0
    with pytest.raises(ServerError) as s:
        vp.request("GET", "/s/502")
    assert (s.value.error, s.value.detail) == ("http_error", "<html>bad gateway</html>")
    with pytest.raises(TransportError):
        Client(f"http://127.0.0.1:{free_port()}", timeout=2).livez()


def test_new_options_are_sent_only_when_set() -> None:
    """Calls written before hybrid search send byte for byte the bodies they sent then."""
    sent: list[bytes] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request.content)
        return httpx.Response(200, json={"hits": []})

    vp = Client("http://svc", http=httpx.Client(transport=httpx.MockTransport(answer)))

    def body(value: dict[str, Any]) -> bytes:
        return httpx.Request("POST", "http://svc", json=value).content

    vp.create_collection("c", get_or_create=True)
    vp.search("c", "q", k=2, filter={"kind": "a"})
    vp.create_collection("c", keyword_index=False, chunking={"max_tokens": 64})
    vp.create_collection("c", keyword_index=True, chunking=True)
    vp.search("c", "q", vector=[1.0, 0.0], mode="hybrid", fusion="convex", alpha=0.25)
    vp.search("c", "q", mode="keyword", diversity=0.5, candidates=40, group_by_document=True)
    old = {"k": 2, "exact": False, "with_vectors": False, "query": "q", "filter": {"kind": "a"}}
    assert sent == [
        body({"name": "c", "metric": "cosine", "index": "flat", "get_or_create": True}),
        body(old),
        body(
            {
                "name": "c",
                "metric": "cosine",
                "index": "flat",
                "keyword_index": False,
                "chunking": {"max_tokens": 64},
            }
        ),
        body({"name": "c", "metric": "cosine", "index": "flat", "chunking": True}),
        body(
            {
                "k": 10,
                "exact": False,
                "with_vectors": False,
                "query": "q",
                "vector": [1.0, 0.0],
                "mode": "hybrid",
                "fusion": "convex",
                "alpha": 0.25,
            }
        ),
        body(
            {
                "k": 10,
                "exact": False,
                "with_vectors": False,
                "query": "q",
                "mode": "keyword",
                "diversity": 0.5,
                "candidates": 40,
                "group_by_document": True,
            }
        ),
    ]


def test_ready_command_for_the_container_healthcheck(server: LiveServer) -> None:
    def ready(url: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "vector_primer_client", "ready", "--url", url]
        return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=30)

    up = ready(server.url)
    assert up.returncode == 0 and up.stdout.startswith("ready"), up.stderr
    down = ready(f"http://127.0.0.1:{free_port()}")
    assert down.returncode == 1 and down.stderr.startswith("not ready")


def test_the_batch_jobs_url_mode_goes_through_the_client(
    server: LiveServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "in.jsonl"
    rows = [json.dumps(d) for d in DOCS] + ['{"id": "blank", "text": "  "}', "not json"]
    src.write_text("\n".join(rows) + "\n")
    args = ["build", "-c", "from-job", "-i", str(src), "--url", server.url, "--api-key", RW]
    assert index_main([*args, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["upserted"], summary["bad_count"], summary["total"]) == (4, 2, None)
    with Client(server.url, RW) as vp:
        assert vp.get_collection("from-job")["count"] == 4
    # another index kind for an existing collection is refused, as in a local build
    code = index_main([*args, "--index", "hnsw"])
    assert code != 0 and "from-job" in capsys.readouterr().err


def test_every_client_method_is_exercised_here() -> None:
    """A new method of the client needs a call in this file (against the real server)."""
    source = Path(__file__).read_text()
    public = [m for m in vars(Client) if not m.startswith("_") and callable(getattr(Client, m))]
    missing = [m for m in public if m not in ("close",) and f".{m}(" not in source]
    assert len(public) > 25 and not missing, missing
