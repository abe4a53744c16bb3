"""The markdown table and the recall–QPS plot from a run's JSON.

python -m bench.report bench/results/bench.json
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any


def _runs(results: dict[str, Any], label: str, conns: int) -> list[dict[str, Any]]:
    return [r for r in results["runs"] if r["label"] == label and r["connections"] == conns]


def spread(values: list[float], fmt: str = "{:.0f}") -> str:
    """median (min–max)."""
    if not values:
        return "—"
    med = statistics.median(values)
    if len(values) == 1:
        return fmt.format(med)
    return f"{fmt.format(med)} ({fmt.format(min(values))}–{fmt.format(max(values))})"


def ratio(results: dict[str, Any], a: str, b: str, conns: int, key: str = "qps") -> list[float]:
    """a/b per round: both measured in the same round, minutes apart."""
    by_round_b = {r["round"]: r[key] for r in _runs(results, b, conns)}
    return [
        r[key] / by_round_b[r["round"]]
        for r in _runs(results, a, conns)
        if by_round_b.get(r["round"])
    ]


def goal_rows(res: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(goal, measured, target, met?)."""
    rows = []

    def add(
        goal: str, values: list[float], target: float, higher: bool, fmt: str = "{:.2f}x"
    ) -> None:
        if not values:
            rows.append((goal, "not measured", "", "—"))
            return
        med = statistics.median(values)
        ok = med >= target if higher else med <= target
        want = ("≥ " if higher else "≤ ") + fmt.format(target)
        rows.append((goal, spread(values, fmt), want, "met" if ok else "**missed**"))

    v95 = "ours, vector, recall>=0.95"
    add(
        "vector, recall ≥ 0.95, 8 conn: QPS vs Chroma",
        ratio(res, v95, "chroma, vector, recall>=0.95", 8),
        3.0,
        True,
    )
    add(
        "vector, recall ≥ 0.95, 8 conn: p99 vs Chroma",
        ratio(res, v95, "chroma, vector, recall>=0.95", 8, "p99_ms"),
        1.0,
        False,
    )
    add(
        "vector, recall ≥ 0.95, 8 conn: QPS vs 40-line reference",
        ratio(res, v95, "reference FastAPI+FAISS, vector, recall>=0.95", 8),
        0.9,
        True,
    )
    add(
        "vector, recall ≥ 0.99, 8 conn: QPS vs Chroma",
        ratio(res, "ours, vector, recall>=0.99", "chroma, vector, recall>=0.99", 8),
        3.0,
        True,
    )
    add(
        "text, 8 conn: QPS vs txtai (same 2k corpus, same model)",
        ratio(res, "ours, text, txtai's corpus", "txtai, text, txtai's corpus", 8),
        2.0,
        True,
    )
    # the same goals with N server processes (`serve --workers N`, ours and the reference)
    labels = {r["label"] for r in res.get("runs", [])}
    for w95 in sorted(x for x in labels if x.startswith("ours x") and x.endswith("recall>=0.95")):
        w = w95.split()[1]  # "x2"
        n = w[1:]
        add(
            f"vector, recall ≥ 0.95, 8 conn, {n} workers: QPS vs Chroma",
            ratio(res, w95, "chroma, vector, recall>=0.95", 8),
            3.0,
            True,
        )
        add(
            f"vector, recall ≥ 0.95, 8 conn, {n} workers: p99 vs Chroma",
            ratio(res, w95, "chroma, vector, recall>=0.95", 8, "p99_ms"),
            1.0,
            False,
        )
        add(
            f"vector, recall ≥ 0.95, 8 conn, {n} workers: QPS vs the reference with {n} workers",
            ratio(res, w95, f"reference FastAPI+FAISS {w} workers, vector, recall>=0.95", 8),
            0.9,
            True,
        )
        add(
            f"vector, recall ≥ 0.99, 8 conn, {n} workers: QPS vs Chroma",
            ratio(
                res, f"ours {w} workers, vector, recall>=0.99", "chroma, vector, recall>=0.99", 8
            ),
            3.0,
            True,
        )
        add(
            f"text, 8 conn, {n} workers: QPS vs txtai (same 2k corpus, same model)",
            ratio(res, f"ours {w} workers, text, txtai's corpus", "txtai, text, txtai's corpus", 8),
            2.0,
            True,
        )
    up = res.get("upsert", {})
    if "ours vectors" in up and "chroma vectors" in up:
        add(
            "upsert with vectors (HNSW): vectors/s vs Chroma",
            [up["ours vectors"]["per_s"] / up["chroma vectors"]["per_s"]],
            2.0,
            True,
        )
    if "ours texts" in up and "txtai texts" in up:
        add(
            "upsert with texts: texts/s vs txtai (not a goal)",
            [up["ours texts"]["per_s"] / up["txtai texts"]["per_s"]],
            1.0,
            True,
        )
    restart = res.get("restart", {}).get("ours", [])
    n = res.get("data", {}).get("corpus", 0)
    add(f"restart to ready with {n:,} documents (s)", restart, 2.0, False, "{:.1f}")
    disk = res.get("disk", {}).get("ours")
    if disk:
        raw = res["data"]["dim"] * 4 + res["data"]["text_bytes_mean"]
        add("bytes on disk per vector vs float32 + text", [disk["per_vector"] / raw], 1.3, False)
    exact = "ours, vector, exact (flat scan)"
    per_round = ratio(res, exact, "in-process flat scan", 1, "p50_ms")
    flat_ms = res.get("floor", {}).get("flat", {}).get("ms_per_query")
    if not per_round and flat_ms:  # older results: the floor measured once, at the start
        per_round = [r["p50_ms"] / flat_ms for r in _runs(res, exact, 1)]
    if per_round:
        add("exact search over HTTP (p50, 1 conn) vs in-process flat scan", per_round, 1.2, False)
    pairs = res.get("exact_interleaved", [])
    if pairs:
        add(
            "exact search over HTTP vs the flat scan, query by query in turn (median)",
            [p["http_ms"] / p["scan_ms"] for p in pairs],
            1.2,
            False,
        )
    emb = res.get("embedding")
    if emb and emb.get("speedup"):
        add(
            f"embedding throughput vs sentence-transformers defaults ({emb['best']}, "
            "agreement ≥ 0.98)",
            [emb["speedup"]],
            1.8,
            True,
        )
    return rows


def markdown(res: dict[str, Any]) -> str:
    m = res.get("meta", {})
    d = res.get("data", {})
    lines = [
        f"Run: `{m.get('command', 'make bench')}` on {m.get('date', '?')}, "
        f"{m.get('machine', '?')}, "
        f"commit {m.get('commit', '?')}; load by {m.get('load_tool', '?')}, {m.get('rounds')} "
        f"interleaved rounds of {m.get('seconds')} s per run. Corpus: {d.get('corpus', 0):,} "
        f"real {d.get('dim')}-d vectors ({d.get('embedder')}) of short texts, "
        f"{d.get('queries', 0):,} held-out queries, truth = exact top-10 by cosine; ours "
        f"embeds texts with VP_EMBED_BACKEND={m.get('embed_backend', 'fp32')}. "
        "Figures are medians (min–max over rounds); ratios are taken within a round.",
        "",
        "| goal | measured | target | |",
        "|---|---|---|---|",
    ]
    lines += [f"| {g} | {v} | {t} | {ok} |" for g, v, t, ok in goal_rows(res)]
    lines += [
        "",
        "| target | conn | QPS | p50 ms | p99 ms | server CPU ms/request | errors |",
        "|---|---|---|---|---|---|---|",
    ]
    labels = list(dict.fromkeys(r["label"] for r in res.get("runs", [])))
    for label in labels:
        for conns in (1, 8):
            runs = _runs(res, label, conns)
            if runs:
                lines.append(
                    f"| {label} | {conns} | {spread([r['qps'] for r in runs])} | "
                    f"{spread([r['p50_ms'] for r in runs], '{:.1f}')} | "
                    f"{spread([r['p99_ms'] for r in runs], '{:.1f}')} | "
                    f"{spread([r.get('cpu_ms', 0.0) for r in runs], '{:.2f}')} | "
                    f"{sum(r['errors'] for r in runs)} |"
                )
    lines += ["", "| ef_search chosen | recall ≥ 0.95 | recall ≥ 0.99 |", "|---|---|---|"]
    for name, picks in res.get("ef", {}).items():
        cells = [
            f"{p['ef']} (recall {p['recall']:.3f}{'' if p['reached'] else ', not reached'})"
            for p in picks.values()
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    fl = res.get("floor", {})
    if fl:
        lines += [
            "",
            f"In-process floors (one thread, one query at a time): exact flat scan "
            f"{fl['flat']['ms_per_query']:.2f} ms per query; FAISS HNSW32 "
            + ", ".join(
                f"ef {p['ef']}: recall {p['recall']:.3f} at {p['qps']:.0f} q/s"
                for p in fl.get("hnsw32", [])
                if p["ef"] in (16, 32, 64, 128)
            ),
        ]
    up = res.get("upsert", {})
    if up:
        lines += [
            "",
            "Upserts: "
            + "; ".join(
                f"{k} {v['per_s']:.0f}/s ({v['n']:,} in batches of {v['batch']})"
                for k, v in up.items()
            ),
        ]
    mem, disk = res.get("memory", {}), res.get("disk", {})
    if mem:
        lines += [
            "",
            "RSS after the run (MiB): "
            + ", ".join(f"{k} {v:.0f}" for k, v in mem.items())
            + ". Disk: "
            + ", ".join(f"{k} {v['per_vector']:.0f} B/vector" for k, v in disk.items())
            + f" (float32 + text = {d.get('dim', 0) * 4 + d.get('text_bytes_mean', 0):.0f} B)",
        ]
    rs = res.get("restart", {})
    if rs:
        lines += [
            "",
            "Restart to ready (s): "
            + "; ".join(f"{k} {spread(v, '{:.1f}')}" for k, v in rs.items()),
        ]
    emb = res.get("embedding")
    if emb:
        lines += [
            "",
            "Embedding (texts/s, top-10 agreement with fp32): "
            + "; ".join(
                f"{b['name']} {b['per_s']:.0f}/s ({b.get('agreement', 1.0):.3f})"
                for b in emb["backends"]
            ),
        ]
    return "\n".join(lines) + "\n"


def plot(res: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    curves = dict(res.get("curves", {}))
    if res.get("floor", {}).get("hnsw32"):
        curves["FAISS HNSW32 in-process (1 thread)"] = res["floor"]["hnsw32"]
    for name, pts in curves.items():
        pts = sorted(pts, key=lambda p: p["ef"])
        label = name if "in-process" in name else f"{name} over HTTP (8 conn)"
        ax.plot([p["recall"] for p in pts], [p["qps"] for p in pts], "o-", label=label, ms=3)
    for goal in (0.95, 0.99):
        ax.axvline(goal, color="grey", lw=0.6, ls="--")
    ax.set_xlabel("recall@10")
    ax.set_ylabel("queries per second (log)")
    ax.set_yscale("log")
    ax.set_title(f"recall–QPS, {res.get('data', {}).get('corpus', 0):,} vectors")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(res: dict[str, Any], out: Path) -> None:
    (out / "bench.md").write_text(markdown(res))
    plot(res, out / "recall_qps.png")


if __name__ == "__main__":
    src = Path(sys.argv[1] if len(sys.argv) > 1 else "bench/results/bench.json")
    write(json.loads(src.read_text()), src.parent)
