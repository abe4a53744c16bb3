"""`python -m bench.restart` end to end on tiny data (hash embedder, a synthetic SciFact file):
the corpus is short texts plus SciFact sentences, loaded over HTTP, and each restart is timed."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from bench import restart


def test_restart_bench_loads_the_corpus_and_times_each_restart(
    tiny_texts: Path, tmp_path: Path
) -> None:
    scifact = tmp_path / "corpus.jsonl.gz"
    with gzip.open(scifact, "wt", encoding="utf-8") as f:
        for i in range(20):
            text = f"Cats sleep a lot in study {i}. Dogs bark at night. Rivers flood in spring."
            f.write(json.dumps({"_id": str(i), "title": "t", "text": text}) + "\n")
    assert restart.scifact_sentences(scifact)[:3] == [
        "Cats sleep a lot in study 0.",
        "Dogs bark at night.",
        "Rivers flood in spring.",
    ]
    out = tmp_path / "results"
    argv = [
        "--texts", str(tiny_texts), "--scifact", str(scifact), "--embedder", "hash-384",
        "--queries", "20", "--rounds", "2", "--batch", "100", "--cache", str(tmp_path / "cache"),
        "--work", str(tmp_path / "work"), "--out", str(out),
    ]  # fmt: skip
    assert restart.main(argv) == 0
    res = json.loads((out / "restart.json").read_text())
    assert res["documents"] == 280 + 60
    assert len(res["restart_s"]) == 2 and all(t > 0 for t in res["restart_s"])
    assert res["disk_bytes_per_document"] > 384 * 4
