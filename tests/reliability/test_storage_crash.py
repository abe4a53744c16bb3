"""R1: SIGKILL at random points while two threads upsert and delete batches; after every kill
the reopened collection satisfies I1–I7 (reliability.md section 6).

A zygote (storage_worker.py) pre-imports the engine and forks one child per round; the child
opens the collection after the fork, writes until it is killed U(0, 150 ms) after opening (one
round in ten: at a random moment of the open itself), and reports every op's start, commit and
return. Two collections take turns: flat/cosine and hnsw/l2 (its rebuilds publish snapshots
mid-op). Fast tier 30 kills, full tier (RELIABILITY_FULL=1) 200. A failure names the round's
seed: RELIABILITY_SEED=<seed> reruns the same kill points.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import numpy as np

from .storage_support import (
    MID_OP,
    SEED,
    Journal,
    Zygote,
    check_invariants,
    engine_at,
    landing,
    percentile,
    report,
    scaled,
    stored_docs,
    stray_temp_files,
)
from .storage_worker import DIM

COLLECTIONS = {
    "flat_cos": {"metric": "cosine", "index": "flat", "params": {}},
    "hnsw_l2": {"metric": "l2", "index": "hnsw", "params": {"ann_threshold": 120, "M": 8}},
}


def crash_job(data_dir: Path, name: str, seed: int, rnd: int) -> dict[str, object]:
    return {
        "kind": "crash",
        "data_dir": str(data_dir),
        "name": name,
        "seed": seed,
        "round": rnd,
        "threads": 2,
        "ids_per_thread": 150,
        "max_batch": 12,
        "delete_share": 0.35,
        "max_ops": 5000,
        "max_s": 5.0,
    }


def test_sigkill_during_concurrent_batches_loses_nothing_acknowledged(tmp_path: Path) -> None:
    kills = scaled(30, 200)
    data_dir = tmp_path / "data"
    engine = engine_at(data_dir)
    for name, spec in COLLECTIONS.items():
        engine.create_collection(name, dim=DIM, **spec)  # type: ignore[arg-type]
    engine.close()
    journals = {name: Journal(SEED) for name in COLLECTIONS}
    rng = np.random.default_rng(SEED)
    landed: Counter[str] = Counter()
    open_s: list[float] = []
    strays = 0
    zygote = Zygote(tmp_path / "zygote.log")
    started = time.monotonic()
    try:
        for rnd in range(kills):
            name = list(COLLECTIONS)[rnd % len(COLLECTIONS)]
            from_fork = rng.random() < 0.1
            delay = float(rng.uniform(0, 0.05 if from_fork else 0.15))
            job = crash_job(data_dir, name, SEED, rnd)
            result = zygote.run(job, delay, from_fork=from_fork)
            where = f"seed {SEED} round {rnd} ({name}, kill after {delay * 1000:.0f} ms)"
            assert not result.errors, f"{where}: child failed: {result.errors}"
            assert result.killed and result.status == 9, f"{where}: child was not killed"
            landed[landing(result.events)] += 1
            strays += len(stray_temp_files(data_dir))
            t0 = time.monotonic()
            reopened = engine_at(data_dir)  # I6: no manual step, whatever the kill left
            col = reopened.collection(name)
            open_s.append(time.monotonic() - t0)
            docs = stored_docs(col)
            journal = journals[name]
            problems = journal.settle(result.events, {d: v.metadata["op"] for d, v in docs.items()})
            problems += check_invariants(col, journal, docs)
            col.close()
            assert not problems, f"{where}, landed {landing(result.events)}: {problems[:5]}"
            assert not stray_temp_files(data_dir / name), f"{where}: temp files left after open"
    finally:
        zygote.close()
    mid = sum(landed[k] for k in MID_OP)
    outcomes = sum((j.outcomes for j in journals.values()), Counter())
    figures = {
        "kills": kills,
        "landed": dict(landed),
        "mid_op_share": round(mid / kills, 3),
        "acked_ops": sum(j.acked for j in journals.values()),
        "in_flight": dict(outcomes),
        "documents": {n: len(j.state) for n, j in journals.items()},
        "stray_temp_files_seen": strays,
        "open_s_p50": percentile(open_s, 50),
        "open_s_max": round(max(open_s), 4),
        "seconds": round(time.monotonic() - started, 1),
        "seed": SEED,
    }
    report("storage-crash", figures)
    assert mid / kills >= 0.30, f"only {mid}/{kills} kills landed mid-operation: {landed}"
    assert max(open_s) <= 2.0, f"I7: recovery took {max(open_s):.2f} s"
