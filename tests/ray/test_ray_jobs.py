"""The Ray build equals the local build: same ids, same vectors, same bad records, same search
results; a re-run embeds nothing. One local Ray node (tests/ray/conftest.py)."""

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from indexer import Engine, Query, Settings
from indexer.jobs import build
from indexer.ray_jobs import build_ray
from indexer.readers import BadRecord, Item, Record
from indexer.shards import ShardedCollection

pytestmark = pytest.mark.slow


def corpus(n: int) -> list[Item]:
    items: list[Item] = [
        Record(i + 1, f"d{i}", f"document {i} about topic {i % 7} and {i % 5}", {"t": i % 3})
        for i in range(n)
    ]
    items[10] = Record(11, "x" * 600, "an id longer than the engine allows", {}, "in.jsonl")
    items.insert(20, BadRecord(99, "malformed JSON", "in.jsonl"))
    items.append(Record(n + 2, "d5", "a duplicate id", {}))
    return items


def test_ray_build_equals_local_build_and_resumes(tmp_path: Path, local_ray: Any) -> None:
    settings = Settings(data_dir=tmp_path / "data", embedder="hash-384")
    eng = Engine(settings)
    local = build(eng, "local", corpus(400), batch_size=64)
    seen: list[BadRecord] = []
    out = build_ray(
        settings, "sharded", corpus(400), shards=2, batch_size=64, actors=2, on_bad=seen.append
    )
    s = out.summary
    assert (s.read, s.upserted, s.skipped_unchanged) == (local.read, local.upserted, 0)
    assert sorted(b.line for b in s.bad) == sorted(b.line for b in local.bad) == [11, 99, 402]
    assert len(seen) == 3 and s.total == local.total == 399
    assert all(c > 150 for c in out.shards)
    # one writer per shard, pinned by the node's shard<i> resource (conftest gives it both)
    assert out.pinned == [True, True] and len(out.writers) == 2

    col = eng.collection("sharded")
    whole = eng.collection("local")
    assert isinstance(col, ShardedCollection)
    ids = {d.id for shard in col.shards for d in shard.store.page(10_000, None)}
    assert ids == {d.id for d in whole.store.page(10_000, None)}
    for doc_id in ("d0", "d123", "d399"):  # the distributed vector is the in-process one
        a, b = col.get(doc_id).vector, whole.get(doc_id).vector
        assert float(a @ b / np.linalg.norm(a) / np.linalg.norm(b)) > 0.9999
    for q in (Query(text="topic 3 and 4", k=10), Query(text="document", k=20, filter={"t": 2})):
        assert [h.score for h in col.search(q)] == pytest.approx(
            [h.score for h in whole.search(q)], abs=1e-6
        )

    again = build_ray(settings, "sharded", corpus(400), shards=2, batch_size=64)
    assert (again.summary.upserted, again.summary.skipped_unchanged) == (0, 399)
    # only the record the engine refused goes to the cluster again (and is refused again)
    assert sum(again.nodes.values()) == 1 and len(again.summary.bad) == 3
    eng.close()


def test_ray_build_without_shard_resources_writes_on_the_driver_node(
    tmp_path: Path, local_ray: Any
) -> None:
    """Three shards on a node with only shard0/shard1: shard 2's writer runs on the driver's
    node (unpinned), and the result still equals the local build."""
    settings = Settings(data_dir=tmp_path / "data", embedder="hash-384")
    out = build_ray(settings, "three", corpus(120), shards=3, batch_size=32)
    here = local_ray.get_runtime_context().get_node_id()
    assert out.pinned == [True, True, False] and out.writers == [here] * 3
    eng = Engine(settings)
    local = build(eng, "local", corpus(120), batch_size=32)
    col = eng.collection("three")
    assert sum(out.shards) == col.count() == local.total == 119
    for shard in range(3):
        assert (tmp_path / "data" / "three" / f"shard-{shard}" / "manifest.json").is_file()
    q = Query(text="topic 2", k=15)
    assert [h.score for h in col.search(q)] == pytest.approx(
        [h.score for h in eng.collection("local").search(q)], abs=1e-6
    )
    eng.close()


def test_the_corpus_streams_through_the_driver_in_chunks(
    tmp_path: Path, local_ray: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A corpus read in chunks of 70 (the driver never holds it whole) gives what the local
    build gives: the same bad records (a duplicate id 380 records after the first included),
    the same documents and vectors; progress counts every record once."""
    import indexer.ray_jobs as ray_jobs

    monkeypatch.setattr(ray_jobs, "READ_CHUNK", 70)
    settings = Settings(data_dir=tmp_path / "data", embedder="hash-384")
    eng = Engine(settings)
    local = build(eng, "local", corpus(400), batch_size=64)
    ticks: list[int] = []
    out = build_ray(
        settings, "sharded", corpus(400), shards=2, batch_size=32, progress=ticks.append
    )
    s = out.summary
    assert (s.read, s.upserted, s.total) == (local.read, local.upserted, local.total)
    assert sorted(b.line for b in s.bad) == sorted(b.line for b in local.bad)
    assert sum(ticks) == s.read  # each record once: skipped and bad ones per chunk, the rest
    col, whole = eng.collection("sharded"), eng.collection("local")
    assert col.count() == whole.count()
    for doc_id in ("d0", "d69", "d70", "d399"):  # both sides of chunk boundaries
        assert np.allclose(col.get(doc_id).vector, whole.get(doc_id).vector, atol=1e-6)


def test_no_vector_comes_back_to_the_driver(
    tmp_path: Path, local_ray: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The embedders send each batch's vectors to the shard writers themselves: what the
    driver's iteration over the pipeline yields is reports (counts, bad records), no column of
    vectors; the vectors still arrive, equal to the local build's."""
    seen: list[dict[str, tuple[str, tuple[int, ...]]]] = []
    iter_batches = local_ray.data.Dataset.iter_batches

    def spy(self: Any, *args: Any, **kwargs: Any) -> Any:
        for batch in iter_batches(self, *args, **kwargs):
            seen.append(
                {k: (np.asarray(v).dtype.kind, np.asarray(v).shape) for k, v in batch.items()}
            )
            yield batch

    monkeypatch.setattr(local_ray.data.Dataset, "iter_batches", spy)
    monkeypatch.setattr(local_ray.data.Dataset, "iter_rows", None)  # no other way round
    settings = Settings(data_dir=tmp_path / "data", embedder="hash-384")
    out = build_ray(settings, "sharded", corpus(120), shards=2, batch_size=32)
    assert seen and out.summary.upserted == 119 and len(out.summary.bad) == 3
    for columns in seen:
        assert "vector" not in columns
        assert all(kind != "f" for kind, _ in columns.values())  # no float array of any name
    eng = Engine(settings)
    local = build(eng, "local", corpus(120), batch_size=32)
    assert eng.collection("sharded").count() == local.total == 119
    for doc_id in ("d0", "d57", "d119"):
        a = eng.collection("sharded").get(doc_id).vector
        assert np.allclose(a, eng.collection("local").get(doc_id).vector, atol=1e-6)
    eng.close()
