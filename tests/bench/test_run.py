"""`make bench` end to end on tiny data with our own stack only (peers are skipped): every
target starts, recall is measured over HTTP, and the table and the plot are written."""

from __future__ import annotations

import json
from pathlib import Path

from bench import run


def test_harness_writes_table_and_plot(tiny_texts: Path, tmp_path: Path) -> None:
    out = tmp_path / "results"
    argv = [
        "--texts", str(tiny_texts), "--embedder", "hash-384", "--queries", "20",
        "--rounds", "1", "--seconds", "0.3", "--curve-seconds", "0.2", "--load-tool", "python",
        "--ef-grid", "16", "64", "--batch", "100", "--text-docs", "50", "--peers",
        "--cache", str(tmp_path / "cache"), "--work", str(tmp_path / "work"), "--out", str(out),
    ]  # fmt: skip
    assert run.main(argv) == 0
    res = json.loads((out / "bench.json").read_text())
    assert res["data"]["corpus"] == 280
    assert {"reference", "ours"} <= set(res["curves"])
    for points in res["curves"].values():
        assert all(0.5 <= p["recall"] <= 1 for p in points)
    labels = {r["label"] for r in res["runs"]}
    assert "ours, vector, recall>=0.95" in labels and "empty FastAPI endpoint" in labels
    assert all(r["errors"] == 0 and r["requests"] > 0 for r in res["runs"])
    assert res["upsert"]["ours vectors"]["n"] == 280
    assert len(res["restart"]["ours"]) == 1  # one per round
    (pair,) = res["exact_interleaved"]
    assert pair["scan_ms"] > 0 and pair["http_ms"] > 0
    assert "ours x2 workers, vector, recall>=0.95" in labels
    assert "reference FastAPI+FAISS x2 workers, vector, recall>=0.95" in labels
    assert res["disk"]["ours"]["per_vector"] > 384 * 4
    table = (out / "bench.md").read_text()
    assert "| goal | measured | target |" in table and "restart to ready" in table
    assert "2 workers: QPS vs the reference with 2 workers" in table
    assert (out / "recall_qps.png").read_bytes()[:4] == b"\x89PNG"
