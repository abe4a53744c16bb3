"""R11: a soak on a real server over loopback. Four readers search (≤ 25 requests/s each) and
one writer upserts, reads its own write, and deletes (≤ 20 cycles/s) for a fixed time, with a
cap on requests too. Zero errors; every write is found first by a search for its vector right
after the 200 (read-your-writes); an id is never returned by a search sent after its delete was
acknowledged; p50/p99 printed and bounded; the server's RSS grows by at most 10%.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np
import pytest

from .http_support import DIM, Server, iter_batches, percentile

COLLECTION = "soak"
READERS = 4
READ_RPS, WRITE_RPS = 25.0, 20.0
RSS_GROWTH = 0.10


@dataclass
class Soak:
    search_ms: list[float] = field(default_factory=list)
    upsert_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    ryw_ok: int = 0
    ryw_failed: list[str] = field(default_factory=list)
    deleted_at: dict[str, float] = field(default_factory=dict)  # id -> when its delete was acked
    resurrected: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def error(self, what: str) -> None:
        with self.lock:
            self.errors.append(what)


def preload(http: httpx.Client, n: int, rng: np.random.Generator) -> np.ndarray:
    assert http.post("/v1/collections", json={"name": COLLECTION}).status_code == 201
    vectors = rng.standard_normal((n, DIM)).astype(np.float32)
    for batch in iter_batches(list(range(n)), 500):
        docs = [{"id": f"p{i}", "vector": vectors[i].tolist()} for i in batch]
        r = http.put(f"/v1/collections/{COLLECTION}/documents", json={"documents": docs})
        assert r.status_code == 200, r.text
    return vectors


def paced(rate: float, until: float, max_ops: int) -> Any:
    """Yield at most `rate` times a second until `until` (monotonic) or `max_ops` yields."""
    interval, next_at = 1.0 / rate, time.monotonic()
    for i in range(max_ops):
        now = time.monotonic()
        if now >= until:
            return
        if next_at > now:
            time.sleep(next_at - now)
        next_at += interval
        yield i


def search(http: httpx.Client, vector: np.ndarray, k: int, soak: Soak) -> list[str] | None:
    t0 = time.monotonic()
    try:
        r = http.post(
            f"/v1/collections/{COLLECTION}/search", json={"vector": vector.tolist(), "k": k}
        )
    except httpx.HTTPError as e:
        soak.error(f"search: {type(e).__name__}")
        return None
    ms = 1000 * (time.monotonic() - t0)
    if r.status_code != 200:
        soak.error(f"search: {r.status_code} {r.text[:200]}")
        return None
    ids = [h["id"] for h in r.json()["hits"]]
    with soak.lock:
        soak.search_ms.append(ms)
        gone = [i for i in ids if soak.deleted_at.get(i, t0) < t0]
        soak.resurrected += gone
    return ids


def reader(server: Server, vectors: np.ndarray, soak: Soak, until: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    with server.client() as http:
        for _ in paced(READ_RPS, until, max_ops=int(READ_RPS * 200)):
            noise = rng.standard_normal(DIM).astype(np.float32) * 0.1
            search(http, vectors[rng.integers(len(vectors))] + noise, 10, soak)


def writer(server: Server, soak: Soak, until: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    written: list[tuple[str, np.ndarray]] = []
    with server.client() as http:
        for n in paced(WRITE_RPS, until, max_ops=int(WRITE_RPS * 200)):
            doc_id, v = f"w{n}", rng.standard_normal(DIM).astype(np.float32)
            if not upsert(http, doc_id, v, soak):
                continue
            written.append((doc_id, v))
            top = search(http, v, 1, soak)
            if top is not None:
                with soak.lock:
                    if top[:1] == [doc_id]:
                        soak.ryw_ok += 1
                    else:
                        soak.ryw_failed.append(f"{doc_id} -> {top[:1]}")
            if n % 5 == 4:
                delete(http, *written.pop(0), soak)


def upsert(http: httpx.Client, doc_id: str, v: np.ndarray, soak: Soak) -> bool:
    t0 = time.monotonic()
    body = {"documents": [{"id": doc_id, "vector": v.tolist()}]}
    try:
        r = http.put(f"/v1/collections/{COLLECTION}/documents", json=body)
    except httpx.HTTPError as e:
        soak.error(f"upsert: {type(e).__name__}")
        return False
    if r.status_code != 200:
        soak.error(f"upsert: {r.status_code} {r.text[:200]}")
        return False
    with soak.lock:
        soak.upsert_ms.append(1000 * (time.monotonic() - t0))
    return True


def delete(http: httpx.Client, doc_id: str, v: np.ndarray, soak: Soak) -> None:
    try:
        r = http.delete(f"/v1/collections/{COLLECTION}/documents/{doc_id}")
    except httpx.HTTPError as e:
        soak.error(f"delete: {type(e).__name__}")
        return
    if r.status_code != 200:
        soak.error(f"delete: {r.status_code} {r.text[:200]}")
        return
    with soak.lock:
        soak.deleted_at[doc_id] = time.monotonic()
    search(http, v, 1, soak)  # the id must not come back (checked inside)


def run_soak(make: Any, docs: int, seconds: float, p99_ms: float) -> None:
    rng = np.random.default_rng(11)
    server = make().start()
    with server.client(timeout=60) as http:
        vectors = preload(http, docs, rng)
        for v in vectors[:50]:  # warm up before the baseline RSS
            http.post(f"/v1/collections/{COLLECTION}/search", json={"vector": v.tolist()})
    rss0, soak = server.rss_kb(), Soak()
    until = time.monotonic() + seconds
    threads = [
        threading.Thread(target=reader, args=(server, vectors, soak, until, i))
        for i in range(READERS)
    ]
    threads.append(threading.Thread(target=writer, args=(server, soak, until, 99)))
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 60)
        assert not t.is_alive(), "a load thread did not stop"
    rss1 = server.rss_kb()
    report(soak, docs, seconds, rss0, rss1)
    assert not soak.errors, soak.errors[:10]
    assert not soak.ryw_failed, soak.ryw_failed[:10]
    assert soak.ryw_ok >= seconds * 5, "the writer did too little to mean anything"
    assert not soak.resurrected, soak.resurrected[:10]
    assert percentile(soak.search_ms, 99) <= p99_ms
    assert percentile(soak.upsert_ms, 99) <= p99_ms
    assert rss1 <= rss0 * (1 + RSS_GROWTH), (rss0, rss1)


def report(soak: Soak, docs: int, seconds: float, rss0: int, rss1: int) -> None:
    def stats(ms: list[float]) -> str:
        return (
            f"n={len(ms)} p50 {percentile(ms, 50):.1f} ms p99 {percentile(ms, 99):.1f} ms "
            f"max {max(ms, default=0):.1f} ms"
        )

    print(
        f"\nR11 soak {seconds:.0f} s, {docs} docs, {READERS} readers + 1 writer: search "
        f"{stats(soak.search_ms)} ({len(soak.search_ms) / seconds:.0f}/s); upsert "
        f"{stats(soak.upsert_ms)}; errors {len(soak.errors)}; read-your-writes {soak.ryw_ok}/"
        f"{soak.ryw_ok + len(soak.ryw_failed)}; deletes {len(soak.deleted_at)}, returned after "
        f"delete {len(soak.resurrected)}; RSS {rss0 / 1024:.0f} -> {rss1 / 1024:.0f} MiB "
        f"({100 * (rss1 - rss0) / rss0:+.1f}%); nproc {os.cpu_count()}, load average "
        f"{os.getloadavg()[0]:.1f}"
    )


def test_soak_four_readers_one_writer(http_server: Any) -> None:
    run_soak(http_server, docs=2000, seconds=20, p99_ms=500)


@pytest.mark.reliability_full
def test_soak_sixty_seconds_ten_thousand_documents(http_server: Any) -> None:
    run_soak(http_server, docs=10_000, seconds=60, p99_ms=150)
