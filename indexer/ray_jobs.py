"""The build job on a Ray cluster: records -> Ray Dataset -> actor pool of embedders -> N shards.

The same job as indexer/jobs.py, with the embedding spread over a cluster:

1. records are read and deduplicated here by the same readers as a local build (same bad-record
   reports, same line numbers), and each good record is assigned its shard `shard_of(id, n)`;
2. records whose (id, content hash) are already stored in their shard are skipped before any
   embedding, so a re-run resumes (the hash is the local job's: text + metadata);
3. the rest become a Ray Dataset; `map_batches` runs them through a pool of `EmbedActor`s, one
   model load per actor, with its torch threads set explicitly;
4. the vectors come back here and are upserted into the shard collections in batches, through
   the local job's `_write` (a refused record is reported and the batch goes on). Each shard is
   a complete collection in the usual durable format; `shards.json` names them.

What this does not do yet: records are read by the driver (one reader, not `ray.data.read_*`
across nodes) and written by the driver (the shards land in the driver's data directory).

Ray is an optional extra: this module is the only one in `indexer` that imports it.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from . import jobs
from .collection import Collection, DocumentIn
from .embed import load_embedder
from .engine import Engine
from .errors import InvalidInput, SpecMismatch
from .readers import BadRecord, Item, Record
from .settings import Settings
from .shards import SHARDS_FILE, read_shards_file, shard_names, shard_of, write_shards_file
from .store import content_hash


@dataclass
class RayBuild:
    summary: jobs.BuildSummary
    shards: list[int] = field(default_factory=list)  # documents per shard afterwards
    nodes: dict[str, int] = field(default_factory=dict)  # node id -> records it embedded
    actors: int = 0


class EmbedActor:
    """One Ray actor of the pool: loads the embedder once, then embeds batch after batch."""

    def __init__(self, embedder: str, threads: int, batch_size: int) -> None:
        import ray

        self.embedder = load_embedder(embedder, threads, batch_size)  # sets torch threads
        self.node = ray.get_runtime_context().get_node_id()

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        texts = [str(t) for t in batch["text"]]
        vectors = self.embedder.embed(texts).astype(np.float32)
        return {"idx": batch["idx"], "vector": vectors, "node": [self.node] * len(texts)}


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


def open_shards(
    settings: Settings, name: str, n: int, metric: str, index: str, params: dict[str, Any]
) -> list[Path]:
    """Create (or reuse, if the spec matches) the N shard collections of `name` and its
    shards.json; returns the shard folders."""
    root = Path(settings.data_dir) / name
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
    root.mkdir(parents=True, exist_ok=True)
    inner = Engine(settings.model_copy(update={"data_dir": root}))
    try:
        for shard in shard_names(n):
            jobs.open_or_create(inner, shard, metric, index, params, settings.embedder)
    finally:
        inner.close()
    write_shards_file(root, {"name": name, "shards": shard_names(n), "partition": "blake2b-id"})
    return [root / s for s in shard_names(n)]


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
    paths = open_shards(
        settings, collection, shards, metric or "cosine", index or "flat", params or {}
    )
    emb_name = str(settings.embedder)
    dim = load_embedder(emb_name, settings.embed_threads, settings.embed_batch_size).dim
    lookup = _Precomputed(emb_name, dim)
    cols = [Collection(p, lookup, settings.write_lock_timeout_s) for p in paths]  # type: ignore[arg-type]
    emb_name = cols[0].embedder_name or emb_name
    try:
        # 1-2: read, dedupe, report bad records, skip what each shard already holds
        pending: list[Record] = []
        for item in jobs.dedupe(records):
            summary.read += 1
            if isinstance(item, BadRecord):
                summary.bad.append(item)
                if on_bad:
                    on_bad(item)
            else:
                pending.append(item)
        todo: list[Record] = []
        for i, col in enumerate(cols):
            mine = [r for r in pending if shard_of(r.id, shards) == i]
            stored = col.store.content_hashes([r.id for r in mine])
            fresh = [r for r in mine if stored.get(r.id) != content_hash(r.text, r.metadata, None)]
            summary.skipped_unchanged += len(mine) - len(fresh)
            todo += fresh
        if progress and summary.read - len(todo):
            progress(summary.read - len(todo))
        nodes: Counter[str] = Counter()
        if todo:
            if not ray.is_initialized():
                ray.init(address=address, include_dashboard=False, log_to_driver=False)
            # 3: embed on the cluster
            rows = [{"idx": i, "text": r.text} for i, r in enumerate(todo)]
            blocks = max(actors, min(-(-len(rows) // batch_size), 64))
            items = ray.data.from_items(rows, override_num_blocks=blocks)
            ds = items.map_batches(
                EmbedActor,
                fn_constructor_kwargs={
                    "embedder": emb_name,
                    "threads": settings.embed_threads,
                    "batch_size": settings.embed_batch_size,
                },
                compute=ray.data.ActorPoolStrategy(size=actors),
                batch_size=batch_size,
                batch_format="numpy",
                num_cpus=1,
            )
            # 4: write each embedded batch into its shards as it arrives
            for batch in ds.iter_batches(batch_size=batch_size, batch_format="numpy"):
                recs = [todo[int(i)] for i in batch["idx"]]
                lookup.vectors = {
                    r.text: np.asarray(v, np.float32)
                    for r, v in zip(recs, batch["vector"], strict=True)
                }
                nodes.update(str(n) for n in batch["node"])
                for s, col in enumerate(cols):
                    mine = [r for r in recs if shard_of(r.id, shards) == s]
                    if mine:
                        jobs._write(_ShardSink(col), mine, summary, on_bad)
                if progress:
                    progress(len(recs))
    finally:
        for col in cols:
            col.snapshot()  # publish what was done, even when interrupted
        summary.seconds = time.monotonic() - start
    counts = [col.count() for col in cols]
    for col in cols:
        col.close()
    summary.total = sum(counts)
    return RayBuild(summary, counts, dict(nodes), actors)
