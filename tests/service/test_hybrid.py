"""Hybrid search over HTTP (issue 10): keyword (BM25) and hybrid modes with rrf or convex fusion,
MMR diversity, and chunked collections whose long texts are stored as passages. Every bad request
is a 422 naming its field and changes nothing."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import RecordingClient, assert_error, describe

URL = "/v1/collections/{}/search"
CORPUS = [
    ("cat", "the cat sat on the mat", "animal", 2020),
    ("kitten", "a small cat chased a red ball", "animal", 2021),
    ("dog", "the dog barked at the cat", "animal", 2022),
    ("car", "a red car drove fast down the road", "machine", 2022),
    ("truck", "the truck carried red bricks", "machine", 2023),
    ("sun", "the sun is a star", "sky", 2023),
    ("moon", "the moon circles the earth at night", "sky", 2024),
]
QUERY = "red cat"  # BM25 matches cat, kitten, dog, car, truck with distinct scores
N = len(CORPUS)
# near-duplicates of one sentence and a few others, for MMR
NEAR = [
    ("d1", "the cat sat on the mat"),
    ("d2", "the cat sat on the mat today"),
    ("d3", "the cat sat on a mat"),
    ("d4", "a dog slept on the rug"),
    ("d5", "the cat chased a mouse"),
    ("d6", "birds sing at dawn"),
]
TOPICS = ["apples", "rivers", "engines", "violins", "glaciers", "tigers", "poems", "comets"]
LONG = " ".join(f"Sentence number {i} talks about topic {w}." for i, w in enumerate(TOPICS))
CHUNKING = {"max_tokens": 16, "overlap": 4}  # hash-384 tokens are words: LONG makes 7 passages


def search(c: RecordingClient, name: str, **body: Any) -> list[dict[str, Any]]:
    r = c.post(URL.format(name), json=body)
    assert r.status_code == 200, r.text
    hits: list[dict[str, Any]] = r.json()["hits"]
    return hits


def ids(hits: list[dict[str, Any]]) -> list[str]:
    return [h["id"] for h in hits]


def create(c: RecordingClient, name: str, **spec: Any) -> dict[str, Any]:
    r = c.post("/v1/collections", json={"name": name, **spec})
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


def put(c: RecordingClient, name: str, documents: list[dict[str, Any]]) -> dict[str, Any]:
    r = c.put(f"/v1/collections/{name}/documents", json={"documents": documents})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


@pytest.fixture
def corpus(client: RecordingClient) -> RecordingClient:
    """`kw` (keyword index, the default) and `nokw` (keyword_index false) both hold CORPUS."""
    docs = [
        {"id": i, "text": t, "metadata": {"kind": kind, "year": year}}
        for i, t, kind, year in CORPUS
    ]
    for name, spec in (("kw", {}), ("nokw", {"keyword_index": False})):
        create(client, name, **spec)
        put(client, name, docs)
    return client


@pytest.fixture
def chunked(client: RecordingClient) -> RecordingClient:
    """`ch`: a chunked collection holding LONG (as passages) and a short document."""
    create(client, "ch", chunking=CHUNKING)
    put(
        client,
        "ch",
        [
            {"id": "long", "text": LONG, "metadata": {"source": "essay"}},
            {"id": "short", "text": "a tiny note about glaciers", "metadata": {"source": "memo"}},
        ],
    )
    return client


# ---- creating ------------------------------------------------------------------------------
def test_create_reports_keyword_index_and_chunking(client: RecordingClient) -> None:
    plain = create(client, "plain")
    assert (plain["keyword_index"], plain["chunking"]) == ({"documents": 0}, None)
    assert create(client, "nokw", keyword_index=False)["keyword_index"] is None
    assert create(client, "auto", chunking=True)["chunking"] == {"max_tokens": 256, "overlap": 32}
    assert create(client, "ch", chunking=CHUNKING)["chunking"] == CHUNKING
    assert create(client, "none", chunking=None)["chunking"] is None
    put(client, "plain", [{"id": "a", "text": "one"}, {"id": "b", "text": "two"}])
    assert describe(client, "plain")["keyword_index"] == {"documents": 2}
    listed = {c["name"]: c for c in client.get("/v1/collections").json()["collections"]}
    assert listed["nokw"]["keyword_index"] is None and listed["ch"]["chunking"] == CHUNKING


def test_get_or_create_compares_keyword_index_and_chunking(client: RecordingClient) -> None:
    create(client, "kw")
    for spec, field in (
        ({"keyword_index": False}, "keyword_index"),
        ({"chunking": True}, "chunking"),
    ):
        r = client.post("/v1/collections", json={"name": "kw", "get_or_create": True, **spec})
        assert_error(r, 409, "spec_mismatch", field)
    r = client.post("/v1/collections", json={"name": "kw", "get_or_create": True})
    assert r.status_code == 200 and r.json()["keyword_index"] == {"documents": 0}


# ---- the three modes -----------------------------------------------------------------------
def test_each_mode_ranks_best_first(corpus: RecordingClient) -> None:
    words = {"red", "cat"}
    for mode in ("vector", "keyword", "hybrid"):
        hits = search(corpus, "kw", query=QUERY, k=N, mode=mode)
        scores = [h["score"] for h in hits]
        assert hits and scores == sorted(scores, reverse=True), mode
        hybrid_fields = {"vector_score", "vector_rank", "keyword_score", "keyword_rank"}
        if mode != "hybrid":
            assert all(not set(h) & hybrid_fields for h in hits), mode
    keyword = search(corpus, "kw", query=QUERY, k=N, mode="keyword")
    # BM25 finds only texts sharing a word with the query, the one with both words first
    assert ids(keyword)[0] == "kitten"
    assert {h["id"] for h in keyword} == {i for i, t, *_ in CORPUS if words & set(t.split())}


@pytest.mark.parametrize(
    "where", [{"kind": "animal"}, {"year": {"$gte": 2022}}, {"kind": {"$in": ["machine", "sky"]}}]
)
@pytest.mark.parametrize(
    "mode",
    [
        {"mode": "vector"},
        {"mode": "keyword"},
        {"mode": "hybrid"},
        {"mode": "hybrid", "fusion": "convex"},
    ],
)
def test_filters_apply_in_every_mode(
    corpus: RecordingClient, where: dict[str, Any], mode: dict[str, Any]
) -> None:
    meta: dict[str, dict[str, Any]] = {i: {"kind": k, "year": y} for i, _, k, y in CORPUS}

    def ok(doc_id: str) -> bool:
        m = meta[doc_id]
        if "kind" in where:
            kinds = where["kind"]["$in"] if isinstance(where["kind"], dict) else [where["kind"]]
            return bool(m["kind"] in kinds)
        return bool(m["year"] >= 2022)

    hits = search(corpus, "kw", query=QUERY, k=N, filter=where, **mode)
    assert hits and all(ok(h["id"]) for h in hits), ids(hits)
    assert all(h["metadata"] == meta[h["id"]] for h in hits)
    unfiltered = search(corpus, "kw", query=QUERY, k=N, **mode)
    # the filter removes hits, it never adds one the unfiltered search would not find
    assert set(ids(hits)) <= set(ids(unfiltered))
    assert set(ids(hits)) == {i for i in ids(unfiltered) if ok(i)}


def assert_sides_match(corpus: RecordingClient, hits: list[dict[str, Any]], **body: Any) -> None:
    """A hybrid hit's vector_* / keyword_* are its score and rank in the separate searches."""
    sides = {side: search(corpus, "kw", k=N, mode=side, **body) for side in ("vector", "keyword")}
    for side, alone in sides.items():
        score_of = {h["id"]: h["score"] for h in alone}
        for h in hits:
            if h["id"] not in score_of:  # the keyword side finds only texts sharing a word
                assert f"{side}_rank" not in h and f"{side}_score" not in h, h
                continue
            rank = h[f"{side}_rank"]
            assert h[f"{side}_score"] == pytest.approx(score_of[h["id"]], abs=1e-6), (side, h)
            # ties aside, the rank is the position in the separate search
            assert alone[rank - 1]["score"] == pytest.approx(h[f"{side}_score"], abs=1e-6)
            if list(score_of.values()).count(score_of[h["id"]]) == 1:
                assert alone[rank - 1]["id"] == h["id"], (side, h)


@pytest.mark.parametrize("rrf_k", [60, 1])
def test_rrf_score_is_the_sum_of_reciprocal_ranks(corpus: RecordingClient, rrf_k: int) -> None:
    hits = search(corpus, "kw", query=QUERY, k=N, mode="hybrid", fusion="rrf", rrf_k=rrf_k)
    assert len(hits) == N  # every document is on the vector side
    for h in hits:
        ranks = [h[f"{s}_rank"] for s in ("vector", "keyword") if f"{s}_rank" in h]
        assert h["score"] == pytest.approx(sum(1 / (rrf_k + r) for r in ranks), rel=1e-9)
    scores = [h["score"] for h in hits]
    assert scores == sorted(scores, reverse=True)
    assert_sides_match(corpus, hits, query=QUERY)


def minmax(scores: dict[str, float]) -> dict[str, float]:
    lo, hi = min(scores.values()), max(scores.values())
    return {i: (s - lo) / (hi - lo) for i, s in scores.items()}


@pytest.mark.parametrize("alpha", [0.5, 0.2, 1.0])
def test_convex_blends_min_max_scores(corpus: RecordingClient, alpha: float) -> None:
    hits = search(corpus, "kw", query=QUERY, k=N, mode="hybrid", fusion="convex", alpha=alpha)
    assert_sides_match(corpus, hits, query=QUERY)
    vec = minmax({h["id"]: h["score"] for h in search(corpus, "kw", query=QUERY, k=N)})
    kw = minmax(
        {h["id"]: h["score"] for h in search(corpus, "kw", query=QUERY, k=N, mode="keyword")}
    )
    for h in hits:  # a document missing from a side scores 0 there
        want = alpha * vec[h["id"]] + (1 - alpha) * kw.get(h["id"], 0.0)
        assert h["score"] == pytest.approx(want, abs=1e-6), h
    scores = [h["score"] for h in hits]
    assert scores == sorted(scores, reverse=True)
    rrf = search(corpus, "kw", query=QUERY, k=N, mode="hybrid", fusion="rrf")
    assert [h["score"] for h in rrf] != scores  # the fusion is not ignored


def test_hybrid_takes_an_explicit_vector_for_the_vector_side(corpus: RecordingClient) -> None:
    car = corpus.get("/v1/collections/kw/documents/car", params={"with_vectors": True}).json()
    hits = search(corpus, "kw", query="cat", vector=car["vector"], k=N, mode="hybrid")
    by_id = {h["id"]: h for h in hits}
    assert by_id["car"]["vector_rank"] == 1
    assert by_id["car"]["vector_score"] == pytest.approx(1.0, abs=1e-5)
    assert "keyword_rank" not in by_id["car"]  # BM25 scored the text "cat", not the vector
    assert {i for i, h in by_id.items() if "keyword_rank" in h} == {"cat", "kitten", "dog"}
    by_vector = search(corpus, "kw", vector=car["vector"], k=N)
    for h in hits:
        rank = h["vector_rank"]
        assert by_vector[rank - 1]["score"] == pytest.approx(h["vector_score"], abs=1e-6)


def test_batch_search_mixes_modes(corpus: RecordingClient) -> None:
    searches: list[dict[str, Any]] = [
        {"query": QUERY, "k": 3},
        {"query": QUERY, "k": 3, "mode": "keyword"},
        {"query": QUERY, "k": 4, "mode": "hybrid"},
        {
            "query": QUERY,
            "k": 4,
            "mode": "hybrid",
            "fusion": "convex",
            "filter": {"kind": "machine"},
        },
        {"query": QUERY, "k": 3, "mode": "vector", "diversity": 0.5},
    ]
    r = corpus.post(URL.format("kw") + "/batch", json={"searches": searches})
    assert r.status_code == 200, r.text
    results = [res["hits"] for res in r.json()["results"]]
    assert len(results) == len(searches)
    for s, hits in zip(searches, results, strict=True):
        assert hits == search(corpus, "kw", **s), s
    assert {h["id"] for h in results[3]} == {"car", "truck"}


# ---- MMR -----------------------------------------------------------------------------------
@pytest.fixture
def near(client: RecordingClient) -> RecordingClient:
    create(client, "near")
    put(client, "near", [{"id": i, "text": t} for i, t in NEAR])
    return client


@pytest.mark.parametrize("mode", ["vector", "keyword", "hybrid"])
def test_diversity_zero_is_the_plain_search(near: RecordingClient, mode: str) -> None:
    body = {"query": "cat sat on the mat", "k": 3, "mode": mode}
    plain = search(near, "near", **body)
    for extra in ({"diversity": 0}, {"diversity": 0, "candidates": 6}):
        assert search(near, "near", **body, **extra) == plain  # ids, scores and every field


@pytest.mark.parametrize("mode", ["vector", "keyword", "hybrid"])
def test_diversity_spreads_near_duplicates(near: RecordingClient, mode: str) -> None:
    body = {"query": "cat sat on the mat", "k": 3, "mode": mode}
    dups = {"d1", "d2", "d3"}
    plain = search(near, "near", **body)
    assert set(ids(plain)) == dups
    diverse = search(near, "near", **body, diversity=0.9, candidates=6)
    assert ids(diverse) != ids(plain)
    assert ids(diverse)[0] == ids(plain)[0]  # the first pick is the most relevant
    assert len(set(ids(diverse)) & dups) < 3
    # MMR reorders and swaps hits; each keeps its relevance score
    assert diverse[0]["score"] == plain[0]["score"]
    every = {h["id"]: h["score"] for h in search(near, "near", **{**body, "k": len(NEAR)})}
    assert all(h["score"] == pytest.approx(every[h["id"]], abs=1e-9) for h in diverse)


# ---- chunked collections -------------------------------------------------------------------
def test_upsert_reports_passages_and_get_rebuilds_the_text(client: RecordingClient) -> None:
    create(client, "ch", chunking=CHUNKING)
    body = put(client, "ch", [{"id": "long", "text": LONG, "metadata": {"source": "essay"}}])
    assert (body["upserted"], body["skipped"]) == (1, 0)
    assert body["passages"] > 1 and body["count"] == body["passages"]
    more = put(client, "ch", [{"id": "short", "text": "a tiny note"}])
    assert (more["passages"], more["count"]) == (1, body["passages"] + 1)
    doc = client.get("/v1/collections/ch/documents/long").json()
    assert (doc["id"], doc["text"], doc["metadata"]) == ("long", LONG, {"source": "essay"})
    rows = client.get("/v1/collections/ch/documents", params={"limit": 100}).json()["documents"]
    passage_ids = sorted(r["id"] for r in rows if r["id"] != "short")
    assert passage_ids == sorted(f"long#{j}" for j in range(body["passages"]))
    assert describe(client, "ch")["keyword_index"] == {"documents": body["passages"] + 1}
    plain = create(client, "plain")
    assert "passages" not in put(client, "plain", [{"id": "long", "text": LONG}])
    assert plain["chunking"] is None


@pytest.mark.parametrize("mode", ["vector", "keyword", "hybrid"])
def test_group_by_document_gives_each_document_once(chunked: RecordingClient, mode: str) -> None:
    text = {
        d: chunked.get(f"/v1/collections/ch/documents/{d}").json()["text"]
        for d in ("long", "short")
    }
    hits = search(chunked, "ch", query="glaciers tigers", k=5, mode=mode, group_by_document=True)
    assert ids(hits) == sorted(set(ids(hits)), key=ids(hits).index)  # no id twice
    assert set(ids(hits)) <= {"long", "short"}
    long_hit = next(h for h in hits if h["id"] == "long")
    p = long_hit["passage"]
    assert (p["document"], p["id"]) == ("long", f"long#{p['index']}")
    assert text["long"][p["start"] : p["end"]] == long_hit["text"]
    assert "glaciers" in long_hit["text"] or "tigers" in long_hit["text"]
    assert long_hit["passages_matched"] >= 1
    assert long_hit["metadata"] == {"source": "essay"}  # no _document, _start, ... keys
    short_hit = next((h for h in hits if h["id"] == "short"), None)
    if short_hit is not None:  # stored whole: no passage, one "passage" matched
        assert "passage" not in short_hit and short_hit["passages_matched"] == 1


def test_ungrouped_hits_are_passages_with_offsets(chunked: RecordingClient) -> None:
    hits = search(chunked, "ch", query="glaciers", k=4)
    passages = [h for h in hits if "passage" in h]
    assert len(passages) >= 3
    for h in passages:
        p = h["passage"]
        assert h["id"] == p["id"] == f"long#{p['index']}"
        assert LONG[p["start"] : p["end"]] == h["text"]
        assert "passages_matched" not in h and h["metadata"] == {"source": "essay"}
    filtered = search(chunked, "ch", query="glaciers", k=4, filter={"source": "memo"})
    assert ids(filtered) == ["short"]


def test_reupserting_a_short_text_replaces_the_passages(chunked: RecordingClient) -> None:
    body = put(chunked, "ch", [{"id": "long", "text": "now it is short"}])
    assert (body["passages"], body["count"]) == (1, 2)
    assert chunked.get("/v1/collections/ch/documents/long").json()["text"] == "now it is short"
    assert chunked.get("/v1/collections/ch/documents/long%230").status_code == 404
    assert describe(chunked, "ch")["keyword_index"] == {"documents": 2}


def test_deleting_a_chunked_document_removes_every_passage(chunked: RecordingClient) -> None:
    assert describe(chunked, "ch")["count"] > 2
    r = chunked.delete("/v1/collections/ch/documents/long")
    assert r.status_code == 200, r.text
    assert r.json() == {"deleted": ["long"], "count": 1}  # the document, once
    assert_error(chunked.get("/v1/collections/ch/documents/long"), 404, "document_not_found")
    for mode in ("vector", "keyword", "hybrid"):
        assert ids(search(chunked, "ch", query="topic glaciers", k=10, mode=mode)) in (
            [],
            ["short"],
        )
    assert describe(chunked, "ch")["keyword_index"] == {"documents": 1}
    # the bulk route deletes a document the same way
    put(chunked, "ch", [{"id": "long", "text": LONG}])
    r = chunked.post("/v1/collections/ch/documents/delete", json={"ids": ["long"]})
    assert r.status_code == 200, r.text
    assert r.json() == {"deleted": ["long"], "count": 1}
    assert describe(chunked, "ch")["count"] == 1


# ---- errors: a 422 naming the field, and nothing changed ------------------------------------
BAD_SEARCHES: list[tuple[str, dict[str, Any], str]] = [
    ("kw", {"mode": "keyword", "vector": [0.1] * 384}, "query"),
    ("kw", {"mode": "keyword"}, "query"),
    ("kw", {"mode": "keyword", "query": " \n"}, "query"),
    ("kw", {"mode": "hybrid", "vector": [0.1] * 384}, "query"),
    ("kw", {"mode": "keyword", "query": "cat", "vector": [0.1] * 384}, "vector"),
    ("kw", {"query": "cat", "k": 3, "candidates": 3}, "candidates"),
    ("kw", {"query": "cat", "k": 3, "candidates": 2, "diversity": 0.5}, "candidates"),
    ("kw", {"query": "cat", "k": 1, "candidates": 1}, "candidates"),
    ("kw", {"query": "cat", "mode": "bm25"}, "mode"),
    ("kw", {"query": "cat", "mode": "hybrid", "fusion": "max"}, "fusion"),
    ("kw", {"query": "cat", "mode": "hybrid", "fusion": "convex", "alpha": 1.5}, "alpha"),
    ("kw", {"query": "cat", "mode": "hybrid", "rrf_k": 0}, "rrf_k"),
    ("kw", {"query": "cat", "diversity": 1.1}, "diversity"),
    ("kw", {"query": "cat", "diversity": -0.1}, "diversity"),
    ("nokw", {"query": "cat", "mode": "keyword"}, "mode"),
    ("nokw", {"query": "cat", "mode": "hybrid"}, "mode"),
]


@pytest.mark.parametrize(("name", "body", "field"), BAD_SEARCHES)
def test_bad_search_is_422_naming_the_field(
    corpus: RecordingClient, name: str, body: dict[str, Any], field: str
) -> None:
    assert_error(corpus.post(URL.format(name), json=body), 422, "invalid_input", field)
    searches = [{"query": "cat"}, body]
    r = corpus.post(URL.format(name) + "/batch", json={"searches": searches})
    if (name, field) == ("nokw", "mode"):
        return  # see test_batch_names_the_search_without_a_keyword_index
    assert_error(r, 422, "invalid_input", f"searches[1].{field}")


def test_batch_names_the_search_without_a_keyword_index(corpus: RecordingClient) -> None:
    searches = [{"query": "cat"}, {"query": "cat", "mode": "keyword"}]
    r = corpus.post(URL.format("nokw") + "/batch", json={"searches": searches})
    assert_error(r, 422, "invalid_input", "searches[1].mode")


BAD_CREATES: list[tuple[dict[str, Any], str]] = [
    ({"dim": 4, "chunking": True}, "chunking"),
    ({"dim": 4, "chunking": {"max_tokens": 32}}, "chunking"),
    ({"chunking": {"max_tokens": 8}}, "chunking.max_tokens"),
    ({"chunking": {"max_tokens": 10_000}}, "chunking.max_tokens"),
    ({"chunking": {"max_tokens": 16, "overlap": 9}}, "chunking.overlap"),
    ({"chunking": {"max_tokens": 16, "overlap": -1}}, "chunking.overlap"),
    ({"keyword_index": "yes"}, "keyword_index"),
]


@pytest.mark.parametrize(("spec", "field"), BAD_CREATES)
def test_bad_create_is_422_naming_the_field(
    client: RecordingClient, spec: dict[str, Any], field: str
) -> None:
    r = client.post("/v1/collections", json={"name": "bad", **spec})
    assert_error(r, 422, "invalid_input", field)
    assert_error(client.get("/v1/collections/bad"), 404, "collection_not_found")


@pytest.mark.parametrize(
    ("chunking", "field"),
    [({"max_tokens": "20"}, "chunking.max_tokens"), ({"max_token": 20}, "chunking")],
)
def test_bad_chunking_type_names_the_field(
    client: RecordingClient, chunking: dict[str, Any], field: str
) -> None:
    r = client.post("/v1/collections", json={"name": "bad", "chunking": chunking})
    assert_error(r, 422, "invalid_input", field)


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        ({"id": "x#3", "text": "a passage id"}, "documents[1].id"),
        ({"id": "x", "text": "a", "metadata": {"_document": "long"}}, "documents[1].metadata"),
        ({"id": "x", "text": "a", "metadata": {"_passage": 0}}, "documents[1].metadata"),
        ({"id": "x", "text": "a", "metadata": {"_start": 1}}, "documents[1].metadata"),
        ({"id": "x", "text": "a", "metadata": {"_end": 2}}, "documents[1].metadata"),
        ({"id": "x", "text": "a", "metadata": {"_document_hash": "0"}}, "documents[1].metadata"),
    ],
)
def test_chunked_upsert_refuses_the_passage_layout(
    chunked: RecordingClient, doc: dict[str, Any], field: str
) -> None:
    before = describe(chunked, "ch")
    documents = [{"id": "fine", "text": "a good document"}, doc]
    r = chunked.put("/v1/collections/ch/documents", json={"documents": documents})
    assert_error(r, 422, "invalid_input", field)
    after = describe(chunked, "ch")
    assert (after["count"], after["seq"]) == (before["count"], before["seq"])
    assert chunked.get("/v1/collections/ch/documents/fine").status_code == 404


def test_the_passage_layout_is_free_in_a_plain_collection(corpus: RecordingClient) -> None:
    doc = {"id": "x#3", "text": "a", "metadata": {"_start": 1}}
    assert put(corpus, "kw", [doc])["count"] == N + 1


def test_errors_change_nothing(corpus: RecordingClient) -> None:
    before = {name: describe(corpus, name) for name in ("kw", "nokw")}
    for name, body, _ in BAD_SEARCHES:
        assert corpus.post(URL.format(name), json=body).status_code == 422
    assert {name: describe(corpus, name) for name in ("kw", "nokw")} == before


def test_hybrid_text_only_on_a_vector_collection_names_query(client: RecordingClient) -> None:
    create(client, "v", dim=2)
    put(client, "v", [{"id": "a", "vector": [1.0, 0.0], "text": "red apple"}])
    assert search(client, "v", query="apple", mode="keyword")[0]["id"] == "a"
    r = client.post(URL.format("v"), json={"query": "apple", "mode": "hybrid"})
    assert_error(r, 422, "invalid_input", "query")


def test_higher_is_better_follows_the_mode_not_only_the_metric(client: RecordingClient) -> None:
    r = client.post("/v1/collections", json={"name": "l2", "metric": "l2"})
    assert r.status_code == 201, r.text
    docs = [{"id": "a", "text": "a cat"}, {"id": "b", "text": "a dog"}]
    assert client.put("/v1/collections/l2/documents", json={"documents": docs}).status_code == 200
    for mode, better in (("vector", False), ("keyword", True), ("hybrid", True)):
        body = client.post("/v1/collections/l2/search", json={"query": "cat", "mode": mode}).json()
        assert body["higher_is_better"] is better, mode
    searches = [{"query": "cat"}, {"query": "cat", "mode": "keyword"}]
    body = client.post("/v1/collections/l2/search/batch", json={"searches": searches}).json()
    assert [r["higher_is_better"] for r in body["results"]] == [False, True]
