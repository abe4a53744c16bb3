"""Searches run while upserts land: no search ever sees half of an upsert batch."""

from __future__ import annotations

import threading

from .conftest import RecordingClient

BATCH = 8


def test_searches_never_see_half_a_batch(client: RecordingClient) -> None:
    client.post("/v1/collections", json={"name": "c", "dim": 2, "metric": "l2"})
    stop = threading.Event()
    counts: list[int] = []
    errors: list[str] = []

    def search() -> None:
        while not stop.is_set():
            r = client.post("/v1/collections/c/search", json={"vector": [0.0, 0.0], "k": 1000})
            if r.status_code != 200:
                errors.append(r.text)
            counts.append(len(r.json()["hits"]))

    readers = [threading.Thread(target=search) for _ in range(3)]
    for t in readers:
        t.start()
    try:
        for b in range(15):
            docs = [{"id": f"{b}-{i}", "vector": [float(b), float(i)]} for i in range(BATCH)]
            r = client.put("/v1/collections/c/documents", json={"documents": docs})
            assert r.status_code == 200, r.text
    finally:
        stop.set()
        for t in readers:
            t.join()
    assert not errors
    assert counts and all(n % BATCH == 0 for n in counts), sorted(set(counts))
    assert client.get("/v1/collections/c").json()["count"] == 15 * BATCH
