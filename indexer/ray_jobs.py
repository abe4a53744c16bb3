"""The build job on a Ray cluster: records -> Ray Dataset -> actor pool of embedders -> N shard
writers, each on the node that will serve its shard.

The same job as indexer/jobs.py, with the embedding and the writing spread over a cluster:

1. records are read and deduplicated here by the same readers as a local build (same bad-record
   reports, same line numbers), and each good record is assigned its shard `shard_of(id, n)`;
2. one `ShardWriter` actor per shard opens (or creates) `<data_dir>/<name>/shard-<i>` on its
   node: pinned by the custom resource `shard<i>` when the cluster has it (the resource the
   Serve deployment of that shard asks for, service/ray_serve.py), else on the driver's node
   (a one-node cluster: today's layout). Records whose (id, content hash) the writer already
   holds are skipped before any embedding, so a re-run resumes (the local job's hash);
3. the rest become a Ray Dataset; `map_batches` runs them through a pool of `EmbedActor`s, one
   model load per actor, with its torch threads set explicitly;
4. the actor that embedded a batch splits it by shard and sends each part straight to its
   shard's writer (`write_to_shards`), which upserts it through the local job's `_write` (a
   refused record is reported and the batch goes on). The actor's call returns when every
   writer has written its part, and returns only a report (counts, bad records, its node): the
   driver sees no vector, and a record counts as done only once it is written. (A separate
   `map_batches` stage of Ray tasks for the writes took 2-2.5x as long here: 400 hash docs in
   11.0 s against 4.5 s.)

`shards.json` (the collection-level manifest) is written in the driver's data dir (`serve --ray`
reads it there) and by every writer next to its shard, so each node's data dir is a sharded
collection of its own (the shards it holds; the others are on their nodes).

Records stream through the driver READ_CHUNK at a time (steps 1-4 per chunk), so the driver
never holds the corpus, and no vector passes through it. What this does not do yet: records are
read by the driver (one reader, not `ray.data.read_*` across nodes).

Ray is an optional extra: this module is the only one in `indexer` that imports it.
"""

from __future__ import annotations

import itertools
import json
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from . import errors, jobs
from .collection import Collection, DocumentIn
from .embed import load_embedder
from .engine import Engine
from .errors import InvalidInput, SpecMismatch, VPError
from .readers import BadRecord, Item, Record
from .settings import Settings
from .shards import SHARDS_FILE, read_shards_file, shard_names, shard_of, write_shards_file
from .store import content_hash

READ_CHUNK = 50_000  # records the driver reads before sending them to the cluster


@dataclass
class RayBuild:
    summary: jobs.BuildSummary
    shards: list[int] = field(default_factory=list)  # documents per shard afterwards
    nodes: dict[str, int] = field(default_factory=dict)  # node id -> records it embedded
    actors: int = 0
    writers: list[str] = field(default_factory=list)  # node id that wrote shard i
    pinned: list[bool] = field(default_factory=list)  # shard i's writer pinned by `shard<i>`


class EmbedActor:
    """One Ray actor of the pool: loads the embedder once, then embeds batch after batch and
    writes each to its shards (`write_to_shards`): only a report comes out of the pool."""

    def __init__(self, embedder: str, threads: int, batch_size: int, writers: list[Any]) -> None:
        import ray

        self.embedder = load_embedder(embedder, threads, batch_size)  # sets torch threads
        self.node = ray.get_runtime_context().get_node_id()
        self.writers = writers

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[str]]:
        records: list[Record] = list(batch["record"])
        vectors = self.embedder.embed([r.text for r in records]).astype(np.float32)
        report = write_to_shards(records, vectors, self.writers)
        if "error" not in report:
            report["nodes"] = {self.node: len(records)}
        return {"report": [json.dumps(report)]}


def write_to_shards(
    records: list[Record], vectors: NDArray[np.float32], writers: list[Any]
) -> dict[str, Any]:
    """Step 4, where the batch was embedded: each shard's part goes straight to its writer, and
    this returns once every writer has written its part. The report is what the driver gets:
    counts and bad records (or the first writer's engine error, as data), never a vector."""
    import ray

    calls = []
    for s, writer in enumerate(writers):
        at = [j for j, r in enumerate(records) if shard_of(r.id, len(writers)) == s]
        if at:
            calls.append(writer.write.remote([records[j] for j in at], vectors[at]))
    report: dict[str, Any] = {"records": len(records), "upserted": 0, "skipped": 0, "bad": []}
    for answer in ray.get(calls):
        if isinstance(answer, dict):  # {"error": ...}
            return answer
        upserted, skipped, bad = answer
        report["upserted"] += upserted
        report["skipped"] += skipped
        report["bad"] += [[b.line, b.reason, b.source] for b in bad]
    return report


class _Precomputed:
    """An embedder that answers with the vectors the Ray actors computed: the collection's own
    upsert then validates, hashes and stores exactly as in a local build."""

    def __init__(self, name: str, dim: int) -> None:
        self.name, self.dim = name, dim
        self.vectors: dict[str, NDArray[np.float32]] = {}

    def embed(self, texts: list[str]) -> NDArray[np.float32]:
        return np.stack([self.vectors[t] for t in texts]).astype(np.float32)


class _ShardSink:
    def __init__(self, col: Collection) -> None:
        self.col = col

    def upsert(self, docs: list[DocumentIn]) -> tuple[int, int]:
        out = self.col.upsert(docs, skip_unchanged=True)
        return out["upserted"], out["skipped"]


def _as_data(e: VPError) -> dict[str, Any]:
    return {"class": type(e).__name__, "detail": e.detail, "field": e.field}


def _raise(answer: Any) -> Any:
    """A writer's answer, or its engine error raised here as the class it was."""
    if isinstance(answer, dict) and "error" in answer:
        e = answer["error"]
        cls = getattr(errors, e["class"], VPError)
        raise cls(e["detail"], field=e["field"])
    return answer


def _tally(
    report: dict[str, Any],
    summary: jobs.BuildSummary,
    nodes: Counter[str],
    on_bad: Callable[[BadRecord], None] | None,
) -> int:
    """Add one written batch's report (`write_to_shards`) to the summary; its record count."""
    _raise(report)
    summary.upserted += report["upserted"]
    summary.skipped_unchanged += report["skipped"]
    nodes.update(report["nodes"])
    for line, reason, source in report["bad"]:
        summary.bad.append(BadRecord(line, reason, source))
        if on_bad:
            on_bad(summary.bad[-1])
    return int(report["records"])


def check_shards(root: Path, name: str, n: int) -> None:
    """Refuse to build n shards where a collection of another shape already is."""
    if (root / SHARDS_FILE).is_file():
        have = len(read_shards_file(root)["shards"])
        if have != n:
            raise SpecMismatch(
                f"collection {name!r} has {have} shards, not {n}: drop it or build into "
                "another collection",
                field="shards",
            )
    elif (root / "manifest.json").exists():
        raise SpecMismatch(f"collection {name!r} exists and is not sharded", field="shards")


def shards_info(name: str, n: int) -> dict[str, Any]:
    return {"name": name, "shards": shard_names(n), "partition": "blake2b-id"}


def ensure_shards_file(root: Path, name: str, n: int) -> None:
    """Write `<root>/shards.json` unless it is there already (a shared file system)."""
    root.mkdir(parents=True, exist_ok=True)
    if not (root / SHARDS_FILE).is_file():
        write_shards_file(root, shards_info(name, n))


class ShardWriter:
    """One shard's writer, a Ray actor on the node that will serve the shard. Engine errors
    come back as data (`_as_data`), so the driver raises them as the class they were."""

    def __init__(self, settings: Settings, name: str, n: int, shard: int, dim: int) -> None:
        import ray

        self.settings, self.name, self.n, self.shard, self.dim = settings, name, n, shard, dim
        self.node = ray.get_runtime_context().get_node_id()
        self.col: Collection | None = None

    def open(self, metric: str, index: str, params: dict[str, Any]) -> Any:
        """Create (or reuse, if the spec matches) this shard and shards.json on this node;
        returns (node id, the shard's embedder name)."""
        try:
            root = Path(self.settings.data_dir) / self.name
            check_shards(root, self.name, self.n)
            ensure_shards_file(root, self.name, self.n)
            shard = shard_names(self.n)[self.shard]
            inner = Engine(self.settings.model_copy(update={"data_dir": root}))
            try:
                jobs.open_or_create(inner, shard, metric, index, params, self.settings.embedder)
            finally:
                inner.close()
            lookup = _Precomputed(str(self.settings.embedder), self.dim)
            col = Collection(root / shard, lookup, self.settings.write_lock_timeout_s)  # type: ignore[arg-type]
            lookup.name = col.embedder_name or lookup.name
            self.col, self.lookup = col, lookup
            return self.node, lookup.name
        except VPError as e:
            return {"error": _as_data(e)}

    def content_hashes(self, ids: list[str]) -> dict[str, str]:
        assert self.col is not None
        hashes: dict[str, str] = self.col.store.content_hashes(ids)
        return hashes

    def write(self, records: list[Record], vectors: NDArray[np.float32]) -> Any:
        """Upsert these embedded records; returns (upserted, skipped, bad records)."""
        assert self.col is not None
        self.lookup.vectors = {r.text: v for r, v in zip(records, vectors, strict=True)}
        summary = jobs.BuildSummary()
        try:
            jobs._write(_ShardSink(self.col), records, summary, None)
        except VPError as e:
            return {"error": _as_data(e)}
        return summary.upserted, summary.skipped_unchanged, summary.bad

    def finish(self) -> int:
        """Publish what was written (even after an interruption) and close; the shard's count."""
        if self.col is None:
            return 0
        self.col.snapshot()
        count = self.col.count()
        self.col.close()
        self.col = None
        return count


def start_writers(settings: Settings, name: str, n: int, dim: int) -> tuple[list[Any], list[bool]]:
    """One ShardWriter per shard: on the node with `shard<i>` when the cluster has that
    resource, else on this (the driver's) node."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    have = ray.cluster_resources()  # type: ignore[no-untyped-call]
    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    actor = ray.remote(ShardWriter)
    writers, pinned = [], []
    for i in range(n):
        if have.get(f"shard{i}", 0) > 0:
            opts: dict[str, Any] = {"resources": {f"shard{i}": 0.01}}
        else:
            opts = {"scheduling_strategy": here}
        writers.append(actor.options(num_cpus=0, **opts).remote(settings, name, n, i, dim))
        pinned.append("resources" in opts)
    return writers, pinned


def build_ray(
    settings: Settings,
    collection: str,
    records: Iterable[Item],
    shards: int,
    address: str | None = "auto",
    batch_size: int = jobs.DEFAULT_BATCH,
    actors: int = 2,
    metric: str | None = None,
    index: str | None = None,
    params: dict[str, Any] | None = None,
    progress: Callable[[int], None] | None = None,
    on_bad: Callable[[BadRecord], None] | None = None,
    summary: jobs.BuildSummary | None = None,
) -> RayBuild:
    """Index `records` into the sharded collection `collection` with Ray (see the module doc)."""
    import ray

    summary = summary if summary is not None else jobs.BuildSummary()
    summary.collection = collection
    start = time.monotonic()
    if not 1 <= shards <= 256:
        raise InvalidInput("shards must be in [1, 256]", field="shards")
    root = Path(settings.data_dir) / collection
    check_shards(root, collection, shards)
    ensure_shards_file(root, collection, shards)  # the driver's copy: `serve --ray` reads it
    emb_name = str(settings.embedder)
    dim = load_embedder(emb_name, settings.embed_threads, settings.embed_batch_size).dim
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    writers, pinned = start_writers(settings, collection, shards, dim)
    counts: list[int] = []
    try:
        # one at a time: writers sharing a file system must not write shards.json at once
        opened = [
            _raise(ray.get(w.open.remote(metric or "cosine", index or "flat", params or {})))
            for w in writers
        ]
        written_by = [str(node) for node, _ in opened]
        emb_name = opened[0][1]

        nodes: Counter[str] = Counter()
        # the corpus streams through in chunks: the driver holds READ_CHUNK records at a time
        stream = iter(jobs.dedupe(records))
        while chunk := list(itertools.islice(stream, READ_CHUNK)):
            # 1-2: read, dedupe, report bad records, skip what each shard already holds
            pending: list[Record] = []
            for item in chunk:
                summary.read += 1
                if isinstance(item, BadRecord):
                    summary.bad.append(item)
                    if on_bad:
                        on_bad(item)
                else:
                    pending.append(item)
            mine = [[r for r in pending if shard_of(r.id, shards) == i] for i in range(shards)]
            stored = ray.get(
                [
                    w.content_hashes.remote([r.id for r in m])
                    for w, m in zip(writers, mine, strict=True)
                ]
            )
            todo: list[Record] = []
            for m, have in zip(mine, stored, strict=True):
                fresh = [r for r in m if have.get(r.id) != content_hash(r.text, r.metadata, None)]
                summary.skipped_unchanged += len(m) - len(fresh)
                todo += fresh
            if progress and len(chunk) - len(todo):
                progress(len(chunk) - len(todo))
            if not todo:
                continue
            # 3-4: embed on the cluster, and write each batch from there to its shards
            rows = [{"record": r} for r in todo]
            blocks = max(actors, min(-(-len(rows) // batch_size), 64))
            items = ray.data.from_items(rows, override_num_blocks=blocks)
            written = items.map_batches(
                EmbedActor,
                fn_constructor_kwargs={
                    "embedder": emb_name,
                    "threads": settings.embed_threads,
                    "batch_size": settings.embed_batch_size,
                    "writers": writers,
                },
                compute=ray.data.ActorPoolStrategy(size=actors),
                batch_size=batch_size,
                batch_format="numpy",
                num_cpus=1,
            )
            # the driver's side of the pipeline: one report per written batch, no vectors
            for batch in written.iter_batches(batch_size=None, batch_format="numpy"):
                for line in batch["report"]:
                    done = _tally(json.loads(line), summary, nodes, on_bad)
                    if progress:
                        progress(done)
    finally:
        counts = ray.get([w.finish.remote() for w in writers])  # publish, even when interrupted
        for w in writers:
            ray.kill(w)
        summary.seconds = time.monotonic() - start
    summary.total = sum(counts)
    return RayBuild(summary, counts, dict(nodes), actors, written_by, pinned)
