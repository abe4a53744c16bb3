"""R6 (storage level): results are the same after a restart. A process builds 2,000 documents
(1,000 in the fast tier) in four collections (flat cosine, flat l2, hnsw cosine, ivf l2),
replaces and deletes some after the last snapshot, answers 150 similarity and 50 analogy
queries (40 and 20 in the fast tier, k=10), then exits gracefully or SIGKILLs itself. The
reopened collections must give the same top-10 ids and scores (within 1e-6) for the exact
kinds; the ANN kinds the same after a graceful stop and recall@10 >= 0.99 against numpy brute
force after a kill. Also I7: a 10k x 384 collection recovers from kill -9 in under 2 s.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from indexer import Query, analogy
from indexer.collection import Collection

from .storage_support import ROOT, engine_at, report, scaled

DIM = 32
N = scaled(1000, 2000)  # documents per collection (R6 bar: 2,000, the full tier)
N_SEARCH, N_ANALOGY = scaled(40, 150), scaled(20, 50)
SPECS: dict[str, dict[str, Any]] = {
    "flat_cos": {"metric": "cosine", "index": "flat"},
    "flat_l2": {"metric": "l2", "index": "flat"},
    "hnsw_cos": {"metric": "cosine", "index": "hnsw", "params": {"ann_threshold": 500}},
    "ivf_l2": {"metric": "l2", "index": "ivf", "params": {"ann_threshold": 500}},
}
BUILD = """
import json, os, sys
import numpy as np
from indexer import DocumentIn, Engine, Settings
sys.path.insert(0, sys.argv[4])  # the repo: tests/reliability as a namespace package
from tests.reliability.test_storage_restart import DIM, N, SPECS, answer_all
data, mode, out = sys.argv[1:4]
engine = Engine(Settings(data_dir=data, embedder="hash-16"))
rng = np.random.default_rng(6)
vectors = rng.normal(size=(N + 100, DIM)).astype(np.float32)
for name, spec in SPECS.items():
    col = engine.create_collection(name, dim=DIM, **spec)
    for start in range(0, N, 500):
        col.upsert([DocumentIn(id=f"w{i}", vector=vectors[i]) for i in range(start, start + 500)])
    col.snapshot(force=True)
    # after the last snapshot: replacements and deletes that only the log holds
    col.upsert([DocumentIn(id=f"w{i}", vector=vectors[N + i]) for i in range(100)])
    col.delete(ids=[f"w{i}" for i in range(100, 150)])
results = {name: answer_all(engine.collection(name)) for name in SPECS}
with open(out, "w") as f:
    json.dump(results, f)
    f.flush()
    os.fsync(f.fileno())
if mode == "kill":
    os.kill(os.getpid(), 9)
engine.close()
"""


def queries() -> tuple[np.ndarray, list[list[str]]]:
    rng = np.random.default_rng(60)
    live = np.arange(150, N)
    terms = [[f"w{i}" for i in rng.choice(live, 3, replace=False)] for _ in range(N_ANALOGY)]
    return rng.normal(size=(N_SEARCH, DIM)).astype(np.float32), terms


def answer_all(col: Collection) -> dict[str, list[Any]]:
    vecs, terms = queries()
    search = [[[h.id, h.score] for h in col.search(Query(vector=v.tolist(), k=10))] for v in vecs]
    analog = [[[h.id, h.score] for h in analogy(col, [a, c], [b], k=10).hits] for a, b, c in terms]
    return {"search": search, "analogy": analog}


def brute_force(col: Collection, v: np.ndarray, k: int = 10) -> list[str]:
    docs = col.store.page(10**6, None)
    x = np.stack([d.vector for d in docs])
    if col.metric == "cosine":
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
        order = np.argsort(-(x @ (v / np.linalg.norm(v))), kind="stable")
    else:
        order = np.argsort(((x - v) ** 2).sum(axis=1), kind="stable")
    return [docs[i].id for i in order[:k]]


def _same(a: list[list[Any]], b: list[list[Any]]) -> bool:
    return [x[0] for x in a] == [y[0] for y in b] and np.allclose(
        [x[1] for x in a], [y[1] for y in b], atol=1e-6
    )


@pytest.mark.parametrize("mode", ["graceful", "kill"])
def test_results_are_the_same_after_a_restart(tmp_path: Path, mode: str) -> None:
    data, out = tmp_path / "data", tmp_path / "before.json"
    done = subprocess.run(
        [sys.executable, "-c", BUILD, str(data), mode, str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert done.returncode == (-9 if mode == "kill" else 0), done.stderr[-2000:]
    before = json.loads(out.read_text())
    engine = engine_at(data)
    figures: dict[str, Any] = {}
    for name, spec in SPECS.items():
        col = engine.collection(name)
        after = answer_all(col)
        assert col.count() == N - 50
        exact = spec["index"] == "flat" or mode == "graceful"
        for kind in ("search", "analogy"):  # analogy is exact arithmetic over all vectors
            pairs = zip(before[name][kind], after[kind], strict=True)
            same = sum(_same(b, a) for b, a in pairs)
            figures[f"{name}.{kind}.identical"] = same
            if exact or kind == "analogy":
                assert same == len(after[kind]), f"{name} {kind}: {same} identical"
        if not exact:
            vecs, _ = queries()
            found = [
                len({h[0] for h in a} & set(brute_force(col, v)))
                for a, v in zip(after["search"], vecs, strict=True)
            ]
            recall = sum(found) / (10 * len(vecs))
            figures[f"{name}.recall@10"] = round(recall, 4)
            assert recall >= 0.99, f"{name}: recall@10 {recall:.3f} after kill -9"
    report(f"storage-restart-{mode}", figures)


KILL_10K = """
import os, sys
import numpy as np
from indexer import DocumentIn, Engine, Settings
col = Engine(Settings(data_dir=sys.argv[1], embedder="hash-384")).create_collection("big", dim=384)
rng = np.random.default_rng(0)
for start in range(0, 10_000, 1000):
    col.upsert([DocumentIn(id=f"d{i}", vector=rng.normal(size=384), text=f"document {i}")
                for i in range(start, start + 1000)])
os.kill(os.getpid(), 9)
"""


def test_recovery_to_ready_at_10k_documents_is_under_2_s(tmp_path: Path) -> None:
    """I7: after kill -9 (WAL not checkpointed), open = WAL recovery + checks + replay."""
    done = subprocess.run(
        [sys.executable, "-c", KILL_10K, str(tmp_path / "data")], timeout=300, cwd=ROOT
    )
    assert done.returncode == -9
    start = time.monotonic()
    col = engine_at(tmp_path / "data").collection("big")
    took = time.monotonic() - start
    assert col.count() == 10_000
    report("storage-recovery-10k", {"open_s": round(took, 3), "documents": 10_000})
    assert took <= 2.0, f"recovery took {took:.2f} s"
