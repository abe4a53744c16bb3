"""R13: disk full, read-only storage and I/O errors. Writes fail with a clear error (507
`storage_full`, 503 `read_only` / `storage_error`), nothing acknowledged is lost, reads go on,
and writes resume when space returns. After an I/O error on SQLite's write path the collection
is read-only until restart: a failed fsync may have dropped the dirty pages, so a retry that
"succeeds" could acknowledge data that is not on disk (fsyncgate).

Real faults where the machine allows: a 2 MB tmpfs (needs root and `mount`; chmod does not stop
root) for ENOSPC and a read-only remount. EIO comes from an LD_PRELOAD library
(tests/fixtures/faultinject.c, built with cc) that fails the N-th write or fsync of SQLite's
WAL, once or from then on, swept over every N an upsert performs. Our own files (snapshots,
backups) get faults by patching os.fsync.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from indexer import DocumentIn, Engine, Query, Settings
from indexer.errors import ReadOnlyStorage, StorageError, StorageFull
from indexer.snapshot import list_snapshots, read_snapshot
from service.app import create_app

from .storage_support import ROOT, SEED, index_problems, report, stored_docs

DIM = 64


def _settings(data: Path) -> Settings:
    return Settings(data_dir=data, embedder=f"hash-{DIM}", build_words=False)


def _docs(rng: np.random.Generator, prefix: str, n: int) -> list[DocumentIn]:
    return [
        DocumentIn(id=f"{prefix}{i}", vector=rng.normal(size=DIM), text=f"{prefix} {i} " * 20)
        for i in range(n)
    ]


# ---- a real small filesystem ----------------------------------------------------------------
@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB tmpfs, unmounted at the end; skipped where mounting is not allowed."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("needs root and mount for a tmpfs (the EIO tests below run anywhere)")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)])
    if done.returncode != 0:
        pytest.skip("mount -t tmpfs is not permitted here")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(path: Path, leave: int) -> Path:
    """A ballast file taking all free space but `leave` bytes."""
    st = os.statvfs(path)
    ballast = path / "ballast"
    with open(ballast, "wb") as f:
        f.write(b"\0" * max(0, st.f_bavail * st.f_frsize - leave))
    return ballast


def test_disk_full_fails_writes_cleanly_keeps_reads_and_resumes(tmpfs: Path) -> None:
    rng = np.random.default_rng(SEED)
    engine = Engine(_settings(tmpfs / "data"))
    col = engine.create_collection("c", dim=DIM, index="hnsw", params={"ann_threshold": 50})
    col.upsert(_docs(rng, "base", 60))
    acked = {d.id for d in stored_docs(col).values()}
    ballast = _fill(tmpfs, leave=96 * 1024)
    failures: list[StorageError] = []
    for batch in range(200):  # bounded: the disk fills long before
        docs = _docs(rng, f"b{batch}-", 10)
        try:
            col.upsert(docs)
            acked |= {d.id for d in docs}
        except StorageError as e:
            failures.append(e)
            if len(failures) >= 3:
                break
    assert failures and all(isinstance(e, StorageFull) for e in failures), failures
    assert failures[0].status == 507 and "storage full" in failures[0].detail
    with pytest.raises(StorageFull):  # a snapshot cannot be published either ...
        col.snapshot(force=True)
    assert all(read_snapshot(f) for f in list_snapshots(col.path))  # ... and the old one stands
    assert not list(col.path.rglob(".*tmp-*")), "temp file left by the failed publish"
    docs_now = stored_docs(col)  # reads go on, nothing acknowledged is missing
    assert set(docs_now) == acked and not index_problems(col, docs_now)
    hit = col.search(Query(vector=docs_now["base7"].vector, k=1))[0]
    assert hit.id == "base7"
    ballast.unlink()  # space returns: writes resume without a restart
    col.upsert(_docs(rng, "after", 5))
    engine.close()
    col = Engine(_settings(tmpfs / "data")).collection("c")
    assert set(stored_docs(col)) == acked | {f"after{i}" for i in range(5)}
    report("storage-disk-full", {"acked_docs": len(acked), "failed_batches": len(failures)})


def test_http_disk_full_is_507_and_reads_are_200(tmpfs: Path) -> None:
    with TestClient(create_app(_settings(tmpfs / "data"))) as client:
        assert client.post("/v1/collections", json={"name": "c", "dim": DIM}).status_code == 201
        vec = [0.5] * DIM
        put = {"documents": [{"id": "a", "vector": vec, "text": "kept"}]}
        assert client.put("/v1/collections/c/documents", json=put).status_code == 200
        ballast = _fill(tmpfs, leave=16 * 1024)
        statuses = []
        for i in range(50):
            docs = [{"id": f"x{i}-{j}", "vector": vec, "text": "y" * 2000} for j in range(20)]
            r = client.put("/v1/collections/c/documents", json={"documents": docs})
            statuses.append(r.status_code)
            if r.status_code != 200:
                break
        assert r.status_code == 507 and r.json()["error"] == "storage_full", r.text
        search = client.post("/v1/collections/c/search", json={"vector": vec, "k": 1})
        assert search.status_code == 200 and search.json()["hits"][0]["id"] == "a"
        ballast.unlink()
        assert client.put("/v1/collections/c/documents", json=put).status_code == 200


def test_read_only_storage_refuses_writes_and_serves_reads(tmpfs: Path) -> None:
    rng = np.random.default_rng(SEED)
    data = tmpfs / "data"
    engine = Engine(_settings(data))
    engine.create_collection("c", dim=DIM).upsert(_docs(rng, "d", 20))
    engine.close()
    subprocess.run(["mount", "-o", "remount,ro", str(tmpfs)], check=True)
    col = Engine(_settings(data)).collection("c")  # started on a read-only disk
    assert col.read_only is not None and col.count() == 20
    with pytest.raises(ReadOnlyStorage) as err:
        col.upsert(_docs(rng, "e", 1))
    assert err.value.status == 503 and "read-only" in err.value.detail
    assert col.search(Query(vector=col.get("d3").vector, k=1))[0].id == "d3"
    with TestClient(create_app(_settings(data))) as client:
        r = client.put(
            "/v1/collections/c/documents", json={"documents": [{"id": "z", "text": "z"}]}
        )
        assert r.status_code == 503 and r.json()["error"] == "read_only", r.text
        assert client.get("/v1/collections/c/documents/d3").status_code == 200


# ---- EIO on SQLite's write path, injected ---------------------------------------------------
SWEEP = """
import ctypes, json, sys
import numpy as np
from indexer import DocumentIn, Engine, Query, Settings
from indexer.errors import VPError
lib = ctypes.CDLL(sys.argv[2])
lib.fault_arm.argtypes = [ctypes.c_long, ctypes.c_int]
engine = Engine(Settings(data_dir=sys.argv[1], embedder="hash-8"))
col = engine.create_collection("c", dim=8)
rng = np.random.default_rng(0)
col.upsert([DocumentIn(id=f"b{i}", vector=rng.normal(size=8)) for i in range(20)])
state = lambda c: {d.id: d.vector.tobytes().hex() for d in c.store.page(10**6, None)}
for persistent in (0, 1):
    for n in range(1, 60):
        pre = state(col)
        docs = [DocumentIn(id=f"n{persistent}-{n}-{i}", vector=rng.normal(size=8))
                for i in range(3)]
        docs.append(DocumentIn(id="b1", vector=rng.normal(size=8)))  # and a replacement
        lib.fault_arm(n, persistent)
        try:
            col.upsert(docs)
            out = "acked"
        except VPError as e:
            out = f"{type(e).__name__} {e.status}"
        lib.fault_disarm()
        hits = lib.fault_hits()
        reads = state(col) == pre and col.search(Query(vector=np.ones(8), k=3)) != []
        try:
            col.upsert([DocumentIn(id="probe", vector=np.ones(8))])
            col.delete(ids=["probe"])
            then = "acked"
        except VPError as e:
            then = f"{type(e).__name__} {e.status}"
        col.close()
        engine._forget("c")  # a restart, as far as this collection is concerned
        col = engine.collection("c")
        now = state(col)
        post = {**pre, **{d.id: d.vector.astype("float32").tobytes().hex() for d in docs}}
        after = "pre" if now == pre else "post" if now == post else "other"
        col.upsert([DocumentIn(id="probe", vector=np.ones(8))])  # writable after the restart
        col.delete(ids=["probe"])
        print(json.dumps({"persistent": persistent, "n": n, "hits": hits, "out": out,
                          "reads_pre_state": reads, "next_write": then, "restart": after}))
        if hits == 0:
            break
"""


@pytest.fixture(scope="module")
def faultinject(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler for the fault-injection library")
    out = tmp_path_factory.mktemp("fault") / "faultinject.so"
    src = ROOT / "tests" / "fixtures" / "faultinject.c"
    subprocess.run([cc, "-shared", "-fPIC", "-O2", "-o", str(out), str(src), "-ldl"], check=True)
    return out


def test_eio_at_every_wal_write_and_fsync_fails_the_write_and_goes_read_only(
    tmp_path: Path, faultinject: Path
) -> None:
    env = {**os.environ, "LD_PRELOAD": str(faultinject)}
    run = subprocess.run(
        [sys.executable, "-c", SWEEP, str(tmp_path / "data"), str(faultinject)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=ROOT,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    cases = [json.loads(line) for line in run.stdout.splitlines()]
    failed = [c for c in cases if c["hits"]]
    for c in failed:  # the fault hit: refused, nothing changed, read-only until restart
        where = f"EIO at WAL call {c['n']} ({'persistent' if c['persistent'] else 'once'})"
        assert c["out"] == "StorageError 503", f"{where}: {c}"
        assert c["reads_pre_state"], f"{where}: reads changed or failed"
        assert c["next_write"] == "ReadOnlyStorage 503", f"{where}: a write succeeded after"
        assert c["restart"] in ("pre", "post"), f"{where}: half applied after restart"
    clean = [c for c in cases if not c["hits"]]
    assert len(clean) == 2 and all(c["out"] == "acked" for c in clean)  # N past the last call
    calls = {p: max(c["n"] for c in failed if c["persistent"] == p) for p in (0, 1)}
    report(
        "storage-eio-sweep",
        {
            "cases": len(failed),
            "wal_calls_per_upsert": calls,
            "restart": {k: sum(c["restart"] == k for c in failed) for k in ("pre", "post")},
        },
    )


def test_fsync_failure_of_a_snapshot_keeps_the_old_one_and_the_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(SEED)
    engine = Engine(_settings(tmp_path / "data"))
    col = engine.create_collection("c", dim=DIM, index="hnsw", params={"ann_threshold": 20})
    col.upsert(_docs(rng, "d", 40))
    before = [f.name for f in list_snapshots(col.path)]
    real = os.fsync

    def failing(fd: int) -> None:
        if ".ann-" in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.EIO, "Input/output error")
        real(fd)

    monkeypatch.setattr(os, "fsync", failing)
    col.upsert(_docs(rng, "e", 5))
    with pytest.raises(StorageError) as err:
        col.snapshot(force=True)
    assert err.value.status == 503 and "publishing a snapshot" in err.value.detail
    assert [f.name for f in list_snapshots(col.path)] == before
    assert not list(col.path.rglob(".*tmp-*"))
    col.upsert(_docs(rng, "f", 5))  # a snapshot is a cache: the collection stays writable
    monkeypatch.setattr(os, "fsync", real)
    engine.close()
    col = Engine(_settings(tmp_path / "data")).collection("c")
    assert col.count() == 50 and not index_problems(col, stored_docs(col))
