"""R15: the format-1 data directory kept in tests/fixtures/storage_v1 (made once by
tests/fixtures/make_storage_v1.py, never regenerated to make this pass) opens in this version and
answers its known queries exactly; a manifest that disagrees with the data is refused with an
explicit error, never read as something else (Qdrant's storage-compatibility pattern)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from indexer import DocumentIn, Engine, Query, Settings
from indexer.errors import CorruptCollection, EmbedderMismatch, SpecMismatch
from indexer.store import FORMAT_VERSION

from .storage_support import ROOT, index_problems, stored_docs

FIXTURE = ROOT / "tests" / "fixtures" / "storage_v1"
EXPECTED: dict[str, Any] = json.loads((FIXTURE.parent / "storage_v1.json").read_text())


def _point_queries() -> list[Query]:
    rng = np.random.default_rng(7)  # as make_storage_v1.point_queries
    return [Query(vector=rng.normal(size=8).tolist(), k=5) for _ in range(4)]


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """A copy: opening writes SQLite's -wal/-shm files, and the fixture must stay as made."""
    shutil.copytree(FIXTURE, tmp_path / "data")
    return tmp_path / "data"


def _engine(data: Path) -> Engine:
    return Engine(Settings(data_dir=data, embedder="hash-384"))  # not the fixture's embedder


def _same(got: list[list[Any]], want: list[list[Any]]) -> bool:
    return [g[0] for g in got] == [w[0] for w in want] and np.allclose(
        [g[1] for g in got], [w[1] for w in want], atol=1e-6
    )


def test_the_format_1_fixture_opens_and_answers_its_queries(data: Path) -> None:
    assert json.loads((FIXTURE / "notes" / "manifest.json").read_text())["format_version"] == 1
    assert FORMAT_VERSION >= 1
    engine = _engine(data)
    assert sorted(c["name"] for c in engine.list_collections()) == ["notes", "points"]
    for name, want in EXPECTED.items():
        col = engine.collection(name)
        docs = stored_docs(col)
        assert col.count() == want["count"] and col.seq == want["seq"]
        digests = {d: hashlib.sha256(doc.vector.tobytes()).hexdigest() for d, doc in docs.items()}
        assert digests == want["vectors"], f"{name}: stored vectors changed"
        assert {d: [doc.text, doc.metadata] for d, doc in docs.items()} == want["texts"]
        assert not index_problems(col, docs)
        if name == "notes":
            queries = [Query(text=q, k=5) for q in want["queries"]]
        else:
            queries = _point_queries()
            assert col.snapshot_seq == want["snapshot_seq"], "the fixture's snapshot not adopted"
        for q, answer in zip(queries, want["answers"], strict=True):
            got = [[h.id, h.score] for h in col.search(q)]
            assert _same(got, answer), f"{name}: {got} != {answer}"


def test_the_fixture_takes_writes_after_opening(data: Path) -> None:
    engine = _engine(data)
    notes = engine.collection("notes")
    notes.upsert([DocumentIn(id="new", text="a brand new note about cats")])
    assert notes.search(Query(text="a brand new note about cats", k=1))[0].id == "new"
    points = engine.collection("points")
    points.delete(ids=["p0"])
    points.upsert([DocumentIn(id="q", vector=np.ones(8))])
    engine.close()
    again = _engine(data)
    assert again.collection("notes").count() == EXPECTED["notes"]["count"] + 1
    assert again.collection("points").count() == EXPECTED["points"]["count"]


def _edit(data: Path, name: str, **fields: Any) -> None:
    path = data / name / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest.update(fields)
    path.write_text(json.dumps(manifest))


@pytest.mark.parametrize(
    ("name", "fields", "error", "says"),
    [
        ("points", {"dim": 16}, CorruptCollection, "fails its checksum"),
        ("points", {"metric": "cosine"}, CorruptCollection, "fails its checksum"),
        ("notes", {"embedder": "hash-64"}, EmbedderMismatch, "has dim 32"),
        ("notes", {"format_version": 2}, CorruptCollection, "this version reads"),
        ("points", {"dim": 16, "checksum": None}, CorruptCollection, "expected 64"),
        ("points", {"index": "annoy", "checksum": None}, CorruptCollection, "index must be"),
    ],
)
def test_a_manifest_that_disagrees_with_the_data_is_refused(
    data: Path, name: str, fields: dict[str, Any], error: type[Exception], says: str
) -> None:
    if fields.get("checksum", 0) is None:  # an older manifest without a checksum, edited
        fields = {k: v for k, v in fields.items() if k != "checksum"}
        manifest = json.loads((data / name / "manifest.json").read_text())
        manifest.pop("checksum")
        (data / name / "manifest.json").write_text(json.dumps(manifest))
    _edit(data, name, **fields)
    with pytest.raises(error) as err:
        _engine(data).collection(name)
    assert says in str(err.value)


def test_a_manifest_without_checksum_still_opens(data: Path) -> None:
    """Manifests written before the checksum existed (same format 1) keep opening."""
    path = data / "points" / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest.pop("checksum")
    path.write_text(json.dumps(manifest))
    assert _engine(data).collection("points").count() == EXPECTED["points"]["count"]


def test_asking_for_another_spec_is_refused_by_name(data: Path) -> None:
    engine = _engine(data)
    with pytest.raises(SpecMismatch, match="metric"):
        engine.create_collection("points", dim=8, metric="cosine", index="hnsw", exist_ok=True)
    with pytest.raises(EmbedderMismatch, match="embedder"):
        engine.collection("notes", embedder="hash-384")
