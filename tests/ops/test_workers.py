"""`serve --workers N`: several server processes on one port over one data directory. Every
acknowledged write is seen by whichever worker answers next, /metrics sums all workers, and
SIGTERM stops them all cleanly."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.cli import main

from .live import ROOT, free_port, live_server

ROUNDS = 40  # each: a write on one connection, then a read and a search on fresh ones


def fresh(url: str) -> httpx.Client:
    """A client that opens a new connection per request, so the kernel hands each one to
    whichever worker accepts it first."""
    return httpx.Client(base_url=url, timeout=20, limits=httpx.Limits(max_keepalive_connections=0))


def access_lines(log: Path) -> list[dict[str, Any]]:
    """The request log lines (JSON), in the order the workers wrote them."""
    out = []
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            if entry.get("logger") == "vector_primer.access":
                out.append(entry)
    return out


def wait_all_ready(url: str, log: Path, workers: int = 2, deadline_s: float = 60) -> None:
    """Every worker has logged that it is ready, and /readyz answers 200."""
    end = time.monotonic() + deadline_s
    while True:
        ready = set()
        for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("{"):
                entry = json.loads(line)
                if entry.get("msg", "").startswith("ready:"):
                    ready.add(entry["pid"])
        if len(ready) >= workers:
            break
        assert time.monotonic() < end, f"only {len(ready)} worker(s) got ready"
        time.sleep(0.1)
    with fresh(url) as c:
        assert c.get("/readyz").status_code == 200


def test_two_workers_see_each_others_writes_and_sum_their_metrics(tmp_path: Path) -> None:
    with live_server(tmp_path / "data", tmp_path / "server.log", workers="2") as server:
        wait_all_ready(server.url, server.log)
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

        # a write answered by one worker was read back by the other (the log's order is the
        # order of the answers: each round's GET follows its PUT)
        lines = [e for e in access_lines(server.log) if e["route"] != "/readyz"]
        crossed = [
            (a, b)
            for a, b in itertools.pairwise(lines)
            if a["method"] == "PUT" and b["method"] == "GET" and a["pid"] != b["pid"]
        ]
        assert crossed, "no write was read back by the other worker"
        assert len({e["pid"] for e in lines}) == 2
        # /metrics is the workers' sum, not one worker's share
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


def serve_cli(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VP_")}
    env.update(VP_EMBEDDER="hash-384", VP_BUILD_WORDS="false", VP_LOG_FORMAT="json")
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "service", "serve", *args],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def test_the_workers_flag_hands_the_other_flags_to_every_worker(tmp_path: Path) -> None:
    """--workers, --port and --data-dir given as flags (not VP_* variables) reach the workers."""
    port, data, log = free_port(), tmp_path / "given-by-flag", tmp_path / "server.log"
    proc = serve_cli(["--workers", "2", "--port", str(port), "--data-dir", str(data)], log)
    try:
        wait_all_ready(f"http://127.0.0.1:{port}", log)
        with fresh(f"http://127.0.0.1:{port}") as c:
            assert c.post("/v1/collections", json={"name": "flagged"}).status_code == 201
        assert (data / "flagged" / "manifest.json").is_file()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0


def test_when_no_worker_can_start_the_server_exits_with_an_error(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("a data directory must be a directory")
    log = tmp_path / "server.log"
    proc = serve_cli(
        ["--workers", "2", "--port", str(free_port()), "--data-dir", str(not_a_dir)], log
    )
    assert proc.wait(timeout=60) == 2
    assert "no worker started" in log.read_text()


def test_the_words_build_waits_for_another_process_and_stops_on_shutdown(tmp_path: Path) -> None:
    """Workers build `words` one at a time (a flock); one waiting gives up when stopped."""
    import fcntl
    import threading

    from service.warmup import Stopped, _exclusive

    lock = tmp_path / ".words.lock"
    with lock.open("a") as other:  # another worker is building
        fcntl.flock(other, fcntl.LOCK_EX)
        stop, outcome = threading.Event(), []

        def wait() -> None:
            try:
                with _exclusive(lock, stop):
                    outcome.append("built")
            except Stopped:
                outcome.append("stopped")

        waiter = threading.Thread(target=wait)
        waiter.start()
        time.sleep(0.5)
        assert outcome == []  # still waiting for the other build
        stop.set()
        waiter.join(timeout=5)
        assert outcome == ["stopped"]
    # the other one finished (its lock is released): the next build goes ahead
    with _exclusive(lock, threading.Event()):
        pass


def ready_pids(log: Path) -> list[int]:
    pids = []
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            if entry.get("msg", "").startswith("ready:"):
                pids.append(entry["pid"])
    return pids


def test_a_worker_that_dies_is_replaced_and_the_others_keep_serving(tmp_path: Path) -> None:
    with live_server(tmp_path / "data", tmp_path / "server.log", workers="2") as server:
        wait_all_ready(server.url, server.log)
        with fresh(server.url) as c:
            assert c.post("/v1/collections", json={"name": "notes"}).status_code == 201
        victim = ready_pids(server.log)[0]
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while len(set(ready_pids(server.log))) < 3:  # its replacement got ready
            assert time.monotonic() < deadline, "the dead worker was not replaced"
            time.sleep(0.1)
        with fresh(server.url) as c:
            for i in range(20):  # every connection is answered, whichever worker takes it
                put = c.put(
                    "/v1/collections/notes/documents",
                    json={"documents": [{"id": f"n{i}", "text": f"note {i}"}]},
                )
                assert put.status_code == 200, put.text
            assert c.get("/v1/collections/notes").json()["count"] == 20


def test_a_port_in_use_is_refused_naming_it(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        log = tmp_path / "server.log"
        args = ["--workers", "2", "--port", str(port), "--data-dir", str(tmp_path / "d")]
        proc = serve_cli(args, log)
        assert proc.wait(timeout=60) == 2
    assert f"cannot listen on 127.0.0.1:{port}" in log.read_text()
