"""R5: write ordering audited, the stand-in for pulling the plug (ALICE-style).

Two views. In-process, recorders around os.fsync / os.replace / os.rename and SQLite's COMMIT
show that every acknowledged write committed on a connection in WAL mode with
synchronous=FULL before the call returned, and that every file we publish goes write -> fsync
-> rename -> directory fsync (snapshots, the manifest of a new collection, backups). From
outside, strace sees SQLite's own syscalls: for 100% of acknowledged writes, the WAL bytes
written before the acknowledgement were fsynced before it. A control run with
synchronous=NORMAL shows the strace audit does catch acknowledgements that nothing fsynced.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from indexer import DocumentIn

from .storage_support import SEED, engine_at, report

Event = tuple[Any, ...]


class RecordingConnection(sqlite3.Connection):
    events: ClassVar[list[Event]] = []

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:  # type: ignore[override]
        cur = super().execute(sql, *args)
        if sql == "COMMIT":
            sync = super().execute("PRAGMA synchronous").fetchone()[0]
            mode = super().execute("PRAGMA journal_mode").fetchone()[0]
            self.events.append(("commit", sync, mode))
        return cur


@pytest.fixture
def events(monkeypatch: pytest.MonkeyPatch) -> list[Event]:
    log: list[Event] = []
    RecordingConnection.events = log
    real_fsync, real_replace, real_rename = os.fsync, os.replace, os.rename
    real_connect = sqlite3.connect

    def fsync(fd: int) -> None:
        log.append(("fsync", os.readlink(f"/proc/self/fd/{fd}"), os.fstat(fd).st_size))
        real_fsync(fd)

    def replace(src: Any, dst: Any) -> None:
        log.append(("replace", str(src), str(dst)))
        real_replace(src, dst)

    def rename(src: Any, dst: Any) -> None:
        log.append(("rename", str(src), str(dst)))
        real_rename(src, dst)

    def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        return real_connect(*args, factory=RecordingConnection, **kwargs)  # type: ignore[misc]

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(os, "rename", rename)
    monkeypatch.setattr(sqlite3, "connect", connect)
    return log


def index_of(log: list[Event], match: Any, after: int = 0) -> int:
    for i in range(after, len(log)):
        if match(log[i]):
            return i
    raise AssertionError(f"no matching event after #{after}")


def check_published(log: list[Event], final: str, size: int | None = None) -> None:
    """The file (of `size` bytes) or folder renamed to `final` was fsynced before the rename,
    whole, and its directory after it."""
    moved = index_of(log, lambda e: e[0] in ("replace", "rename") and e[2] == final)
    src = log[moved][1]
    synced = [e for e in log[:moved] if e[:2] == ("fsync", src)]
    assert synced, f"{final}: not fsynced before its rename"
    if size is not None:
        assert synced[-1][2] == size, f"{final}: fsynced at {synced[-1][2]} of {size} bytes"
    parent = str(Path(final).parent)
    index_of(log, lambda e: e[:2] == ("fsync", parent), after=moved + 1)


def test_every_ack_follows_a_durable_commit_and_files_are_published_in_order(
    tmp_path: Path, events: list[Event]
) -> None:
    data = tmp_path / "data"
    engine = engine_at(data)
    col = engine.create_collection("c", dim=8, index="hnsw", params={"ann_threshold": 20})
    manifest = next(e[2] for e in events if e[0] == "replace" and e[2].endswith("manifest.json"))
    check_published(events, manifest, (data / "c" / "manifest.json").stat().st_size)
    check_published(events, str(data / "c"))  # the folder holding manifest and store
    rng = np.random.default_rng(SEED)
    acks, covered, start = 0, 0, len(events)
    for i in range(60):
        if i % 5 == 4:
            col.delete(ids=[f"d{i - 1}"])
        else:
            col.upsert([DocumentIn(id=f"d{i}", vector=rng.normal(size=8))])
        since = events[start:]
        acks += 1
        covered += any(e == ("commit", 2, "wal") for e in since)  # 2 = FULL
        start = len(events)
    assert covered == acks, f"{acks - covered} of {acks} acks without a FULL commit before"
    snap = col.snapshot(force=True)
    assert snap is not None
    check_published(events, str(snap), snap.stat().st_size)
    info = engine.backup("c")
    check_published(events, str(engine.backups_dir / info["name"]))
    moved = index_of(events, lambda e: e[0] == "rename" and e[2].endswith(info["name"]))
    for name in ("store.sqlite", "manifest.json", "backup.json"):
        synced = [e for e in events[:moved] if e[0] == "fsync" and f"/{name}" in e[1]]
        synced += [e for e in events[:moved] if e[0] == "fsync" and f"/.{name}.tmp-" in e[1]]
        assert synced, f"backup's {name} not fsynced before the backup was published"
    engine.close()
    report("storage-fsync-inprocess", {"acks": acks, "acks_after_full_commit": covered})


# ---- SQLite's own syscalls, seen by strace --------------------------------------------------
WRITER = """
import os, sqlite3, sys
import numpy as np
from indexer import DocumentIn, Engine, Settings
if os.environ.get("AUDIT_CONTROL") == "1":  # the control: commits that do not fsync
    class Lax(sqlite3.Connection):
        def execute(self, sql, *args):
            return super().execute(sql.replace("synchronous=FULL", "synchronous=NORMAL"), *args)
    real = sqlite3.connect
    sqlite3.connect = lambda *a, **k: real(*a, factory=Lax, **k)
col = Engine(Settings(data_dir=sys.argv[1], embedder="hash-8")).create_collection("c", dim=8)
rng = np.random.default_rng(0)
for i in range(int(sys.argv[2])):
    if i % 4 == 3:
        col.delete(ids=[f"d{i - 1}"])
    else:
        col.upsert([DocumentIn(id=f"d{i}", vector=rng.normal(size=8))])
    os.write(1, f"ACK {i}\\n".encode())
"""
SYSCALL = re.compile(r"^(?:\d+\s+)?(\w+)\((\d+)<([^>]*)>")


def strace_audit(tmp: Path, n: int, control: bool) -> dict[str, int]:
    """Run WRITER under strace; per ACK, were all WAL writes before it fsynced before it?"""
    log = tmp / f"strace-{int(control)}.log"
    data = tmp / f"data-{int(control)}"
    env = {**os.environ, "AUDIT_CONTROL": "1" if control else "0"}
    cmd = ["strace", "-f", "-y", "-o", str(log), "-e", "trace=write,pwrite64,fsync,fdatasync"]
    subprocess.run(
        [*cmd, sys.executable, "-c", WRITER, str(data), str(n)],
        check=True,
        capture_output=True,
        timeout=120,
        env=env,
    )
    dirty, acks, synced = False, 0, 0
    for line in log.read_text().splitlines():
        m = SYSCALL.match(line)
        if m is None:
            continue
        call, fd, path = m.groups()
        if path.endswith("store.sqlite-wal"):
            if call in ("write", "pwrite64"):
                dirty = True
            elif call in ("fsync", "fdatasync"):
                dirty = False
        elif call == "write" and fd == "1" and '"ACK ' in line:
            acks += 1
            synced += not dirty
    return {"acks": acks, "acks_after_wal_fsync": synced}


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")
def test_strace_sees_the_wal_fsynced_before_every_ack(tmp_path: Path) -> None:
    n = 40
    probe = subprocess.run(["strace", "-o", "/dev/null", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("ptrace is not permitted here")
    audit = strace_audit(tmp_path, n, control=False)
    control = strace_audit(tmp_path, n, control=True)
    report("storage-fsync-strace", {"audit": audit, "control_synchronous_normal": control})
    assert audit["acks"] == n and audit["acks_after_wal_fsync"] == n, audit
    assert control["acks_after_wal_fsync"] < n, f"the audit cannot tell: {control}"
