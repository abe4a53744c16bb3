"""bench/load.py against the empty endpoint: bounded, closed loop, errors counted."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from bench import load
from bench.servers import uvicorn


@pytest.fixture(scope="module")
def empty_server(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    log = tmp_path_factory.mktemp("logs") / "empty.log"
    server = uvicorn(sys.executable, "bench.empty:app", "empty", {}, log).start()
    server.wait_ready(60)
    yield server
    server.stop()


REQS = [load.Req("POST", "/empty", {"vector": [0.5] * 8, "k": 10})]


def test_python_client_counts_requests_and_errors(empty_server) -> None:  # type: ignore[no-untyped-def]
    ok = load.run(empty_server.base, REQS, 2, seconds=0.5, max_requests=50, tool="python")
    assert (ok.errors, ok.connections, ok.tool) == (0, 2, "python")
    assert 0 < ok.requests <= 50 + 2
    assert ok.p50_ms <= ok.p99_ms
    missing = load.run(empty_server.base, [load.Req("POST", "/nope")], 1, 0.3, 5, "python")
    assert missing.errors == missing.requests > 0


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk not installed")
def test_wrk_reports_through_the_lua_script(empty_server) -> None:  # type: ignore[no-untyped-def]
    r = load.run(empty_server.base, REQS, 2, seconds=1, tool="wrk")
    assert (r.errors, r.tool) == (0, "wrk") and r.requests > 0
    bad = load.run(empty_server.base, [load.Req("GET", "/empty")], 1, seconds=1, tool="wrk")
    assert bad.errors > 0  # 405s are counted


def test_load_goes_to_this_machine_only() -> None:
    with pytest.raises(ValueError, match=r"127\.0\.0\.1"):
        load.run("http://example.org", REQS, 1, 0.1, tool="python")


def test_server_cpu_and_memory_are_read(empty_server) -> None:  # type: ignore[no-untyped-def]
    assert empty_server.rss_mb() > 10
    assert empty_server.cpu_s() >= 0
    assert Path(f"/proc/{empty_server.proc.pid}").exists()
