"""The batch job's `--url` mode against this service: `indexer.jobs.build_http` speaks our API."""

from __future__ import annotations

from indexer.jobs import build_http
from indexer.readers import Record

from .conftest import RecordingClient


def records(n: int) -> list[Record]:
    return [Record(i + 1, f"r{i}", f"record number {i}", {"n": i}) for i in range(n)]


def test_build_over_http_creates_upserts_and_resumes(client: RecordingClient) -> None:
    first = build_http("http://testserver", "jobs", records(7), batch_size=3, client=client)
    assert (first.upserted, first.skipped_unchanged, first.bad) == (7, 0, [])
    info = client.get("/v1/collections/jobs").json()
    assert (info["count"], info["embedder"]) == (7, "hash-384")
    again = build_http("http://testserver", "jobs", records(7), batch_size=3, client=client)
    assert (again.upserted, again.skipped_unchanged) == (0, 7)


def test_a_bad_record_is_reported_and_the_rest_are_written(client: RecordingClient) -> None:
    items = [*records(3), Record(4, "blank", "   ", {})]
    summary = build_http("http://testserver", "jobs", items, batch_size=10, client=client)
    assert summary.upserted == 3
    assert [b.line for b in summary.bad] == [4]
    assert client.get("/v1/collections/jobs").json()["count"] == 3


def test_build_over_http_can_chunk_long_texts(client: RecordingClient) -> None:
    long = " ".join(f"Sentence {i} is about rivers and valleys." for i in range(40))
    items = [Record(1, "long", long, {}), Record(2, "short", "a short one", {})]
    chunking = {"max_tokens": 32, "overlap": 4}
    summary = build_http("http://testserver", "chunks", items, client=client, chunking=chunking)
    assert summary.upserted == 2
    info = client.get("/v1/collections/chunks").json()
    assert info["chunking"] == chunking and info["count"] > 2
    assert client.get("/v1/collections/chunks/documents/long").json()["text"] == long
