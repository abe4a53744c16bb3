"""R16: backup and restore round-trip under concurrent writes, checksums verified before
anything is loaded, no pickle anywhere, no URL fetched. Engine API, CLI and HTTP.

A writer thread applies journaled ops (one write = one seq) while backups are taken; each
backup restored as a new collection must equal, document by document and vector bit for bit,
the journal replayed up to the backup's seq.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from indexer import DocumentIn, Engine
from indexer.backup import BACKUP_FILE
from indexer.cli import main as cli_main
from indexer.collection import Collection
from indexer.errors import CollectionExists, CorruptBackup
from service.app import create_app

from .storage_support import ROOT, SEED, engine_at, index_problems, report, stored_docs
from .storage_worker import DIM

State = dict[str, tuple[bytes, str | None, dict[str, Any]]]


def state_of(col: Collection) -> State:
    return {d.id: (d.vector.tobytes(), d.text, d.metadata) for d in stored_docs(col).values()}


class Writer(threading.Thread):
    """Upserts new and existing ids and deletes, one seq per op, until stopped (bounded)."""

    def __init__(self, col: Collection, limit: int = 400, seconds: float = 20.0) -> None:
        super().__init__(daemon=True)
        self.col, self.limit, self.seconds = col, limit, seconds
        self.base_seq, self.base = col.seq, state_of(col)
        self.ops: list[tuple[str, list[DocumentIn] | list[str]]] = []
        self.stop, self.error = threading.Event(), None

    def run(self) -> None:
        rng = np.random.default_rng(SEED + 1)  # not the base documents' vectors again
        live = sorted(self.base)
        end = time.monotonic() + self.seconds
        try:
            for i in range(self.limit):
                if self.stop.is_set() or time.monotonic() > end:
                    return
                if i % 3 == 2 and len(live) > 10:
                    gone = [str(x) for x in rng.choice(live, 2, replace=False)]
                    self.col.delete(ids=gone)
                    self.ops.append(("delete", gone))
                    live = [x for x in live if x not in gone]
                else:
                    ids = [f"w{i}-{j}" for j in range(4)] + [str(rng.choice(live))]
                    docs = [
                        DocumentIn(
                            id=d, vector=rng.normal(size=DIM), text=f"{d}@{i}", metadata={"op": i}
                        )
                        for d in ids
                    ]
                    self.col.upsert(docs)
                    self.ops.append(("upsert", docs))
                    live = sorted(set(live) | set(ids))
        except Exception as e:  # reported by the test
            self.error = e

    def state_at(self, seq: int) -> State:
        state = dict(self.base)
        for kind, items in self.ops[: seq - self.base_seq]:
            for item in items:
                if kind == "delete":
                    state.pop(str(item), None)
                else:
                    assert isinstance(item, DocumentIn)
                    vec = np.asarray(item.vector, dtype=np.float32).tobytes()
                    state[item.id] = (vec, item.text, item.metadata or {})
        return state


def _source(engine: Engine) -> Collection:
    col = engine.create_collection("src", dim=DIM, index="hnsw", params={"ann_threshold": 100})
    rng = np.random.default_rng(SEED)
    col.upsert([DocumentIn(id=f"b{i}", vector=rng.normal(size=DIM)) for i in range(300)])
    return col


def test_backups_taken_during_writes_restore_the_state_at_their_seq(tmp_path: Path) -> None:
    engine = engine_at(tmp_path / "data")
    writer = Writer(_source(engine))
    writer.start()
    backups = []
    try:
        for _ in range(3):
            time.sleep(0.3)
            backups.append(engine.backup("src"))
    finally:
        writer.stop.set()
        writer.join(timeout=30)
    assert writer.error is None, writer.error
    final = writer.base_seq + len(writer.ops)
    for k, info in enumerate(backups):
        col = engine.restore_backup(info["name"], f"copy{k}")
        assert col.seq == info["seq"] and col.count() == info["count"]
        assert state_of(col) == writer.state_at(info["seq"]), f"backup {k} at seq {info['seq']}"
        assert not index_problems(col, stored_docs(col))
        if info["seq"] > 3:  # an ANN snapshot came along: adopted, not rebuilt
            assert col.describe()["ann"]["built"]
    mid = [b["seq"] for b in backups if writer.base_seq < b["seq"] < final]
    report(
        "storage-backup",
        {"backup_seqs": [b["seq"] for b in backups], "writes": len(writer.ops), "final": final},
    )
    assert mid, "no backup was taken while the writer was writing"
    engine.close()


def _tamper(src: Path, dest: Path, how: str) -> None:
    subprocess.run(["cp", "-r", str(src), str(dest)], check=True)
    info = json.loads((dest / BACKUP_FILE).read_text())
    if how == "store byte":
        data = bytearray((dest / "store.sqlite").read_bytes())
        data[len(data) // 2] ^= 0x10
        (dest / "store.sqlite").write_bytes(bytes(data))
    elif how == "missing snapshot":
        for f in (dest / "snapshots").iterdir():
            f.unlink()
    elif how == "backup.json edited":
        info["count"] += 1
        (dest / BACKUP_FILE).write_text(json.dumps(info))
    elif how == "path outside":
        info["files"]["../../etc/passwd"] = info["files"].pop("manifest.json")
        info["checksum"] = "0" * 64
        (dest / BACKUP_FILE).write_text(json.dumps(info))
    elif how == "manifest swapped":
        m = json.loads((dest / "manifest.json").read_text())
        m["dim"] = 3
        (dest / "manifest.json").write_text(json.dumps(m))


@pytest.mark.parametrize(
    "how",
    ["store byte", "missing snapshot", "backup.json edited", "path outside", "manifest swapped"],
)
def test_a_damaged_backup_is_refused_before_anything_is_created(tmp_path: Path, how: str) -> None:
    engine = engine_at(tmp_path / "data")
    _source(engine)
    good = tmp_path / "good"
    engine.backup("src", good)
    bad = tmp_path / "bad"
    _tamper(good, bad, how)
    with pytest.raises(CorruptBackup) as err:
        engine.restore(bad, "restored")
    assert err.value.status == 422
    assert not (tmp_path / "data" / "restored").exists()
    assert not [p for p in (tmp_path / "data").iterdir() if "restoring" in p.name]
    engine.restore(good, "restored")  # the intact one restores
    with pytest.raises(CollectionExists):
        engine.restore(good, "restored")


def test_cli_backup_and_restore_round_trip(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = engine_at(tmp_path / "data")
    want = state_of(_source(engine))
    engine.close()
    for key in [k for k in os.environ if k.startswith("VP_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("VP_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("VP_EMBEDDER", f"hash-{DIM}")

    def cli(*args: str) -> tuple[int, str, str]:
        code = cli_main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    code, out, err = cli("backup", "src", str(tmp_path / "bk"), "--json")
    assert code == 0 and json.loads(out)["count"] == 300, err
    code, out, err = cli("restore", str(tmp_path / "bk"), "--as", "back")
    assert code == 0 and "300 documents" in out, err
    code, out, err = cli("restore", str(tmp_path / "bk"), "--as", "back")
    assert code == 2 and "already exists" in err
    assert state_of(engine_at(tmp_path / "data").collection("back")) == want


def test_http_backup_under_writes_restores_the_state_at_its_seq(tmp_path: Path) -> None:
    from indexer import Settings

    settings = Settings(data_dir=tmp_path / "data", embedder=f"hash-{DIM}", build_words=False)
    with TestClient(create_app(settings)) as client:
        engine: Engine = client.app.state.engine  # type: ignore[attr-defined]
        writer = Writer(_source(engine), seconds=10)
        writer.start()
        try:
            time.sleep(0.2)
            r = client.post("/v1/collections/src/backup")
        finally:
            writer.stop.set()
            writer.join(timeout=30)
        assert r.status_code == 201, r.text
        info = r.json()
        assert set(info) >= {"name", "creation_time", "size", "checksum", "seq", "count"}
        listed = client.get("/v1/collections/src/backups").json()["backups"]
        assert [b["name"] for b in listed] == [info["name"]]
        r = client.post("/v1/collections/restore", json={"backup": info["name"], "name": "back"})
        assert r.status_code == 201 and r.json()["seq"] == info["seq"], r.text
        assert state_of(engine.collection("back")) == writer.state_at(info["seq"])
        assert (tmp_path / "data" / ".backups" / info["name"]).is_dir()  # never a client path


UNPICKLERS = {"pickle", "cPickle", "dill", "joblib", "cloudpickle", "shelve", "marshal"}
NETWORK = {"urllib", "httpx", "requests", "socket", "http", "aiohttp", "ftplib"}


def _imports(tree: ast.AST) -> list[str]:
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name.split(".")[0] for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module.split(".")[0])
    return names


def _unpickling_calls(tree: ast.AST) -> list[int]:
    """np.load / torch.load (they may unpickle) unless told `allow_pickle=False` in so many
    words, and any call passing allow_pickle another way."""
    lines = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        flag = next((k.value for k in node.keywords if k.arg == "allow_pickle"), None)
        refused = isinstance(flag, ast.Constant) and flag.value is False
        if isinstance(f, ast.Attribute) and f.attr == "load":
            owner = f.value.id if isinstance(f.value, ast.Name) else ""
            if owner == "torch" or (owner in {"np", "numpy"} and not refused):
                lines.append(node.lineno)
        elif flag is not None and not refused:
            lines.append(node.lineno)
    return lines


def test_the_unpickling_lint_tells_refused_pickles_from_others() -> None:
    calls = """
np.load(f)
np.load(f, allow_pickle=True)
np.load(f, allow_pickle=False)
np.load(f, allow_pickle=flag)
torch.load(f, weights_only=True)
np.lib.format.read_array(f, allow_pickle=True)
"""
    assert _unpickling_calls(ast.parse(calls)) == [2, 3, 5, 6, 7]


def test_nothing_loaded_is_unpickled_and_restore_fetches_no_url() -> None:
    """No unpickling module or call in the engine or the service; the backup and restore code
    imports nothing that talks to the network."""
    found = []
    for package in ("indexer", "service"):
        for file in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(file.read_text())
            rel = file.relative_to(ROOT)
            found += [f"{rel} imports {m}" for m in _imports(tree) if m in UNPICKLERS]
            found += [f"{rel}:{line} may unpickle" for line in _unpickling_calls(tree)]
    for rel in (
        "indexer/backup.py",
        "indexer/store.py",
        "indexer/snapshot.py",
        "indexer/files.py",
        "service/routers/snapshots.py",
    ):
        mods = _imports(ast.parse((ROOT / rel).read_text()))
        found += [f"{rel} imports {m}" for m in mods if m in NETWORK]
    assert not found, found
