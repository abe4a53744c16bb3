"""The local build job vs the Ray build job on the same corpus (issue 9), on this machine.

    python -m bench.ray_vs_local --docs 2000 --embedder hash-384
    python -m bench.ray_vs_local --docs 1000 --embedder all-MiniLM-L6-v2

Reports docs/s for each and Ray's start-up overhead (ray.init, plus the first batch, which
includes one model load per actor). On one small machine Ray is not expected to be faster: the
actors share the same cores, and records cross process boundaries. The point is that the same
command scales out when the cluster has more machines.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from indexer import Engine, Settings
from indexer.jobs import build
from indexer.ray_jobs import build_ray
from indexer.readers import Record


def corpus(n: int) -> list[Record]:
    words = ["vector", "search", "shows", "its", "math", "cosine", "query", "shard", "ray"]
    return [
        Record(i + 1, f"d{i}", " ".join(words[(i * j) % len(words)] for j in range(1, 24)), {})
        for i in range(n)
    ]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--docs", type=int, default=2000)
    p.add_argument("--embedder", default="hash-384")
    p.add_argument("--shards", type=int, default=2)
    p.add_argument("--actors", type=int, default=2)
    p.add_argument("--cpus", type=int, default=2, help="CPUs the local Ray node may use")
    p.add_argument("--out", type=Path, help="write the JSON result here too")
    args = p.parse_args()
    import ray

    with tempfile.TemporaryDirectory(prefix="vp-ray-bench") as tmp:
        settings = Settings(data_dir=Path(tmp), embedder=args.embedder)
        engine = Engine(settings)
        engine.embedder()  # load the model before the clock starts, as a running service has
        t0 = time.perf_counter()
        local = build(engine, "local", corpus(args.docs))
        local_s = time.perf_counter() - t0
        engine.close()

        t0 = time.perf_counter()
        ray.init(
            num_cpus=args.cpus,
            object_store_memory=100 * 2**20,
            include_dashboard=False,
            log_to_driver=False,
        )
        init_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        out = build_ray(settings, "sharded", corpus(args.docs), args.shards, actors=args.actors)
        ray_s = time.perf_counter() - t0
        ray.shutdown()
    result = {
        "docs": args.docs,
        "embedder": args.embedder,
        "local": {"seconds": round(local_s, 2), "docs_per_s": round(local.upserted / local_s, 1)},
        "ray": {
            "init_seconds": round(init_s, 2),
            "job_seconds": round(ray_s, 2),
            "docs_per_s": round(out.summary.upserted / ray_s, 1),
            "shards": out.shards,
            "actors": out.actors,
        },
    }
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
