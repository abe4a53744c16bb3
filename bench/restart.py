"""Restart to ready with ~100k documents: the issue's corpus for this goal (the 58k short texts
plus the SciFact abstracts split into sentences), loaded into our service over HTTP, then
stopped (SIGTERM) and started again `--rounds` times; ready = /readyz 200 and a first vector
search answered, as in `bench.run`.

    python -m bench.restart                  # ~5 min once the vectors are cached
    python -m bench.restart --limit 20000    # fewer SciFact sentences

The sentences are embedded once (cached beside the short texts' vectors) by the service's
OpenVINO embedder (`all-MiniLM-L6-v2+openvino`, cosine >= 0.9999 to fp32): for a restart, any
real vectors of the model do."""

from __future__ import annotations

import argparse
import gzip
import json
import re
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench import data
from bench.run import log
from bench.servers import Server, free_port
from bench.targets import Ours, encoded, send

SCIFACT = data.SHARED_DATA / "scifact" / "corpus.jsonl.gz"
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9])")


def scifact_sentences(path: Path = SCIFACT) -> list[str]:
    """Each abstract of the SciFact corpus cut into sentences (at . ! ? before a capital)."""
    out = []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            text = json.loads(line).get("text", "")
            out += [s.strip() for s in _SENTENCE.split(text) if len(s.strip()) > 3]
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.restart", description=__doc__.splitlines()[0])
    p.add_argument("--limit", type=int, help="SciFact sentences to add (default: all)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--batch", type=int, default=1000)
    p.add_argument("--texts", default=str(data.SHORT_TEXTS))
    p.add_argument("--scifact", default=str(SCIFACT))
    p.add_argument("--embedder", default=data.MODEL)
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--cache", default=str(data.CACHE))
    p.add_argument("--work", default=str(data.CACHE / "restart"))
    p.add_argument("--out", default=str(data.REPO / "bench" / "results"))
    a = p.parse_args(argv)

    cache = Path(a.cache)
    ds = data.load(n_queries=a.queries, path=Path(a.texts), embedder=a.embedder, cache=cache)
    sentences = scifact_sentences(Path(a.scifact))[: a.limit]
    fast = a.embedder + "+openvino" if a.embedder == data.MODEL else a.embedder
    extra = data.unit(data.embed_cached(sentences, fast, cache))
    ids = ds.ids + [f"s{i}" for i in range(len(sentences))]
    texts = ds.texts + sentences
    vectors = np.concatenate([ds.vectors, extra])
    log(f"corpus: {len(ids):,} documents ({len(ds.ids):,} short texts + {len(sentences):,} "
        "SciFact sentences)")  # fmt: skip

    work = Path(a.work)
    shutil.rmtree(work, ignore_errors=True)
    (work / "logs").mkdir(parents=True)
    port = free_port()
    env = {
        "VP_BUILD_WORDS": "false",
        "VP_DATA_DIR": str(work / "data"),
        "VP_EMBED_BACKEND": "auto",
        "VP_EMBEDDER": a.embedder,
        "PYTHONPATH": str(data.REPO),
    }
    argv_ = [sys.executable, "-m", "service", "serve", "--port", str(port)]

    def server() -> Server:
        log_file = work / "logs" / "ours.log"
        return Server("ours", argv_, port, "/readyz", env, log_file, cwd=data.REPO)

    ours_server = server().start()
    ours_server.wait_ready(600)
    ours = Ours(ours_server.base, "bench")
    ours.create("hnsw")
    t0 = time.perf_counter()
    for start in range(0, len(ids), a.batch):
        sl = slice(start, start + a.batch)
        send(ours.client, ours.upsert_req(ids[sl], texts[sl], vectors[sl]))
    load_s = time.perf_counter() - t0
    assert ours.count() == len(ids)
    log(f"loaded in {load_s:.0f} s ({len(ids) / load_s:.0f} documents/s)")
    probe = encoded("POST", "/v1/collections/bench/search", {"vector": ds.queries[0].tolist()})
    times: list[float] = []
    for r in range(a.rounds):
        ours_server.stop(timeout=180)  # a clean stop writes the snapshots
        t0 = time.perf_counter()
        ours_server = server().start()
        ours_server.wait_ready(600)
        send(Ours(ours_server.base, "bench").client, probe)
        times.append(time.perf_counter() - t0)
        log(f"round {r}: ready and a first search in {times[-1]:.2f} s")
    ours_server.stop(timeout=180)
    disk = sum(f.stat().st_size for f in (work / "data").rglob("*") if f.is_file())
    res: dict[str, Any] = {
        "documents": len(ids),
        "restart_s": times,
        "median_s": statistics.median(times),
        "load_per_s": len(ids) / load_s,
        "disk_bytes_per_document": disk / len(ids),
    }
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "restart.json").write_text(json.dumps(res, indent=1))
    print(
        f"restart to ready with {len(ids):,} documents: {res['median_s']:.2f} s median "
        f"({min(times):.2f}-{max(times):.2f}, {a.rounds} rounds; goal <= 2 s)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
