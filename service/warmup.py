"""Start-up work that must not hold up `/livez`: open every collection, build the default
`words` collection if it is missing or incomplete (resumable), then load the embedding model, in a
thread.

Ready (`/readyz` 200) comes before the model: collections open with the model's name and dim
(read from its files), vector queries need nothing more, and loading torch and
sentence-transformers takes 5-10 s. A text request that arrives before the model is loaded waits
for it; a model that then fails to load turns `/readyz` back to 503."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

from indexer import Engine, Settings, VPError
from indexer.words import WORDS, build_words

log = logging.getLogger("vector_primer.service")
LOAD_AFTER_READY_S = 1.0


class Stopped(Exception):
    """Raised inside the build when the service shuts down; the build resumes next start."""


@contextlib.contextmanager
def _exclusive(path: Path, stop: threading.Event) -> Iterator[None]:
    """An advisory lock between processes (flock), released when the file is closed; waiting
    for it ends with Stopped when the service shuts down. Where the file cannot be made (a
    read-only data directory) there is nothing to build either: the build goes on unlocked and
    reports its own error."""
    try:
        f = path.open("a")
    except OSError:
        yield
        return
    with f:
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:  # another process builds: wait, unless told to stop
                if stop.wait(0.2):
                    raise Stopped from None
        yield


class Warmup:
    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings
        self.ready = threading.Event()
        self.stop = threading.Event()
        self.failed: str | None = None
        self.progress = "waiting to start"
        self.problems: dict[str, str] = {}  # collection -> why it could not be opened
        self.words = "not built (VP_BUILD_WORDS is false)"
        self.thread = threading.Thread(target=self._run, name="vp-warmup", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def close(self, timeout: float = 10.0) -> None:
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join(timeout)

    def _run(self) -> None:
        try:
            embedder = self.engine.embedder()  # a name that is no model fails here, up front
            self._open_collections()
            if self.settings.build_words:
                self._build_words()
            self.ready.set()
            log.info("ready: %d collection(s)", len(self.collection_names()))
            load = getattr(embedder, "load", None)  # a lazy one: load it before it is needed
            if load is not None:
                # a second after ready: the first requests after a restart (probes, vector
                # queries) are not held up behind torch's import, which holds the GIL in long
                # stretches (0.2 s on a first search, measured); a text request that comes
                # sooner loads the model itself, at once
                self.progress = f"ready; loading embedder {self.settings.embedder!r} soon"
                if self.stop.wait(LOAD_AFTER_READY_S):
                    raise Stopped
                self.progress = f"ready; loading embedder {self.settings.embedder!r}"
                load()
                log.info("embedder %r loaded", self.settings.embedder)
        except Stopped:
            log.info("start-up interrupted by shutdown (the words build resumes next start)")
        except Exception as e:
            self.failed = f"{type(e).__name__}: {e}"
            log.exception("start-up failed")

    def collection_names(self) -> list[str]:
        """What is on disk now (cheap: no collection is opened)."""
        root = self.engine.data_dir
        return sorted(
            p.name
            for p in root.iterdir()
            if not p.name.startswith(".") and (p / "manifest.json").exists()
        )

    def _open_collections(self) -> None:
        """Open (load, replay) each collection now rather than on its first request. One that
        fails is reported by /readyz and in the log; the others are served."""
        for name in self.collection_names():
            if self.stop.is_set():
                raise Stopped
            self.progress = f"opening collection {name!r}"
            try:
                self.engine.collection(name)
            except VPError as e:
                self.problems[name] = e.detail
                log.error("collection %r cannot be opened: %s", name, e.detail)

    def _build_words(self) -> None:
        vocabulary = self.engine.embedder().vocabulary()
        if not vocabulary:
            self.words = f"not built: embedder {self.settings.embedder!r} has no vocabulary"
            return
        done = 0

        def progress(n: int) -> None:
            nonlocal done
            done += n
            self.progress = f"building the {WORDS!r} collection: {done}/{len(vocabulary)} words"
            if done % 5120 < n or done == len(vocabulary):
                log.info(self.progress)
            if self.stop.is_set():
                raise Stopped

        try:
            # one process builds at a time (`serve --workers N`: the others wait, then find the
            # words done and skip them), so no word is embedded twice
            with _exclusive(self.engine.data_dir / ".words.lock", self.stop):
                col = build_words(self.engine, words=vocabulary, progress=progress)
        except VPError as e:  # e.g. a `words` collection made with another embedder
            self.words = f"not built: {e.detail}"
            log.warning("the %r collection was not built: %s", WORDS, e.detail)
            return
        self.words = f"ready ({col.count()} words)"
