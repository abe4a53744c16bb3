"""Worker threads that take engine work in turn: the embedding micro-batcher and search lanes.

Dynamic micro-batching: texts that arrive while the model is busy are embedded together.

One forward pass over 8 short texts costs far less than 8 passes of one (the per-call work of
the tokenizer and torch is paid once, and the matrix products are wider), so under concurrent
load a text query waits at most one batch and shares the next. A lone request is embedded at
once: there is no timer, so batching never adds latency when there is nothing to batch with.

    batcher = batcher_for(embedder)
    vector = batcher.embed("a cat on a mat")   # blocks the calling (worker) thread

Search lanes: one thread per collection runs its searches one after another, awaited from the
event loop. On two cores, handing each search to whichever of the thread pool's threads is free
made them fight the event loop for the GIL at every release (SQLite, FAISS, stat): at 8
connections a lane gave 1.5x the QPS, p99 15 ms instead of 32-255 ms and 1.5 instead of 2.5 ms
of CPU per query. A lane blocks only its own collection (where a writer blocks readers anyway).

    hits = await lane_for("articles").run(search, query)
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

MAX_BATCH = 32  # texts per forward pass; past this the pass is long enough on its own
IDLE_S = (
    30.0  # an idle batcher's thread ends (apps come and go in tests); the next call restarts it
)

_batchers: dict[int, Batcher] = {}
_lock = threading.Lock()


class Batcher:
    """Feeds one embedder from a queue with a single thread, taking everything that queued up
    meanwhile (up to `max_batch`) as the next batch."""

    def __init__(self, embedder: Any, max_batch: int = MAX_BATCH) -> None:
        self.embedder = embedder
        self.max_batch = max_batch
        self.batches = 0  # forward passes made
        self.texts = 0  # texts embedded
        self._queue: queue.SimpleQueue[tuple[str, Future[NDArray[np.float32]]]] = (
            queue.SimpleQueue()
        )
        self._lock = threading.Lock()
        self._running = False
        self.thread: threading.Thread | None = None

    def embed(self, text: str) -> NDArray[np.float32]:
        """The text's vector, computed in a batch with whatever else is waiting."""
        return self.submit(text).result()

    def submit(self, text: str) -> Future[NDArray[np.float32]]:
        """The text's vector, to come (`asyncio.wrap_future` awaits it without a thread)."""
        future: Future[NDArray[np.float32]] = Future()
        with self._lock:
            self._queue.put((text, future))
            if not self._running:
                self._running = True
                self.thread = threading.Thread(
                    target=self._run, name="vp-embed-batcher", daemon=True
                )
                self.thread.start()
        return future

    def _next(self) -> tuple[str, Future[NDArray[np.float32]]] | None:
        """The next waiting text, or None once idle for IDLE_S (the thread then ends)."""
        while True:
            try:
                return self._queue.get(timeout=IDLE_S)
            except queue.Empty:
                with self._lock:  # nothing can be queued meanwhile: embed() takes this lock
                    if self._queue.empty():
                        self._running = False
                        return None

    def _run(self) -> None:
        while (first := self._next()) is not None:
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                vectors = self.embedder.embed([text for text, _ in batch])
            except BaseException as e:  # every waiter gets the error, as if it had called
                for _, future in batch:
                    future.set_exception(e)
                continue
            self.batches += 1
            self.texts += len(batch)
            for (_, future), v in zip(batch, vectors, strict=True):
                future.set_result(v)


def batcher_for(embedder: Any) -> Batcher:
    """The one batcher of this embedder instance (made on first use)."""
    with _lock:
        b = _batchers.get(id(embedder))
        if b is None or b.embedder is not embedder:
            b = _batchers[id(embedder)] = Batcher(embedder)
        return b


T = TypeVar("T")
_Call = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", Callable[..., Any], tuple[Any, ...]]
_lanes: dict[str, Lane] = {}


class Lane:
    """One thread that runs the calls given to it in turn; `run` is awaited on the event loop.
    The thread lives as long as the process: the store keeps one SQLite connection per thread
    (indexer/store.py), so a thread that came and went would leave a connection behind."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._queue: queue.SimpleQueue[_Call] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._running = False
        self.thread: threading.Thread | None = None

    def run(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        with self._lock:
            self._queue.put((loop, future, fn, args))
            if not self._running:
                self._running = True
                self.thread = threading.Thread(
                    target=self._run, name=f"vp-lane-{self.name}", daemon=True
                )
                self.thread.start()
        return future

    def _run(self) -> None:
        while True:
            loop, future, fn, args = self._queue.get()
            if future.cancelled():  # the client went away while it waited
                continue
            try:
                result, error = fn(*args), None
            except BaseException as e:  # handed to the awaiting request, as if raised there
                result, error = None, e
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
                loop.call_soon_threadsafe(_settle, future, result, error)


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


# Lanes per collection: one on 2 cores (measured above), and on bigger machines one per two
# cores, so searches of one collection still run in parallel where there are cores for them.
LANES = max(1, (os.cpu_count() or 2) // 2)
_turn = itertools.count()


def lane_for(name: str) -> Lane:
    """A lane of collection `name` (made on first use), taken in turn among its LANES."""
    key = name if LANES == 1 else f"{name}#{next(_turn) % LANES}"
    with _lock:
        lane = _lanes.get(key)
        if lane is None:
            lane = _lanes[key] = Lane(key)
        return lane
