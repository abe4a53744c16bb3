"""service/batching.py: concurrent texts share forward passes and get their own vectors."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from indexer.embed import HashEmbedder
from service import batching


class SlowEmbedder(HashEmbedder):
    """The hash embedder, taking a while per call and recording each batch."""

    def __init__(self) -> None:
        super().__init__(64)
        self.batches: list[int] = []

    def embed(self, texts: list[str]) -> np.ndarray:
        self.batches.append(len(texts))
        time.sleep(0.02)
        if "boom" in texts:
            raise RuntimeError("model failed")
        return super().embed(texts)


def test_concurrent_texts_are_batched_and_each_gets_its_own_vector() -> None:
    emb = SlowEmbedder()
    b = batching.Batcher(emb)
    texts = [f"text number {i}" for i in range(24)]
    with ThreadPoolExecutor(8) as pool:
        vectors = list(pool.map(b.embed, texts))
    for text, v in zip(texts, vectors, strict=True):
        assert np.allclose(v, HashEmbedder(64).embed([text])[0])
    assert sum(emb.batches) == 24 and len(emb.batches) < 24  # some passes were shared
    assert max(emb.batches) <= batching.MAX_BATCH


def test_a_lone_text_is_embedded_at_once_and_errors_reach_every_waiter() -> None:
    emb = SlowEmbedder()
    b = batching.batcher_for(emb)
    assert batching.batcher_for(emb) is b
    b.embed("alone")
    assert emb.batches == [1]
    with pytest.raises(RuntimeError, match="model failed"):
        b.embed("boom")
    assert b.embed("after").shape == (64,)  # the batcher lives on


def test_the_thread_ends_when_idle_and_restarts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(batching, "IDLE_S", 0.05)
    b = batching.Batcher(SlowEmbedder())
    b.embed("one")
    first = b.thread
    assert first is not None
    first.join(5)
    assert not first.is_alive()
    assert b.embed("two").shape == (64,)
    assert b.thread is not first


def test_a_lane_runs_calls_in_turn_on_one_thread_and_hands_back_errors() -> None:
    import asyncio
    import threading

    lane = batching.lane_for("test-lane")
    assert batching.lane_for("test-lane") is lane
    seen: list[tuple[int, str]] = []

    def work(i: int) -> int:
        seen.append((i, threading.current_thread().name))
        if i == 3:
            raise KeyError("three")
        return i * i

    async def main() -> list[object]:
        return await asyncio.gather(*(lane.run(work, i) for i in range(6)), return_exceptions=True)

    out = asyncio.run(main())
    assert out[:3] == [0, 1, 4] and out[4:] == [16, 25]
    assert isinstance(out[3], KeyError)
    assert [i for i, _ in seen] == list(range(6))  # in turn, in order
    assert {name for _, name in seen} == {"vp-lane-test-lane"}


def test_a_collection_gets_several_lanes_where_there_are_cores(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(batching, "LANES", 3)
    lanes = {id(batching.lane_for("many-lanes")) for _ in range(6)}
    assert len(lanes) == 3  # searches of one collection can run in parallel on a bigger machine
