"""Chunked collections: long texts stored as passages linked to their document, replaced and
deleted as a whole, searched one hit per document with the best passage."""

from __future__ import annotations

from pathlib import Path

import pytest

from indexer import DocumentIn, Engine, Query, Settings
from indexer.errors import DocumentNotFound, InvalidInput

TOPICS = ["cats purr on warm laps", "rivers flood the valley", "markets fell on rate fears"]


def long_text(n: int, seed: int = 0) -> str:
    return " ".join(
        f"Sentence {i} says that {TOPICS[(i + seed) % 3]} again and again, ünïcödé 猫 ✓."
        for i in range(n)
    )


@pytest.fixture
def chunked(engine: Engine):  # type: ignore[no-untyped-def]
    return engine.create_collection("chunked", chunking={"max_tokens": 32, "overlap": 8})


def test_a_long_text_is_stored_as_passages_that_rebuild_it(chunked) -> None:  # type: ignore[no-untyped-def]
    text = long_text(20)
    got = chunked.upsert([DocumentIn(id="a", text=text, metadata={"lang": "en"})])
    assert got["upserted"] == 1 and got["passages"] > 1
    ids = sorted(chunked.label_by_id)
    assert ids == sorted(f"a#{i}" for i in range(got["passages"]))
    doc = chunked.get("a")
    assert doc.text == text and doc.metadata == {"lang": "en"}
    spans = chunked.embedder.token_spans
    for pid in ids:
        p = chunked.store.get([pid])[0]
        assert len(spans(p.text)) <= 32
        assert text[p.metadata["_start"] : p.metadata["_end"]] == p.text
    assert chunked.describe()["chunking"] == {"max_tokens": 32, "overlap": 8}


def test_a_short_text_stays_one_row_under_its_own_id(chunked) -> None:  # type: ignore[no-untyped-def]
    chunked.upsert([DocumentIn(id="s", text="a cat purrs", metadata={"n": 1})])
    assert sorted(chunked.label_by_id) == ["s"]
    assert chunked.get("s").metadata == {"n": 1}


def test_reupsert_replaces_every_old_passage_and_delete_removes_them(chunked) -> None:  # type: ignore[no-untyped-def]
    chunked.upsert([DocumentIn(id="a", text=long_text(20)), DocumentIn(id="b", text="short")])
    chunked.upsert([DocumentIn(id="a", text=long_text(6))])
    n6 = len(chunked.passages_of["a"])
    assert n6 >= 2 and len(chunked.label_by_id) == n6 + 1
    chunked.upsert([DocumentIn(id="a", text="now it is short")])
    assert sorted(chunked.label_by_id) == ["a", "b"] and "a" not in chunked.passages_of
    chunked.upsert([DocumentIn(id="a", text=long_text(10))])
    assert "a" not in chunked.label_by_id  # the whole-text row is gone too
    deleted = chunked.delete(ids=["a"])
    assert deleted and sorted(chunked.label_by_id) == ["b"]
    kw = chunked.search(Query(text="rivers valley", k=10, mode="keyword"))
    assert [h.id for h in kw] == []


def test_skip_unchanged_skips_a_chunked_document(chunked) -> None:  # type: ignore[no-untyped-def]
    docs = [DocumentIn(id="a", text=long_text(12)), DocumentIn(id="b", text="short one")]
    chunked.upsert(docs)
    seq = chunked.seq
    assert chunked.upsert(docs, skip_unchanged=True)["skipped"] == 2
    assert chunked.seq == seq


def test_group_by_document_gives_one_hit_per_document_with_its_best_passage(chunked) -> None:  # type: ignore[no-untyped-def]
    chunked.upsert(
        [DocumentIn(id=f"doc{j}", text=long_text(15, seed=j), metadata={"j": j}) for j in range(4)]
        + [DocumentIn(id="lone", text="rivers flood the valley")]
    )
    for mode in ("vector", "keyword", "hybrid"):
        hits = chunked.search(Query(text="rivers flood", k=5, mode=mode, group_by_document=True))
        ids = [h.id for h in hits]
        assert len(ids) == len(set(ids)) == 5
        for h in hits:
            if h.id == "lone":
                assert h.extra["passages_matched"] == 1 and "passage" not in h.extra
                continue
            p = h.extra["passage"]
            assert p["document"] == h.id and h.text == chunked.get(h.id).text[p["start"] : p["end"]]
            assert "_document" not in h.metadata and h.metadata["j"] == int(h.id[3:])
    plain = chunked.search(Query(text="rivers flood", k=5))
    assert all("#" in h.id or h.id == "lone" for h in plain)


def test_chunking_refuses_what_would_break_the_layout(engine: Engine, chunked) -> None:  # type: ignore[no-untyped-def]
    for doc, field in [
        (DocumentIn(id="x#3", text="t"), "documents[0].id"),
        (DocumentIn(id="x", text="t", metadata={"_document": "y"}), "documents[0].metadata"),
    ]:
        with pytest.raises(InvalidInput) as e:
            chunked.upsert([doc])
        assert e.value.field == field
    assert chunked.count() == 0
    for spec, field in [
        ({"max_tokens": 5}, "chunking.max_tokens"),
        ({"max_tokens": 100000}, "chunking.max_tokens"),
        ({"max_tokens": 64, "overlap": 40}, "chunking.overlap"),
        ({"size": 3}, "chunking"),
    ]:
        with pytest.raises(InvalidInput) as e:
            engine.create_collection("bad", chunking=spec)
        assert e.value.field == field
    with pytest.raises(InvalidInput) as e:
        engine.create_collection("vecs", dim=8, chunking=True)
    assert e.value.field == "chunking"


def test_chunking_survives_a_reopen(tmp_path: Path) -> None:
    data = tmp_path / "data"
    eng = Engine(Settings(data_dir=data, embedder="hash-64"))
    eng.create_collection("c", chunking=True).upsert([DocumentIn(id="a", text=long_text(80))])
    eng.close()
    eng = Engine(Settings(data_dir=data, embedder="hash-64"))
    c = eng.collection("c")
    assert c.chunking is not None and len(c.passages_of["a"]) >= 2
    assert c.get("a").text == long_text(80)
    eng.close()


def test_real_model_passages_fit_the_model(tmp_path: Path, real_embedder) -> None:  # type: ignore[no-untyped-def]
    eng = Engine(Settings(data_dir=tmp_path / "data", embedder=real_embedder.name))
    c = eng.create_collection("c", chunking=True)
    text = long_text(60)
    assert len(real_embedder.token_spans(text)) > real_embedder.max_tokens
    got = c.upsert([DocumentIn(id="a", text=text)])
    assert got["passages"] >= 3
    for p in c.store.get(sorted(c.passages_of["a"])):
        assert len(real_embedder.token_spans(p.text)) <= real_embedder.max_tokens
    assert c.get("a").text == text
    (hit,) = c.search(Query(text="markets fell", k=1, group_by_document=True))
    assert hit.id == "a" and "markets fell" in hit.text
    eng.close()


def test_another_process_reads_and_deletes_a_chunked_document_it_did_not_write(
    tmp_path: Path,
) -> None:
    """Two engines on one data directory, as two server workers are: a long document written
    by one is found whole and deleted whole by the other."""
    writer = Engine(Settings(data_dir=tmp_path / "data", embedder="hash-384"))
    reader = Engine(Settings(data_dir=tmp_path / "data", embedder="hash-384"))
    try:
        made = writer.create_collection("c", chunking={"max_tokens": 32, "overlap": 8})
        other = reader.collection("c")  # opened before the write
        text = long_text(80)
        made.upsert([DocumentIn(id="d1", text=text)])
        assert len(made.passages_of["d1"]) > 1
        assert other.get("d1").text == text
        assert other.delete(ids=["d1"]) == ["d1"]
        assert made.count() == 0
        with pytest.raises(DocumentNotFound):
            made.get("d1")
    finally:
        writer.close()
        reader.close()
