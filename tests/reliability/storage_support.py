"""The storage half's tools: the zygote that forks the crash children (storage_worker.py), the
journal that turns their event lines into what must be on disk, and the invariant checks
I1–I7 of reliability.md run on the reopened collection.

Where a kill lands is read from the events the child wrote before it died: an op started and
not committed ("before-commit"), committed and not returned ("after-commit"), a snapshot
being published ("publishing"), the collection still opening ("opening"), or no op in flight
("idle"). The first three are mid-operation.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from indexer import Engine, Settings
from indexer.collection import Collection

from .storage_worker import DIM, text_of, vector_of

WORKER = Path(__file__).with_name("storage_worker.py")
ROOT = Path(__file__).resolve().parents[2]
FULL = os.environ.get("RELIABILITY_FULL") == "1"
SEED = int(os.environ.get("RELIABILITY_SEED", "6006"))
MID_OP = ("before-commit", "after-commit", "publishing")


def scaled(fast: int, full: int) -> int:
    return full if FULL else fast


def report(name: str, data: dict[str, Any]) -> None:
    """Print a test's figures (seen with -s) and, in the full tier, keep them as JSON in
    bench/results/ for the README."""
    print(f"\n[{name}] {json.dumps(data, sort_keys=True)}")
    if FULL:
        out = ROOT / "bench" / "results"
        out.mkdir(parents=True, exist_ok=True)
        (out / f"reliability-{name}.json").write_text(json.dumps(data, indent=2, sort_keys=True))


def engine_at(data_dir: Path) -> Engine:
    return Engine(Settings(data_dir=data_dir, embedder=f"hash-{DIM}"))


# ---- the zygote -----------------------------------------------------------------------------
@dataclass
class Round:
    events: list[str]
    killed: bool
    status: int
    errors: list[str]


class Zygote:
    """One `storage_worker.py` process: forks a child per job; `run` kills it at a moment."""

    def __init__(self, log: Path) -> None:
        self.log = open(log, "wb")  # noqa: SIM115 (closed in close())
        self.proc = subprocess.Popen(
            [sys.executable, str(WORKER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            cwd=ROOT,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._in, self._out = self.proc.stdin, self.proc.stdout.fileno()
        self._buf = b""
        self.log_path = log

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        self.log.close()

    def _line(self, timeout: float) -> str | None:
        end = time.monotonic() + timeout
        while b"\n" not in self._buf:
            left = max(0.0, end - time.monotonic())
            if not select.select([self._out], [], [], left)[0]:
                return None
            chunk = os.read(self._out, 65536)
            if not chunk:
                raise RuntimeError(f"zygote died; see {self.log_path}")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return line.decode()

    def run(
        self, job: dict[str, Any], delay: float, from_fork: bool = False, limit: float = 60.0
    ) -> Round:
        """Start `job`, SIGKILL the child `delay` s after it reports ready (or after the fork
        with `from_fork`), and collect its events until it is gone."""
        self._in.write((json.dumps(job) + "\n").encode())
        self._in.flush()
        start = time.monotonic()
        kill_at = start + delay if from_fork else None
        events: list[str] = []
        killed, status = False, -1
        while True:
            wait = 0.5 if kill_at is None or killed else max(0.0, kill_at - time.monotonic())
            line = self._line(wait)
            if line is None:
                if kill_at is not None and not killed and time.monotonic() >= kill_at:
                    self._in.write(b"K\n")
                    self._in.flush()
                    killed = True
                if time.monotonic() - start > limit:
                    raise TimeoutError(f"job {job} did not end in {limit} s; see {self.log_path}")
                continue
            if line == "R" and kill_at is None:
                kill_at = time.monotonic() + delay
            if line.startswith("X "):
                status = int(line.split()[2])
                break
            if not line.startswith("F "):
                events.append(line)
        errors = [e for e in events if e.startswith("E ")]
        return Round(events, killed, status, errors)


# ---- where a kill landed --------------------------------------------------------------------
def landing(events: list[str]) -> str:
    if "R" not in events:
        return "opening"
    started, committed, acked = set(), set(), set()
    publishing = 0
    for e in events:
        tag, *rest = e.split(" ", 1)
        if tag == "S":
            started.add(int(rest[0].split()[0]))
        elif tag == "C":
            committed.add(int(rest[0]))
        elif tag == "A":
            acked.add(int(rest[0]))
        elif tag in ("P", "p"):
            publishing += 1 if tag == "P" else -1
    if publishing > 0:
        return "publishing"
    if started - committed:
        return "before-commit"
    if started - acked:
        return "after-commit"
    return "idle"


# ---- what must be on disk -------------------------------------------------------------------
@dataclass
class Op:
    op: int
    kind: str
    ids: list[str]
    committed: bool = False
    acked: bool = False


@dataclass
class Journal:
    """The expected state of one collection across crash rounds: id -> op that wrote it."""

    seed: int
    state: dict[str, int] = field(default_factory=dict)
    sent: set[str] = field(default_factory=set)
    outcomes: Counter[str] = field(default_factory=Counter)
    acked: int = 0

    def ops(self, events: list[str]) -> list[Op]:
        ops: dict[int, Op] = {}
        for e in events:
            tag, *rest = e.split(" ")
            if tag == "S":
                op = int(rest[0])
                ops[op] = Op(op, rest[1], rest[2].split(","))
                self.sent.update(ops[op].ids)
            elif tag == "C":
                ops[int(rest[0])].committed = True
            elif tag == "A":
                ops[int(rest[0])].acked = True
        return list(ops.values())

    def apply(self, op: Op) -> None:
        for d in op.ids:
            if op.kind == "upsert":
                self.state[d] = op.op
            else:
                self.state.pop(d, None)

    def settle(self, events: list[str], found: dict[str, int]) -> list[str]:
        """Apply the acknowledged ops; decide each in-flight op from what is on disk (all or
        nothing, and applied if it had committed). Returns I3 violations."""
        problems = []
        for op in self.ops(events):
            if op.acked:
                self.acked += 1
                self.apply(op)
                continue
            if op.kind == "upsert":
                hits = [found.get(d) == op.op for d in op.ids]
            else:
                hits = [d not in found for d in op.ids if d in self.state]
            applied = all(hits)
            if hits and not applied and any(hits):
                problems.append(f"I3: {op.kind} {op.op} half applied ({sum(hits)}/{len(hits)})")
            if op.committed and not applied:
                problems.append(f"I3: {op.kind} {op.op} committed, then lost")
            self.outcomes[f"in-flight {op.kind} {'applied' if applied else 'absent'}"] += 1
            if applied:
                self.apply(op)
        return problems


def stored_docs(col: Collection) -> dict[str, Any]:
    return {d.id: d for d in col.store.page(1_000_000, None)}


def check_invariants(col: Collection, journal: Journal, docs: dict[str, Any]) -> list[str]:
    """I1, I2, I4, I5 on an open collection against the journal's expected state."""
    problems = []
    for d, op in journal.state.items():  # I1: every acknowledged write, bit for bit
        doc = docs.get(d)
        if doc is None:
            problems.append(f"I1: {d} (op {op}) lost")
        elif doc.vector.tobytes() != vector_of(journal.seed, op, d).tobytes():
            problems.append(f"I1: {d} vector differs from op {op}")
        elif doc.text != text_of(d, op) or doc.metadata != {"op": op}:
            problems.append(f"I1: {d} text/metadata {doc.text!r} {doc.metadata} != op {op}")
    for d in docs.keys() - journal.state.keys():  # I2 / I4
        kind = "I4 phantom" if d not in journal.sent else "I2 deleted id back"
        problems.append(f"{kind}: {d}")
    problems += index_problems(col, docs)
    return problems


def index_problems(col: Collection, docs: dict[str, Any]) -> list[str]:
    """I4 (no duplicates) and I5 (index count == document count, every stored vector finds
    itself first by exact search, the ANN index holds exactly the live labels)."""
    problems = []
    ids = list(col.id_by_label.values())
    if len(ids) != len(set(ids)):
        problems.append("I4: an id has two labels in the index")
    if not col.index.ntotal == len(col.id_by_label) == len(docs):
        problems.append(f"I5: index {col.index.ntotal} != documents {len(docs)}")
    if set(ids) != set(docs):
        problems.append("I5: index ids != stored ids")
    if docs:
        labels = np.asarray([col.label_by_id[d] for d in docs if d in col.label_by_id])
        vectors = np.stack([docs[col.id_by_label[int(lab)]].vector for lab in labels])
        res = col.index.search(vectors, 1, exact=True)
        firsts = np.asarray([r.labels[0] for r in res])
        prepared = col.index.prepare(vectors)  # as indexed: unit length for cosine
        wrong = sum(  # a document with the very same (indexed) vector may come first instead
            1
            for i in np.flatnonzero(firsts != labels)
            if not np.array_equal(
                col.index.prepare(docs[col.id_by_label[int(firsts[i])]].vector)[0], prepared[i]
            )
        )
        if wrong:
            problems.append(f"I5: {wrong} stored vectors do not find themselves first")
    if col.index.ann is not None:
        live = set(col.id_by_label)
        if col.index.ann_labels - col.index.tombstones != live:
            problems.append("I5: ANN labels != live labels")
    return problems


def stray_temp_files(data_dir: Path) -> list[Path]:
    return [p for p in data_dir.rglob(".*tmp-*") if p.is_file()]


def percentile(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 4) if values else float("nan")
