"""The build job: batches into a collection, resumable by content hash, never sunk by one bad
record; and the same job over HTTP."""

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from indexer import Engine, Query, Settings
from indexer.errors import EmbedderMismatch
from indexer.jobs import BuildSummary, build, build_http, progress_bar
from indexer.readers import BadRecord, Item, Record, read_records


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    eng = Engine(Settings(data_dir=tmp_path / "data", embedder="hash-384"))
    yield eng
    eng.close()


def recs(n: int, text: str = "document number {i} about topic {t}") -> list[Record]:
    return [Record(i + 1, f"d{i}", text.format(i=i, t=i % 3), {"t": i % 3}) for i in range(n)]


def test_rerunning_a_build_upserts_nothing_and_a_changed_text_only_itself(engine: Engine) -> None:
    first = build(engine, "docs", recs(50), batch_size=16)
    assert (first.read, first.upserted, first.skipped_unchanged, first.bad) == (50, 50, 0, [])
    assert first.total == 50
    again = build(engine, "docs", recs(50), batch_size=16)
    assert (again.upserted, again.skipped_unchanged) == (0, 50)
    changed = recs(50)
    changed[7] = Record(8, "d7", "an entirely new text", {"t": 1})
    third = build(engine, "docs", changed, batch_size=16)
    assert (third.upserted, third.skipped_unchanged) == (1, 49)
    hits = engine.collection("docs").search(Query(text="an entirely new text", k=1))
    assert hits[0].id == "d7"


def test_a_document_the_engine_refuses_does_not_sink_its_batch(engine: Engine) -> None:
    items: list[Item] = recs(10)
    items[4] = Record(5, "x" * 600, "an id longer than the engine allows", {}, "in.jsonl")
    items.insert(6, BadRecord(99, "malformed JSON", "in.jsonl"))
    seen: list[BadRecord] = []
    s = build(engine, "docs", items, batch_size=100, on_bad=seen.append)
    assert (s.read, s.upserted, len(s.bad)) == (11, 9, 2)
    assert {b.line for b in s.bad} == {5, 99} == {b.line for b in seen}
    refused = next(b for b in s.bad if b.line == 5)
    assert refused.reason.startswith("id must be a non-empty string")  # "documents[4]." dropped
    assert engine.collection("docs").count() == 9


def test_duplicate_ids_keep_the_first_and_report_the_rest(engine: Engine) -> None:
    items = [Record(1, "a", "first"), Record(2, "b", "other"), Record(3, "a", "second")]
    s = build(engine, "docs", items, batch_size=2)
    assert s.upserted == 2
    assert [str(b) for b in s.bad] == [":3: duplicate id 'a' (first on line 1); skipped"]
    assert engine.collection("docs").get("a").text == "first"
    again = build(engine, "docs", items, batch_size=2)
    assert (again.upserted, again.skipped_unchanged) == (0, 2)


def test_an_existing_collection_must_match_the_spec_asked_for(engine: Engine) -> None:
    build(engine, "docs", recs(3), metric="l2", index="flat")
    assert build(engine, "docs", recs(3)).skipped_unchanged == 3  # unspecified: take what exists
    with pytest.raises(EmbedderMismatch, match="metric 'l2', not 'cosine'"):
        build(engine, "docs", recs(3), metric="cosine")
    with pytest.raises(EmbedderMismatch, match="index 'flat', not 'hnsw'"):
        build(engine, "docs", recs(3), index="hnsw")
    with pytest.raises(EmbedderMismatch, match="nlist=None, not 8"):
        build(engine, "docs", recs(3), params={"nlist": 8})
    with pytest.raises(EmbedderMismatch, match="embedder"):
        build(engine, "docs", recs(3), embedder="hash-64")


def test_an_ann_build_publishes_its_snapshot(engine: Engine) -> None:
    s = build(engine, "ann", recs(40), batch_size=8, index="hnsw", params={"ann_threshold": 10})
    assert s.upserted == 40
    assert list((engine.data_dir / "ann" / "snapshots").glob("ann-*.bin"))
    assert engine.collection("ann").describe()["ann"]["built"]


def test_an_interrupted_build_keeps_its_counts_and_resumes(engine: Engine) -> None:
    def stream() -> Iterator[Item]:
        yield from recs(30)[:20]
        raise KeyboardInterrupt

    summary = BuildSummary()
    with pytest.raises(KeyboardInterrupt):
        build(engine, "docs", stream(), batch_size=8, summary=summary)
    assert (summary.read, summary.upserted) == (20, 16)  # the two full batches were written
    resumed = build(engine, "docs", recs(30), batch_size=8)
    assert (resumed.upserted, resumed.skipped_unchanged) == (14, 16)


def test_progress_counts_every_record_read(engine: Engine) -> None:
    ticks: list[int] = []
    items: list[Item] = [*recs(10), BadRecord(11, "bad")]
    build(engine, "docs", items, batch_size=4, progress=ticks.append)
    assert sum(ticks) == 11
    buf = io.StringIO()
    bar = progress_bar(11, "docs", force=True, file=buf)
    bar.update(11)
    bar.close()
    assert "11/11" in buf.getvalue() and "doc/s" in buf.getvalue()
    assert progress_bar(11, "docs", file=io.StringIO()) is None  # not a terminal: no bar


# ---- over HTTP ------------------------------------------------------------------------------
class FakeService:
    """The two endpoints a remote build uses, with the service's error shape."""

    def __init__(self) -> None:
        self.collections: dict[str, dict[str, Any]] = {}
        self.docs: dict[str, dict[str, Any]] = {}
        self.puts = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if request.method == "POST" and request.url.path == "/v1/collections":
            if body["name"] in self.collections:
                return httpx.Response(409, json={"error": "collection_exists", "detail": "exists"})
            self.collections[body["name"]] = body
            return httpx.Response(201, json=body)
        if request.method == "PUT" and request.url.path.endswith("/documents"):
            self.puts += 1
            for i, d in enumerate(body["documents"]):
                if "forbidden" in d["text"]:
                    return httpx.Response(
                        422,
                        json={
                            "error": "invalid_input",
                            "detail": f"documents[{i}].text is refused",
                            "field": f"documents[{i}].text",
                        },
                    )
            fresh = [d for d in body["documents"] if self.docs.get(d["id"]) != d]
            for d in fresh:
                self.docs[d["id"]] = d
            return httpx.Response(
                200, json={"upserted": len(fresh), "skipped": len(body["documents"]) - len(fresh)}
            )
        return httpx.Response(404, json={"error": "not_found", "detail": "no route"})


def test_build_over_http_creates_the_collection_and_reports_refused_documents(
    tmp_path: Path,
) -> None:
    p = tmp_path / "in.jsonl"
    p.write_text(
        '{"id": "a", "text": "fine"}\n{"id": "b", "text": "forbidden word"}\n'
        'not json\n{"id": "c", "text": "also fine", "k": 1}\n'
    )
    fake = FakeService()
    client = httpx.Client(transport=httpx.MockTransport(fake))
    s = build_http(
        "http://svc", "docs", read_records(p), batch_size=10, index="hnsw", client=client
    )
    assert fake.collections["docs"]["index"] == "hnsw"
    assert sorted(fake.docs) == ["a", "c"] and fake.docs["c"]["metadata"] == {"k": 1}
    assert (s.read, s.upserted) == (4, 2)
    assert sorted((b.line, b.reason) for b in s.bad) == [
        (2, "text is refused"),
        (3, "malformed JSON at column 1: Expecting value"),
    ]
    again = build_http("http://svc", "docs", read_records(p), client=client)  # 409: exists
    assert (again.upserted, again.skipped_unchanged) == (0, 2)


def test_build_over_http_against_the_real_app(tmp_path: Path) -> None:
    app_module = pytest.importorskip("service.app", reason="service/ is not written yet")
    if not hasattr(app_module, "create_app"):
        pytest.skip("service.app has no create_app yet")
    from fastapi.testclient import TestClient

    try:
        app = app_module.create_app(
            Settings(data_dir=tmp_path / "data", embedder="hash-384", build_words=False)
        )
    except TypeError:
        pytest.skip("service.app.create_app does not take Settings yet")
    with TestClient(app) as client:
        items = [Record(i + 1, f"d{i}", f"text {i}") for i in range(5)]
        items.append(Record(6, "x" * 600, "an id longer than the service allows"))
        s = build_http(str(client.base_url), "remote", items, batch_size=4, client=client)
        assert (s.upserted, [b.line for b in s.bad]) == (5, [6])
        again = build_http(str(client.base_url), "remote", items, batch_size=4, client=client)
        assert (again.upserted, again.skipped_unchanged) == (0, 5)
    eng = Engine(Settings(data_dir=tmp_path / "data", embedder="hash-384"))
    assert eng.collection("remote").count() == 5
