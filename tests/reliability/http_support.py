"""The HTTP half's tools: real `python -m service` processes on 127.0.0.1, a write journal
that knows which writes were acknowledged, and the checks run through the API after a restart.

The journal follows reliability.md section 7: a 2xx is acknowledged; a transport error is
ambiguous (may or may not be applied) and ends that writer's round; anything else is a failure.
Each writer thread owns its ids, so an id has at most one ambiguous write per round, and a
batch in flight at a kill must be found applied to every id of it or to none.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
DIM = 384
START_TIMEOUT = 90.0  # imports alone take ~2 s; more when other test runs share the cores


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


# ---- a real server ---------------------------------------------------------------------------
class Server:
    """`python -m service` on a fresh ephemeral port of 127.0.0.1 with the hash embedder."""

    def __init__(self, data_dir: Path, log: Path, env: dict[str, str]) -> None:
        self.data_dir, self.log_path, self.env = data_dir, log, env
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.ready_s = float("nan")  # start to first 200 from /readyz

    def start(self, timeout: float = START_TIMEOUT) -> Server:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("VP_")}
        env.update(
            VP_EMBEDDER="hash-384",
            VP_BUILD_WORDS="false",
            VP_LOG_LEVEL="warning",
            HF_HUB_OFFLINE="1",
            TRANSFORMERS_OFFLINE="1",
        )
        env.update(self.env)
        env.update(VP_DATA_DIR=str(self.data_dir), VP_HOST="127.0.0.1", VP_PORT=str(port))
        self.url = f"http://127.0.0.1:{port}"
        with self.log_path.open("ab") as log:
            log.write(f"---- start on port {port}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "service"],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        t0 = time.monotonic()
        self._wait_ready(timeout)
        self.ready_s = time.monotonic() - t0
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with httpx.Client(base_url=self.url, timeout=2.0) as http:
            while time.monotonic() < deadline:
                assert self.proc is not None
                if self.proc.poll() is not None:
                    raise AssertionError(
                        f"server exited with {self.proc.returncode}:\n{self.tail()}"
                    )
                try:
                    if http.get("/readyz", headers=self.headers()).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.05)
        raise AssertionError(f"not ready after {timeout} s:\n{self.tail()}")

    def headers(self) -> dict[str, str]:
        key = self.env.get("VP_API_KEY")
        return {"Authorization": f"Bearer {key}"} if key else {}

    def client(self, timeout: float = 10.0) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=timeout, headers=self.headers())

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def rss_kb(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def terminate(self, timeout: float) -> tuple[int | None, float]:
        """SIGTERM; (exit code or None if still running after `timeout`, seconds taken)."""
        assert self.proc is not None
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            code: int | None = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            code = None
        return code, time.monotonic() - t0

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def tail(self, n: int = 40) -> str:
        lines = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(lines[-n:])


class ServerFactory:
    """Makes servers for one test and kills every one of them at the end."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.servers: list[Server] = []

    def __call__(self, data_dir: Path | None = None, **env: str) -> Server:
        n = len(self.servers)
        server = Server(data_dir or self.tmp / "data", self.tmp / f"server{n}.log", env)
        self.servers.append(server)
        return server

    def close(self) -> None:
        for s in self.servers:
            s.stop()


# ---- the write journal -----------------------------------------------------------------------
State = tuple[bytes, str, int] | None  # (float32 vector bytes, text, metadata version) or absent


@dataclass
class Op:
    kind: str  # "upsert" | "delete"
    ids: list[str]
    new: list[State]  # the state each id has if the op was applied


@dataclass
class Journal:
    """What the service acknowledged, and what may or may not have been applied."""

    acked: dict[str, State] = field(default_factory=dict)
    sent: set[str] = field(default_factory=set)  # every id ever named in a write
    ambiguous: list[Op] = field(default_factory=list)
    in_flight: dict[int, Op] = field(default_factory=dict)  # thread -> op sent, not answered
    counts: dict[str, int] = field(default_factory=dict)
    server_errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1

    def present(self, prefix: str) -> list[str]:
        with self.lock:
            return [i for i, s in self.acked.items() if s is not None and i.startswith(prefix)]


def make_docs(
    rng: np.random.Generator, ids: list[str], version: int
) -> tuple[list[Any], list[State]]:
    vectors = rng.standard_normal((len(ids), DIM)).astype(np.float32)
    docs, states = [], []
    for i, v in zip(ids, vectors, strict=True):
        text = f"document {i} version {version}"
        docs.append({"id": i, "text": text, "vector": v.tolist(), "metadata": {"v": version}})
        states.append((v.tobytes(), text, version))
    return docs, states


def writer(
    url_client: httpx.Client,
    journal: Journal,
    collection: str,
    thread: int,
    stop: threading.Event,
    seed: int,
    max_ops: int = 5000,
) -> None:
    """Upserts (1-4 docs, new or replaced) and deletes (1-2 acked docs) until stopped, the op
    budget is spent, or the server stops answering (that op is ambiguous)."""
    rng = np.random.default_rng(seed)
    prefix = f"t{thread}-"
    for step in range(max_ops):
        if stop.is_set():
            return
        op, body, path = _next_op(rng, journal, collection, prefix, seed * 100_000 + step)
        with journal.lock:
            journal.in_flight[thread] = op
            journal.sent.update(op.ids)
        try:
            r = url_client.request(*path, json=body)
        except httpx.TransportError:
            with journal.lock:
                journal.ambiguous.append(op)
                journal.in_flight.pop(thread, None)
                journal.count("ambiguous")
            return
        with journal.lock:
            journal.in_flight.pop(thread, None)
            if r.status_code < 300:
                journal.acked.update(zip(op.ids, op.new, strict=True))
                journal.count(f"{op.kind} acked")
            else:
                journal.count(f"{op.kind} {r.status_code}")
                journal.server_errors.append(f"{op.kind} {op.ids}: {r.status_code} {r.text[:200]}")


def _next_op(
    rng: np.random.Generator, journal: Journal, collection: str, prefix: str, version: int
) -> tuple[Op, dict[str, Any], tuple[str, str]]:
    present = journal.present(prefix)
    base = f"/v1/collections/{collection}/documents"
    if present and rng.random() < 0.3:
        ids = list(
            rng.choice(present, size=min(len(present), int(rng.integers(1, 3))), replace=False)
        )
        return Op("delete", ids, [None] * len(ids)), {"ids": ids}, ("POST", f"{base}/delete")
    n = int(rng.integers(1, 5))
    ids = sorted({f"{prefix}{int(rng.integers(0, 400))}" for _ in range(n)})
    docs, states = make_docs(rng, ids, version)
    return Op("upsert", ids, states), {"documents": docs}, ("PUT", base)


# ---- checks through the API ------------------------------------------------------------------
def observed_state(http: httpx.Client, collection: str) -> tuple[dict[str, State], list[str]]:
    """Every document (with its exact vector) by paging the listing; and the ids in order."""
    out: dict[str, State] = {}
    order: list[str] = []
    cursor = None
    for _ in range(10_000):
        params: dict[str, Any] = {"limit": 1000, "with_vectors": "true"}
        if cursor:
            params["cursor"] = cursor
        r = http.get(f"/v1/collections/{collection}/documents", params=params)
        assert r.status_code == 200, r.text
        page = r.json()
        for d in page["documents"]:
            vector = np.asarray(d["vector"], dtype=np.float32).tobytes()
            out[d["id"]] = (vector, d["text"], d["metadata"].get("v", -1))
            order.append(d["id"])
        cursor = page["next_cursor"]
        if cursor is None:
            return out, order
    raise AssertionError("listing did not end")


def verify(http: httpx.Client, journal: Journal, collection: str) -> list[str]:
    """I1-I5 through the API; returns the violations (empty = all hold). Resolves the
    ambiguous ops to what was observed, so the next round starts from the truth."""
    seen, order = observed_state(http, collection)
    problems = []
    if len(order) != len(set(order)):
        problems.append(f"I4 duplicate ids in the listing: {len(order) - len(set(order))}")
    phantoms = set(seen) - journal.sent
    if phantoms:
        problems.append(f"I4 phantom ids never sent: {sorted(phantoms)[:5]}")
    maybe = {i: op for op in journal.ambiguous for i in op.ids}
    for op in journal.ambiguous:
        problems += _check_all_or_nothing(op, seen, journal.acked)
        applied = all(seen.get(i) == s for i, s in zip(op.ids, op.new, strict=True))
        journal.count("ambiguous: applied" if applied else "ambiguous: not applied")
    for i in journal.sent:
        if i in maybe:
            continue
        if seen.get(i) != journal.acked.get(i):
            problems.append(
                f"I1/I2 {i}: acked {_show(journal.acked.get(i))}, found {_show(seen.get(i))}"
            )
    count = http.get(f"/v1/collections/{collection}").json()["count"]
    if count != len(seen):
        problems.append(f"I5 count {count} != {len(seen)} documents listed")
    problems += self_hits(http, collection, seen)
    for i in maybe:
        journal.acked[i] = seen.get(i)
    journal.ambiguous.clear()
    return problems


def _check_all_or_nothing(op: Op, seen: dict[str, State], acked: dict[str, State]) -> list[str]:
    applied = [seen.get(i) == new for i, new in zip(op.ids, op.new, strict=True)]
    before = [seen.get(i) == acked.get(i) for i in op.ids]
    if all(applied) or all(before):
        return []
    return [f"I3 {op.kind} {op.ids} half applied: applied={applied} unchanged={before}"]


def _show(s: State) -> str:
    return "absent" if s is None else f"v{s[2]}"


def self_hits(http: httpx.Client, collection: str, seen: dict[str, State]) -> list[str]:
    """I5: an exact search by each stored vector finds that document first."""
    problems = []
    items = [(i, s) for i, s in seen.items() if s is not None]
    for start in range(0, len(items), 256):
        chunk = items[start : start + 256]
        searches = [
            {"vector": np.frombuffer(s[0], dtype=np.float32).tolist(), "k": 1, "exact": True}
            for _, s in chunk
        ]
        r = http.post(f"/v1/collections/{collection}/search/batch", json={"searches": searches})
        assert r.status_code == 200, r.text
        for (i, _), res in zip(chunk, r.json()["results"], strict=True):
            top = res["hits"][0]["id"] if res["hits"] else None
            if top != i:
                problems.append(f"I5 search by {i}'s vector found {top} first")
    return problems


def run_writers(
    server: Server, journal: Journal, collection: str, threads: int, seed: int
) -> tuple[list[threading.Thread], threading.Event, list[httpx.Client]]:
    stop = threading.Event()
    clients = [server.client() for _ in range(threads)]
    workers = [
        threading.Thread(
            target=writer,
            args=(clients[t], journal, collection, t, stop, seed * 10 + t),
            daemon=True,
        )
        for t in range(threads)
    ]
    for w in workers:
        w.start()
    return workers, stop, clients


def join_writers(
    workers: list[threading.Thread], stop: threading.Event, clients: list[httpx.Client]
) -> None:
    stop.set()
    for w in workers:
        w.join(30)
        assert not w.is_alive(), "a writer thread did not stop"
    for c in clients:
        c.close()


def iter_batches(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# ---- in-process apps (TestClient) ------------------------------------------------------------
def http_settings(tmp: Path, **overrides: Any) -> Any:
    """Settings for an in-process app: hash embedder, no words, a fresh data directory."""
    from indexer import Settings

    values: dict[str, Any] = {
        "data_dir": tmp / "data",
        "embedder": "hash-384",
        "build_words": False,
        **overrides,
    }
    return Settings(**values)


def wait_ready(client: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while client.get("/readyz", headers=client.headers).status_code != 200:
        assert time.monotonic() < deadline, "app not ready"
        time.sleep(0.02)


DOCS = [
    {"id": "cat", "text": "the cat sat on the mat", "metadata": {"kind": "animal"}},
    {"id": "dog", "text": "the dog barked loudly", "metadata": {"kind": "animal"}},
    {"id": "car", "text": "a red car drove fast", "metadata": {"kind": "machine"}},
    {"id": "sun", "text": "the sun is a star", "metadata": {"kind": "sky"}},
]
