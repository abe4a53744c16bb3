"""Dynamic micro-batching: texts that arrive while the model is busy are embedded together.

One forward pass over 8 short texts costs far less than 8 passes of one (the per-call work of
the tokenizer and torch is paid once, and the matrix products are wider), so under concurrent
load a text query waits at most one batch and shares the next. A lone request is embedded at
once: there is no timer, so batching never adds latency when there is nothing to batch with.

    batcher = batcher_for(embedder)
    vector = batcher.embed("a cat on a mat")   # blocks the calling (worker) thread
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future
from typing import Any

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
        future: Future[NDArray[np.float32]] = Future()
        with self._lock:
            self._queue.put((text, future))
            if not self._running:
                self._running = True
                self.thread = threading.Thread(
                    target=self._run, name="vp-embed-batcher", daemon=True
                )
                self.thread.start()
        return future.result()

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
