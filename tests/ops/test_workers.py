"""`serve --workers N`: several server processes on one port over one data directory. Every
acknowledged write is seen by whichever worker answers next, /metrics sums all workers, and
SIGTERM stops them all cleanly."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import httpx
import pytest

from service.cli import main

from .live import live_server

ROUNDS = 40  # each: a write on one connection, then a read and a search on fresh ones


def fresh(url: str) -> httpx.Client:
    """A client that opens a new connection per request, so the kernel hands each one to
    whichever worker accepts it first."""
    return httpx.Client(base_url=url, timeout=20, limits=httpx.Limits(max_keepalive_connections=0))


def wait_all_ready(url: str, times: int = 10, deadline_s: float = 60) -> None:
    """/readyz 200 on `times` fresh connections in a row: every worker has opened its data."""
    end, streak = time.monotonic() + deadline_s, 0
    with fresh(url) as c:
        while streak < times:
            assert time.monotonic() < end, "the workers did not all get ready"
            streak = streak + 1 if c.get("/readyz").status_code == 200 else 0
            if streak == 0:
                time.sleep(0.2)


def pids_of_requests(log: Path) -> set[int]:
    pids = set()
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            if entry.get("logger") == "vector_primer.access":
                pids.add(entry["pid"])
    return pids


def test_two_workers_see_each_others_writes_and_sum_their_metrics(tmp_path: Path) -> None:
    with live_server(tmp_path / "data", tmp_path / "server.log", workers="2") as server:
        wait_all_ready(server.url)
        with fresh(server.url) as c:
            made = c.post("/v1/collections", json={"name": "notes", "index": "hnsw"})
            assert made.status_code == 201, made.text
            for i in range(ROUNDS):
                text = f"note {i} about subject {i % 7} and {i * 31}"
                put = c.put(
                    "/v1/collections/notes/documents",
                    json={"documents": [{"id": f"n{i}", "text": text}]},
                )
                assert put.status_code == 200, put.text
                got = c.get(f"/v1/collections/notes/documents/n{i}")
                assert got.status_code == 200 and got.json()["text"] == text, (i, got.text)
                hits = c.post("/v1/collections/notes/search", json={"query": text, "k": 1})
                assert hits.json()["hits"][0]["id"] == f"n{i}", (i, hits.text)
            for i in range(0, ROUNDS, 4):
                assert c.delete(f"/v1/collections/notes/documents/n{i}").status_code == 200
                assert c.get(f"/v1/collections/notes/documents/n{i}").status_code == 404
                found = c.post(
                    "/v1/collections/notes/search", json={"query": f"note {i} about", "k": 50}
                )
                assert f"n{i}" not in {h["id"] for h in found.json()["hits"]}
            count = c.get("/v1/collections/notes").json()["count"]
            assert count == ROUNDS - len(range(0, ROUNDS, 4))
            metrics = c.get("/metrics").text

        # both workers answered requests, and /metrics is their sum, not one worker's share
        assert len(pids_of_requests(server.log)) == 2, pids_of_requests(server.log)
        puts = [
            line
            for line in metrics.splitlines()
            if line.startswith("vp_http_requests_total")
            and 'method="PUT"' in line
            and 'status="200"' in line
        ]
        assert len(puts) == 1 and float(puts[0].split()[-1]) == ROUNDS, puts
        docs = 'vp_collection_documents{collection="notes",index="hnsw",metric="cosine"}'
        assert f"{docs} {count}.0" in metrics

        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(timeout=30) == 0
    lines = server.log.read_text().splitlines()
    assert sum("Application shutdown complete" in line for line in lines) == 2


@pytest.mark.parametrize("bad", ["0", "-1", "65"])
def test_a_bad_worker_count_is_refused_naming_it(
    bad: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["serve", "--workers", bad]) == 2
    assert "VP_WORKERS" in capsys.readouterr().err
    monkeypatch.setenv("VP_WORKERS", bad)
    assert main(["serve"]) == 2
    assert "VP_WORKERS" in capsys.readouterr().err


def test_a_worker_count_that_is_no_number_is_refused_by_the_parser(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["serve", "--workers", "many"])
    assert stop.value.code == 2 and "--workers" in capsys.readouterr().err
