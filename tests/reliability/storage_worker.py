"""A zygote for the storage crash tests: started once, it imports numpy, faiss and the engine,
then forks one child per job read from stdin. Each child opens the collection *after* the fork
(never an inherited SQLite connection), runs the job and reports what it does as lines on
stdout; the test SIGKILLs it at a random moment. Forking from this single-threaded process
rather than from pytest keeps the children free of locks held by other threads.

Protocol (one line each, written with a single os.write so lines never interleave):
    zygote: `F <pid>` after a fork, `X <pid> <status>` when that child is gone
    child:  `R` opened; `S <op> <kind> <id,id,...>` op started; `C <op>` its transaction
            committed; `A <op>` the call returned (acknowledged); `P` / `p` a snapshot publish
            started / finished

The deterministic document contents live here too (`vector_of`, `text_of`), so the test can
check every stored vector bit for bit.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np

DIM = 16

Emit = Callable[[str], None]


def vector_of(seed: int, op: int, doc_id: str) -> np.ndarray:
    rng = np.random.default_rng([seed, op, zlib.crc32(doc_id.encode())])
    return rng.normal(size=DIM).astype(np.float32)


def text_of(doc_id: str, op: int) -> str:
    return f"{doc_id}@{op}"


def ids_of(thread: int, n: int) -> list[str]:
    return [f"t{thread}-{i}" for i in range(n)]


def emitter(fd: int) -> Emit:
    def emit(line: str) -> None:
        os.write(fd, (line + "\n").encode())

    return emit


# ---- hooks: the commit and publish points, seen from inside the child ----------------------
def install_hooks(emit: Emit, current: threading.local) -> None:
    from indexer.store import Store

    upsert, delete, publish = Store.upsert, Store.delete, Store.write_snapshot

    def hooked_upsert(self: Store, docs: Any) -> int:
        seq = upsert(self, docs)
        emit(f"C {getattr(current, 'op', -1)}")
        return seq

    def hooked_delete(self: Store, ids: list[str]) -> Any:
        out = delete(self, ids)
        emit(f"C {getattr(current, 'op', -1)}")
        return out

    def hooked_publish(self: Store, *args: Any, **kwargs: Any) -> Any:
        emit("P")
        out = publish(self, *args, **kwargs)
        emit("p")
        return out

    Store.upsert = hooked_upsert  # type: ignore[method-assign]
    Store.delete = hooked_delete  # type: ignore[method-assign]
    Store.write_snapshot = hooked_publish  # type: ignore[method-assign]


# ---- jobs -----------------------------------------------------------------------------------
def crash_job(job: dict[str, Any], emit: Emit) -> None:
    """Writer threads, each owning its ids, upsert and delete batches until killed."""
    from indexer import DocumentIn, Engine, Settings

    current = threading.local()
    install_hooks(emit, current)
    engine = Engine(Settings(data_dir=job["data_dir"], embedder=f"hash-{DIM}"))
    col = engine.collection(job["name"])
    emit("R")
    deadline = time.monotonic() + job["max_s"]

    def writer(t: int) -> None:
        rng = np.random.default_rng([job["seed"], t])
        ids = ids_of(t, job["ids_per_thread"])
        present = {i for i in ids if i in col.label_by_id}
        for n in range(job["max_ops"]):
            if time.monotonic() > deadline:
                return
            op = job["round"] * 100_000 + t * 10_000 + n
            current.op = op
            k = int(rng.integers(1, job["max_batch"] + 1))
            if present and rng.random() < job["delete_share"]:
                batch = sorted(rng.choice(sorted(present), min(k, len(present)), replace=False))
                emit(f"S {op} delete {','.join(batch)}")
                col.delete(ids=list(batch))
                present.difference_update(batch)
            else:
                batch = sorted(rng.choice(ids, k, replace=False))
                docs = [
                    DocumentIn(
                        id=d,
                        vector=vector_of(job["seed"], op, d),
                        text=text_of(d, op),
                        metadata={"op": op},
                    )
                    for d in batch
                ]
                emit(f"S {op} upsert {','.join(batch)}")
                col.upsert(docs)
                present.update(batch)
            emit(f"A {op}")

    def guarded(t: int) -> None:
        try:
            writer(t)
        except BaseException as e:  # an engine error in a writer fails the round loudly
            emit(f"E writer {t}: {type(e).__name__}: {e}".replace("\n", " "))

    threads = [threading.Thread(target=guarded, args=(t,)) for t in range(job["threads"])]
    for th in threads:
        th.start()
    for th in threads:
        th.join()


def publish_job(job: dict[str, Any], emit: Emit) -> None:
    """Publish the ANN snapshot again and again until killed: every third time after changing
    a document (a new seq: a new file next to the old one), else over the same file."""
    from indexer import DocumentIn, Engine, Settings

    install_hooks(emit, threading.local())
    engine = Engine(Settings(data_dir=job["data_dir"], embedder=f"hash-{DIM}"))
    col = engine.collection(job["name"])
    emit("R")
    deadline = time.monotonic() + job["max_s"]
    for n in range(job["max_ops"]):
        if time.monotonic() > deadline:
            return
        op = job["round"] * 100_000 + n
        if n % 3 == 0:
            doc = DocumentIn(id="moving", vector=vector_of(job["seed"], op, "moving"))
            col.upsert([doc])
        col.snapshot(force=True)


def lifecycle_job(job: dict[str, Any], emit: Emit) -> None:
    """Create, fill and drop collections in a loop until killed (`S`/`A` around each step)."""
    from indexer import DocumentIn, Engine, Settings

    engine = Engine(Settings(data_dir=job["data_dir"], embedder=f"hash-{DIM}"))
    emit("R")
    deadline = time.monotonic() + job["max_s"]
    for n in range(job["max_ops"]):
        if time.monotonic() > deadline:
            return
        name = f"life{n % 3}"
        op = job["round"] * 100_000 + n
        emit(f"S {op} create {name}")
        col = engine.create_collection(name, dim=DIM, exist_ok=True)
        col.upsert([DocumentIn(id="x", vector=vector_of(job["seed"], op, "x"))])
        emit(f"A {op}")
        emit(f"S {op + 50_000} drop {name}")
        engine.drop_collection(name)
        emit(f"A {op + 50_000}")


JOBS = {"crash": crash_job, "publish": publish_job, "lifecycle": lifecycle_job}


# ---- the zygote -----------------------------------------------------------------------------
def serve() -> None:
    """Jobs from stdin, one forked child each. `K` on stdin kills the current child: the zygote
    does it because only it knows the child has not been reaped yet (no pid reuse race)."""
    import select

    import faiss  # noqa: F401  (imported before any fork, as the engine will use it)

    import indexer  # noqa: F401

    # numpy initialises its seeding machinery lazily (~15 ms): do it once here, not per child
    np.random.default_rng(0).choice(ids_of(0, 3), 2, replace=False)
    vector_of(0, 0, "warm-up")
    emit = emitter(sys.stdout.fileno())
    pending = b""
    while True:
        while b"\n" not in pending:
            chunk = os.read(0, 65536)
            if not chunk:
                return
            pending += chunk
        line, pending = pending.split(b"\n", 1)
        if line.strip() == b"K":  # a kill that arrived after its child had ended
            continue
        job = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _child(job, emit)
        emit(f"F {pid}")
        if b"K\n" in pending:  # the kill came with the job, before the fork
            os.kill(pid, 9)
            pending = pending.replace(b"K\n", b"")
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if select.select([0], [], [], 0.001)[0]:
                chunk = os.read(0, 65536)
                if b"K" in chunk:
                    os.kill(pid, 9)
                pending += chunk.replace(b"K\n", b"")
        emit(f"X {pid} {status}")


def _child(job: dict[str, Any], emit: Emit) -> None:
    status = 0
    try:
        JOBS[job["kind"]](job, emit)
    except BaseException as e:  # reported, then the child exits: never back in the loop
        emit(f"E {type(e).__name__}: {e}".replace("\n", " "))
        status = 1
    finally:
        os._exit(status)


if __name__ == "__main__":
    serve()
