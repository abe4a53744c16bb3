"""R4: the FAISS snapshot is published atomically. A child publishes snapshots in a loop and is
SIGKILLed at random moments (fast tier 20 kills, full tier 50); after each kill every snapshot
file under its final name is complete and valid, the collection opens with no manual step on
the newest one, its index holds exactly the stored vectors, and the killed writer's temp file
is cleaned. Collection create/drop killed the same way never leaves a listed collection that
does not open. And no code writes a FAISS index straight to a path."""

from __future__ import annotations

import ast
import time
from collections import Counter
from pathlib import Path

import numpy as np

from indexer import DocumentIn
from indexer.snapshot import list_snapshots, read_snapshot

from .storage_support import (
    ROOT,
    SEED,
    Zygote,
    engine_at,
    index_problems,
    landing,
    report,
    scaled,
    stored_docs,
    stray_temp_files,
)
from .storage_worker import DIM


def _job(kind: str, data_dir: Path, rnd: int, name: str = "ann") -> dict[str, object]:
    return {
        "kind": kind,
        "data_dir": str(data_dir),
        "name": name,
        "seed": SEED,
        "round": rnd,
        "max_ops": 10_000,
        "max_s": 5.0,
    }


def _ann_collection(data_dir: Path, n: int) -> None:
    engine = engine_at(data_dir)
    col = engine.create_collection(
        "ann", dim=DIM, index="hnsw", metric="cosine", params={"ann_threshold": 100, "M": 16}
    )
    rng = np.random.default_rng(SEED)
    for start in range(0, n, 1000):
        col.upsert(
            [
                DocumentIn(id=f"d{i}", vector=rng.normal(size=DIM).astype(np.float32))
                for i in range(start, min(n, start + 1000))
            ]
        )
    engine.close()


def test_kill_during_snapshot_publish_always_opens_a_complete_generation(tmp_path: Path) -> None:
    kills = scaled(20, 50)
    data_dir = tmp_path / "data"
    _ann_collection(data_dir, 2000)
    rng = np.random.default_rng(SEED)
    landed: Counter[str] = Counter()
    temps_left = 0
    zygote = Zygote(tmp_path / "zygote.log")
    started = time.monotonic()
    try:
        for rnd in range(kills):
            delay = float(rng.uniform(0, 0.12))
            result = zygote.run(_job("publish", data_dir, rnd), delay)
            where = f"seed {SEED} round {rnd} (kill after {delay * 1000:.0f} ms)"
            assert not result.errors and result.killed, f"{where}: {result.errors}"
            landed[landing(result.events)] += 1
            temps_left += len(stray_temp_files(data_dir))
            files = list_snapshots(data_dir / "ann")
            assert files, f"{where}: no snapshot left"
            damaged = [f.name for f in files if read_snapshot(f) is None]
            assert not damaged, f"{where}: partial snapshot under its final name: {damaged}"
            col = engine_at(data_dir).collection("ann")
            newest = read_snapshot(files[0])
            assert newest is not None and col.snapshot_seq == newest[0]["seq"], where
            assert col.describe()["ann"]["built"], where
            problems = index_problems(col, stored_docs(col))
            col.close()
            assert not problems, f"{where}: {problems}"
            assert not stray_temp_files(data_dir), f"{where}: temp file of the dead writer kept"
    finally:
        zygote.close()
    mid = landed["publishing"]
    report(
        "storage-publish",
        {
            "kills": kills,
            "landed": dict(landed),
            "publishing_share": round(mid / kills, 3),
            "temp_files_left_by_kills": temps_left,
            "seconds": round(time.monotonic() - started, 1),
            "seed": SEED,
        },
    )
    assert mid / kills >= 0.30, f"only {mid}/{kills} kills landed mid-publish: {landed}"


def test_kill_during_create_and_drop_never_leaves_a_broken_collection(tmp_path: Path) -> None:
    kills = scaled(10, 30)
    data_dir = tmp_path / "data"
    engine_at(data_dir).close()
    rng = np.random.default_rng(SEED)
    zygote = Zygote(tmp_path / "zygote.log")
    try:
        for rnd in range(kills):
            result = zygote.run(_job("lifecycle", data_dir, rnd), float(rng.uniform(0, 0.15)))
            assert not result.errors and result.killed, result.errors
            engine = engine_at(data_dir)  # leftovers (.creating / .dropped) never block
            listed = engine.list_collections()
            on_disk = [p.name for p in data_dir.iterdir() if not p.name.startswith(".")]
            assert sorted(c["name"] for c in listed) == sorted(on_disk), f"round {rnd}"
            for c in listed:
                assert c["count"] in (0, 1)
            assert not list(data_dir.glob(".*.dropped-*")), "trash of a killed drop kept"
            engine.close()
    finally:
        zygote.close()


def _calls(tree: ast.AST, names: set[str]) -> list[int]:
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
            if name in names:
                lines.append(node.lineno)
    return lines


def test_no_code_writes_or_reads_a_faiss_index_by_path() -> None:
    """faiss.write_index truncates the live file and never fsyncs; read_index of an unchecked
    file is a trust boundary. Snapshots go through serialize_index + write_atomic and are
    checksummed before deserialize_index."""
    found = []
    for package in ("indexer", "service"):
        for file in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(file.read_text(), str(file))
            for line in _calls(tree, {"write_index", "read_index", "write_VectorTransform"}):
                found.append(f"{file.relative_to(ROOT)}:{line}")
            if "write_index" in file.read_text():
                found.append(f"{file.relative_to(ROOT)}: mentions write_index")
    assert not found, found
