"""R12: overload degrades, never breaks, on a real server (uvicorn, loopback).

- A burst of concurrent requests beyond VP_MAX_CONCURRENCY gets only 2xx or 503 with
  Retry-After, and the service is healthy right after.
- Slow clients trickling a body 1 byte a second hold a connection but never a slot: other
  clients' searches keep their latency (p99 ≤ 2× the baseline + 20 ms) and are never refused,
  although there are more slow clients than slots.
- A body that has not arrived within VP_BODY_TIMEOUT gets 408 and the connection is closed; a
  10 MB chunked body is cut off with 413 at the limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator

import httpx
import numpy as np
import pytest

from .http_support import DIM, Server, ServerFactory, percentile

LIMITS = {
    "VP_MAX_CONCURRENCY": "4",
    "VP_QUEUE_TIMEOUT": "0.2",
    "VP_BODY_TIMEOUT": "4",
    "VP_MAX_BODY_BYTES": str(2 * 1024 * 1024),
}
SEARCH = "/v1/collections/load/search"
DOCS = 1000


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the module (each test leaves it as healthy as it found it)."""
    factory = ServerFactory(tmp_path_factory.mktemp("overload"))
    try:
        s = factory(**LIMITS).start()
        rng = np.random.default_rng(3)
        docs = [{"id": f"d{i}", "vector": rng.standard_normal(DIM).tolist()} for i in range(DOCS)]
        with s.client(timeout=60) as http:
            assert http.post("/v1/collections", json={"name": "load"}).status_code == 201
            for start in range(0, DOCS, 100):  # 100 vectors ≈ 0.8 MB of JSON, under 2 MB
                batch = {"documents": docs[start : start + 100]}
                assert http.put("/v1/collections/load/documents", json=batch).status_code == 200
        yield s
    finally:
        factory.close()


# ---- a burst -----------------------------------------------------------------------------
async def burst(url: str, n: int) -> list[httpx.Response | Exception]:
    """`n` requests at once: searches and CPU-heavy descents (each ~tens of ms)."""
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as http:

        async def one(i: int) -> httpx.Response:
            if i % 2:
                return await http.post("/v1/math/descent", json={"steps": 3000})
            return await http.post(SEARCH, json={"vector": [1.0] * DIM, "k": 100, "exact": True})

        return await asyncio.gather(*(one(i) for i in range(n)), return_exceptions=True)


def check_burst(server: Server, n: int) -> Counter[int]:
    results = asyncio.run(burst(server.url, n))
    failures = [r for r in results if isinstance(r, Exception)]
    assert not failures, failures[:3]
    responses = [r for r in results if isinstance(r, httpx.Response)]
    statuses = Counter(r.status_code for r in responses)
    assert set(statuses) <= {200, 503}, statuses
    for r in responses:
        if r.status_code == 503:
            assert r.headers["retry-after"] == "1" and r.json()["error"] == "overloaded", r.text
    assert statuses[503] > 0, f"the limit never engaged: {statuses}"
    assert statuses[200] >= 4, statuses
    with server.client() as http:  # healthy right after
        assert http.get("/readyz").status_code == 200
        assert http.post(SEARCH, json={"vector": [1.0] * DIM}).status_code == 200
    return statuses


def test_a_burst_beyond_capacity_gets_200_or_503_with_retry_after(server: Server) -> None:
    statuses = check_burst(server, 200)
    print(f"\nR12 burst of 200 at VP_MAX_CONCURRENCY=4: {dict(statuses)}; healthy after")


# ---- slow clients ------------------------------------------------------------------------
def slow_socket(server: Server, length: int = 200) -> socket.socket:
    host, port = server.url.removeprefix("http://").split(":")
    s = socket.create_connection((host, int(port)), timeout=5)
    head = (
        f"PUT /v1/collections/load/documents HTTP/1.1\r\nHost: {host}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    )
    s.sendall(head.encode())
    return s


def trickle(socks: list[socket.socket], seconds: float, stop: threading.Event) -> None:
    """One byte a second on every socket, for `seconds` or until stopped."""
    until = time.monotonic() + seconds
    while time.monotonic() < until and not stop.wait(1.0):
        for s in socks:
            with contextlib.suppress(OSError):  # the server may have answered 408 already
                s.sendall(b" ")


def search_latencies(server: Server, n: int) -> tuple[list[float], Counter[int]]:
    out, statuses = [], Counter[int]()
    rng = np.random.default_rng(5)
    with server.client() as http:
        for _ in range(n):
            body = {"vector": rng.standard_normal(DIM).tolist(), "k": 10}
            t0 = time.monotonic()
            r = http.post(SEARCH, json=body)
            out.append(1000 * (time.monotonic() - t0))
            statuses[r.status_code] += 1
    return out, statuses


def check_slow_clients(server: Server, clients: int, seconds: float, searches: int) -> str:
    """Every search answered 200 while the slow clients hang on; p99 within 2x the baseline +
    20 ms in one of two tries (a single spike of a shared machine is not starvation)."""
    tries = []
    for _ in range(2):
        summary, p99_ok = slow_clients_once(server, clients, seconds, searches)
        tries.append(summary)
        if p99_ok:
            return " / ".join(tries)
    raise AssertionError(f"p99 over 2x baseline + 20 ms twice: {tries}")


def slow_clients_once(
    server: Server, clients: int, seconds: float, searches: int
) -> tuple[str, bool]:
    baseline, _ = search_latencies(server, searches)
    socks = [slow_socket(server) for _ in range(clients)]
    stop = threading.Event()
    dripper = threading.Thread(target=trickle, args=(socks, seconds, stop))
    dripper.start()
    try:
        during, statuses = search_latencies(server, searches)
    finally:
        stop.set()
        dripper.join(seconds + 5)
        for s in socks:
            s.close()
    p99_base, p99_slow = percentile(baseline, 99), percentile(during, 99)
    summary = (
        f"R12 {clients} slow clients (1 B/s) vs {searches} searches: p99 {p99_base:.1f} ms "
        f"before, {p99_slow:.1f} ms during; {dict(statuses)}"
    )
    assert statuses == Counter({200: searches}), summary  # never refused: no slot was held
    return summary, p99_slow <= 2 * p99_base + 20


def test_slow_clients_do_not_starve_the_others(server: Server) -> None:
    print("\n" + check_slow_clients(server, clients=20, seconds=3, searches=100))


@pytest.mark.reliability_full
def test_fifty_slow_clients_for_ten_seconds(server: Server) -> None:
    print("\n" + check_slow_clients(server, clients=50, seconds=10, searches=300))
    print(f"R12 full burst: {dict(check_burst(server, 200))}")


def read_response(s: socket.socket, timeout: float) -> bytes:
    s.settimeout(timeout)
    data = b""
    try:
        while chunk := s.recv(65536):
            data += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return data


def test_a_body_slower_than_the_timeout_gets_408_and_the_connection_closes(
    server: Server,
) -> None:
    s = slow_socket(server)
    t0 = time.monotonic()
    try:
        s.sendall(b'{"documents": [')
        answer = read_response(s, timeout=10)  # the server must answer and close by itself
    finally:
        s.close()
    took = time.monotonic() - t0
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"VP_BODY_TIMEOUT" in answer
    assert 3.5 <= took <= 8, took


def test_a_ten_megabyte_chunked_body_is_cut_off_at_the_limit(server: Server) -> None:
    host, port = server.url.removeprefix("http://").split(":")
    s = socket.create_connection((host, int(port)), timeout=5)
    sent = 0
    try:
        s.sendall(
            b"PUT /v1/collections/load/documents HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        chunk = b"%x\r\n%s\r\n" % (65536, b"a" * 65536)
        try:
            while sent < 10 * 1024 * 1024:
                s.sendall(chunk)
                sent += 65536
        except OSError:
            pass  # the server stopped reading: expected
        answer = read_response(s, timeout=5)
    finally:
        s.close()
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    with server.client() as http:
        assert http.get("/v1/collections/load").json()["count"] == DOCS
