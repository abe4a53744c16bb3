"""R7: a Hypothesis RuleBasedStateMachine drives the engine (upsert new, upsert existing,
delete, batch, search with and without filter, analogy, snapshot, rebuild, reopen) and checks
every answer against an in-memory model: a dict of documents and numpy brute force (Chroma's
pattern). After every step: count, ids, no duplicates, index == documents, every vector finds
itself first. Zero divergences; derandomized, so CI runs the same examples every time.
Fast tier 15 examples x 20 steps per collection kind, full tier 100 x 30.
"""

from __future__ import annotations

import shutil
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from indexer import DocumentIn, Engine, Query, Settings, analogy
from indexer.collection import Collection

from .storage_support import index_problems, report, scaled, stored_docs

DIM = 8
STATS: Counter[str] = Counter()  # rules run, for the report
seeds = st.integers(0, 2**32 - 1)


def vector(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=DIM).astype(np.float32)


def scores(metric: str, x: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Higher is better for every metric here (l2 as minus the distance)."""
    if metric == "cosine":
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
        return x @ (q / np.linalg.norm(q))
    if metric == "dot":
        return x @ q
    return -np.sqrt(((x - q) ** 2).sum(axis=1))


def same_ranking(got: list[tuple[str, float]], want: list[tuple[str, float]]) -> bool:
    """Same ids in the same order and the same scores, where two scores tie within float32
    noise the order between them may differ."""
    if len(got) != len(want):
        return False
    g, w = np.array([s for _, s in got]), np.array([s for _, s in want])
    if not np.allclose(g, w, atol=1e-4):
        return False
    for i, ((gid, _), (wid, ws)) in enumerate(zip(got, want, strict=True)):
        if gid != wid:
            near = [want[j][0] for j in range(len(want)) if abs(want[j][1] - ws) < 1e-4]
            if gid not in near and i < len(want) - 1:
                return False
    return True


class EngineMachine(RuleBasedStateMachine):
    kind = "flat"

    def __init__(self) -> None:
        super().__init__()
        self.root = Path(tempfile.mkdtemp(prefix="vp-stateful-", dir=_fast_tmp()))
        self.engine: Engine | None = None
        self.model: dict[str, tuple[np.ndarray, str, dict[str, Any]]] = {}
        self.next_id = 0

    # ---- setup --------------------------------------------------------------------------
    @initialize(metric=st.sampled_from(["cosine", "l2", "dot"]))
    def create(self, metric: str) -> None:
        self.engine = Engine(Settings(data_dir=self.root, embedder="hash-16"))
        params = {} if self.kind == "flat" else {"ann_threshold": 6}
        self.engine.create_collection("c", dim=DIM, metric=metric, index=self.kind, params=params)
        self.metric = metric

    @property
    def col(self) -> Collection:
        assert self.engine is not None
        return self.engine.collection("c")

    def teardown(self) -> None:
        if self.engine is not None:
            self.engine.close()
        shutil.rmtree(self.root, ignore_errors=True)

    def _docs(self, ids: list[str], seed: int) -> list[DocumentIn]:
        rng = np.random.default_rng(seed)
        return [
            DocumentIn(
                id=d,
                vector=vector(int(rng.integers(2**32))),
                text=f"text of {d} #{seed}",
                metadata={"g": int(rng.integers(3))},
            )
            for d in ids
        ]

    def _upsert(self, docs: list[DocumentIn]) -> None:
        got = self.col.upsert(docs)
        assert got == {"upserted": len(docs), "skipped": 0}
        for d in docs:
            self.model[d.id] = (np.asarray(d.vector), d.text or "", d.metadata or {})

    def _new_ids(self, n: int) -> list[str]:
        self.next_id += n
        return [f"d{i}" for i in range(self.next_id - n, self.next_id)]

    # ---- writes -------------------------------------------------------------------------
    @rule(n=st.integers(1, 5), seed=seeds)
    def upsert_new(self, n: int, seed: int) -> None:
        STATS["upsert_new"] += 1
        self._upsert(self._docs(self._new_ids(n), seed))

    @precondition(lambda self: self.model)
    @rule(data=st.data(), seed=seeds)
    def upsert_existing(self, data: st.DataObject, seed: int) -> None:
        STATS["upsert_existing"] += 1
        ids = data.draw(st.lists(st.sampled_from(sorted(self.model)), min_size=1, unique=True))
        self._upsert(self._docs(ids, seed))

    @rule(n_new=st.integers(0, 15), data=st.data(), seed=seeds)
    def batch(self, n_new: int, data: st.DataObject, seed: int) -> None:
        STATS["batch"] += 1
        old = sorted(self.model)
        again = data.draw(st.lists(st.sampled_from(old), unique=True)) if old else []
        ids = again + self._new_ids(n_new)
        if ids:
            self._upsert(self._docs(ids, seed))

    @precondition(lambda self: self.model)
    @rule(data=st.data(), ghost=st.booleans())
    def delete(self, data: st.DataObject, ghost: bool) -> None:
        STATS["delete"] += 1
        ids = data.draw(st.lists(st.sampled_from(sorted(self.model)), min_size=1, unique=True))
        gone = self.col.delete(ids=[*ids, "never-existed"] if ghost else ids)
        assert sorted(gone) == sorted(ids)
        for d in ids:
            del self.model[d]

    # ---- reads --------------------------------------------------------------------------
    @rule(
        seed=seeds, k=st.integers(1, 12), exact=st.booleans(), group=st.none() | st.integers(0, 2)
    )
    def search(self, seed: int, k: int, exact: bool, group: int | None) -> None:
        STATS["search"] += 1
        q = vector(seed)
        where = None if group is None else {"g": group}
        hits = self.col.search(Query(vector=q.tolist(), k=k, exact=exact, filter=where))
        ids = [d for d, (_, _, m) in self.model.items() if group is None or m["g"] == group]
        want: list[tuple[str, float]] = []
        if ids:
            s = scores(self.metric, np.stack([self.model[d][0] for d in ids]), q)
            order = np.argsort(-s, kind="stable")[:k]
            sign = -1.0 if self.metric == "l2" else 1.0
            want = [(ids[i], sign * float(s[i])) for i in order]
        got = [(h.id, h.score) for h in hits]
        assert same_ranking(got, want), (
            f"search k={k} exact={exact} filter={where}: {got} != {want}"
        )
        for h in hits:
            assert h.text == self.model[h.id][1] and h.metadata == self.model[h.id][2]

    @precondition(lambda self: len(self.model) >= 4)
    @rule(data=st.data(), k=st.integers(1, 5))
    def analogy(self, data: st.DataObject, k: int) -> None:
        STATS["analogy"] += 1
        a, b, c = data.draw(
            st.lists(st.sampled_from(sorted(self.model)), min_size=3, max_size=3, unique=True)
        )
        res = analogy(self.col, [a, c], [b], k=k)
        ids = [d for d in self.model if d not in (a, b, c)]
        x = np.stack([self.model[d][0] for d in ids])
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
        unit = {t: self.model[t][0] / np.linalg.norm(self.model[t][0]) for t in (a, b, c)}
        s = x @ unit[a] + x @ unit[c] - x @ unit[b]  # 3CosAdd
        want = [(ids[i], float(s[i])) for i in np.argsort(-s, kind="stable")[:k]]
        got = [(h.id, h.score) for h in res.hits]
        assert same_ranking(got, want), f"analogy {a} - {b} + {c}: {got} != {want}"

    # ---- lifecycle ----------------------------------------------------------------------
    @rule()
    def snapshot(self) -> None:
        STATS["snapshot"] += 1
        self.col.snapshot(force=True)

    @rule()
    def rebuild(self) -> None:
        STATS["rebuild"] += 1
        self.col.rebuild()

    @rule()
    def reopen(self) -> None:
        STATS["reopen"] += 1
        assert self.engine is not None
        self.engine.close()
        self.engine = Engine(Settings(data_dir=self.root, embedder="hash-16"))

    # ---- after every step ---------------------------------------------------------------
    @invariant()
    def matches_the_model(self) -> None:
        if self.engine is None:
            return
        col = self.col
        docs = stored_docs(col)
        assert col.count() == len(self.model) and set(docs) == set(self.model)
        for d, (vec, text, meta) in self.model.items():
            assert docs[d].vector.tobytes() == vec.tobytes() and docs[d].text == text
            assert docs[d].metadata == meta
        problems = index_problems(col, docs) if self.metric != "dot" else []
        assert not problems, problems
        STATS["checked steps"] += 1
        STATS["max documents"] = max(STATS["max documents"], len(docs))


def _fast_tmp() -> str | None:
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() else None


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf"])
def test_engine_matches_a_reference_model(kind: str) -> None:
    STATS.clear()
    machine = type(f"EngineMachine_{kind}", (EngineMachine,), {"kind": kind})
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=scaled(25, 100),
            stateful_step_count=scaled(25, 30),
            derandomize=True,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
    report(f"storage-stateful-{kind}", dict(STATS))
