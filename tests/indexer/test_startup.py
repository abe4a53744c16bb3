"""Start-up (issue 7): one verified pass over the store at open (indexer/load.py), the lazy model
(name and dim from its files, loaded on first use), the words check from tokenizer.json, and the
bf16 backend ('<model>+bf16')."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from indexer import DocumentIn, Engine, Query, Settings, embed
from indexer.errors import CorruptCollection, EmbedderMismatch, InvalidInput, ModelUnavailable
from indexer.load import read_verified
from indexer.settings import BF16, DEFAULT_MODEL

REPO = Path(__file__).resolve().parents[2]
DIM = 16

# metadata written with keys out of order, nested, and not ASCII: the store keeps it sorted
META = {
    "zeta": 1,
    "alpha": {"y": [1, 2.5, None], "x": {"b": True, "a": "é"}},
    "名前": "日本語 🚀",
    "kind": "animal",
    "year": 2021,
}


def _docs(rng: np.random.Generator) -> list[DocumentIn]:
    def vec() -> np.ndarray:
        return rng.normal(size=DIM).astype(np.float32)

    return [
        DocumentIn("embedded", "the cat sat on the mat", metadata=META),
        DocumentIn("plain", "a dog barked at the mailman"),
        DocumentIn("unicode", "Ünïcödé text — naïve café ☕", metadata={"b": "ü", "a": [{"d": 1}]}),
        DocumentIn("given", "stock markets fell", vector=vec(), metadata={"year": 2022, "a": 0}),
        DocumentIn("given-no-text", vector=vec(), metadata={"nested": {"z": 1, "a": 2}}),
        DocumentIn("replaced", "first version", metadata={"v": 1}),
        DocumentIn("deleted", "soon gone"),
    ]


@pytest.fixture
def data(tmp_path: Path) -> Iterator[Path]:
    """A data directory with collection `c` (hash-16 embedder): embedded and given vectors,
    texts and none, every kind of metadata, a replaced and a deleted document."""
    engine = Engine(Settings(data_dir=tmp_path / "data", embedder=f"hash-{DIM}"))
    col = engine.create_collection("c")
    col.upsert(_docs(np.random.default_rng(7)))
    col.upsert([DocumentIn("replaced", "second version", metadata={"v": 2, "a": "x"})])
    col.delete(ids=["deleted"])
    engine.close()
    yield tmp_path / "data"


EXPECTED = ["embedded", "plain", "unicode", "given", "given-no-text", "replaced"]


def _open(data: Path) -> Any:
    """The collection as a fresh process would open it."""
    return Engine(Settings(data_dir=data, embedder=f"hash-{DIM}")).collection("c")


def _db(data: Path) -> Path:
    return data / "c" / "store.sqlite"


def _row(data: Path, doc_id: str) -> tuple[Any, ...]:
    with sqlite3.connect(_db(data)) as conn:
        row = conn.execute(
            "SELECT text, metadata, vector, content_hash FROM documents WHERE id=?", (doc_id,)
        ).fetchone()
    assert row is not None
    return tuple(row)


def _set(data: Path, doc_id: str, column: str, value: Any, sql: str = "?") -> None:
    conn = sqlite3.connect(_db(data))
    try:
        conn.execute(f"UPDATE documents SET {column}={sql} WHERE id=?", (value, doc_id))
        conn.commit()
    finally:
        conn.close()


def _flip(raw: bytes, at: int, bit: int = 0) -> bytes:
    b = bytearray(raw)
    b[at] ^= 1 << bit
    return bytes(b)


# ---- read_verified: one pass, the same Changes as changes_since(0) ---------------------------
def test_read_verified_gives_what_changes_since_0_gives(data: Path) -> None:
    col = _open(data)
    want, got = col.store.changes_since(0), read_verified(col.store)
    assert (got.seq, got.generation) == (want.seq, want.generation)
    np.testing.assert_array_equal(got.labels, want.labels)
    assert got.ids == want.ids
    assert got.metadata == want.metadata
    assert got.texts == want.texts
    np.testing.assert_array_equal(got.vectors, want.vectors)
    assert got.vectors.dtype == np.float32 and got.vectors.shape == (len(got.ids), DIM)
    np.testing.assert_array_equal(np.sort(got.removed), np.sort(want.removed))
    assert len(got.removed) == 2  # the replaced document's old label and the deleted one
    by_id = dict(zip(got.ids, got.metadata, strict=True))
    assert by_id["embedded"] == META and list(by_id["embedded"]) == sorted(META)
    assert by_id["replaced"] == {"v": 2, "a": "x"}
    assert "deleted" not in by_id
    texts = dict(zip(got.ids, got.texts, strict=True))
    assert texts["given-no-text"] is None and texts["unicode"] == "Ünïcödé text — naïve café ☕"


def test_an_empty_collection_reads_as_empty(tmp_path: Path) -> None:
    engine = Engine(Settings(data_dir=tmp_path, embedder=f"hash-{DIM}"))
    col = engine.create_collection("e")
    got = read_verified(col.store)
    assert got.ids == [] and got.vectors.shape == (0, DIM) and len(got.labels) == 0
    engine.close()


def test_a_reopened_collection_serves_the_same_documents_and_search(data: Path) -> None:
    col = _open(data)
    q = Query(vector=col.store.get(["given"])[0].vector, k=10, with_vectors=True)
    for doc_id in ("embedded", "unicode", "given", "given-no-text", "replaced"):
        assert col.get(doc_id).metadata == col.store.get([doc_id])[0].metadata
    hits = col.search(q)
    assert hits[0].id == "given" and hits[0].score == pytest.approx(1.0, abs=1e-5)
    assert {h.id for h in hits} == {*EXPECTED}
    assert {h.id: h.metadata for h in hits}["embedded"] == META


# ---- a flipped byte in a stored text, metadata or given vector refuses the collection -------
@pytest.mark.parametrize("doc_id", ["embedded", "given", "plain"])
def test_a_flipped_bit_in_a_stored_text_refuses_the_collection(data: Path, doc_id: str) -> None:
    text = _row(data, doc_id)[0]
    _set(data, doc_id, "text", _flip(text.encode(), 4).decode())  # ASCII stays ASCII
    with pytest.raises(CorruptCollection, match=doc_id):
        _open(data)


def test_a_flipped_byte_that_breaks_utf8_in_a_text_refuses_the_collection(data: Path) -> None:
    raw = _row(data, "unicode")[0].encode()
    bad = _flip(raw, raw.index("ï".encode()), 6)  # a continuation byte that no longer is one
    with pytest.raises(UnicodeDecodeError):
        bad.decode()
    _set(data, "unicode", "text", bad, "CAST(? AS TEXT)")
    with pytest.raises(CorruptCollection):
        _open(data)


@pytest.mark.parametrize(
    ("doc_id", "old", "new"),
    [
        ("embedded", '"year": 2021', '"year": 2020'),  # a digit, still valid JSON
        ("embedded", "\\u65e5", "\\u65e4"),  # inside a non-ASCII value (stored escaped)
        ("embedded", '"b": true', '"c": true'),  # a nested key
        ("given", '"a": 0', '"a": 1'),  # a row whose checksum covers its vector
        ("given-no-text", '"z": 1', '"z": 3'),
        ("plain", "{}", "[]"),
        ("embedded", '"zeta": 1,', '"zeta": 1;'),  # no longer JSON
    ],
)
def test_a_changed_metadata_value_refuses_the_collection(
    data: Path, doc_id: str, old: str, new: str
) -> None:
    meta = _row(data, doc_id)[1]
    assert meta.count(old) == 1, meta
    _set(data, doc_id, "metadata", meta.replace(old, new))
    with pytest.raises(CorruptCollection):
        _open(data)


@pytest.mark.parametrize("doc_id", ["given", "given-no-text"])
@pytest.mark.parametrize(("at", "bit"), [(0, 0), (17, 3), (4 * DIM - 1, 7)])
def test_a_flipped_bit_in_a_given_vector_refuses_the_collection(
    data: Path, doc_id: str, at: int, bit: int
) -> None:
    _set(data, doc_id, "vector", _flip(_row(data, doc_id)[2], at, bit))
    with pytest.raises(CorruptCollection, match=doc_id):
        _open(data)


def test_a_stored_vector_of_the_wrong_size_refuses_the_collection(data: Path) -> None:
    _set(data, "embedded", "vector", _row(data, "embedded")[2][:-4])
    with pytest.raises(CorruptCollection, match="bytes, expected"):
        _open(data)


def test_an_embedded_vector_is_not_in_the_checksum_its_text_is(data: Path) -> None:
    """indexer/load.py: "a vector the engine embedded is not in the hash; its text is": a
    flipped bit there is not detected at open, and read_verified serves the stored bytes (the
    text can be embedded again; the vector is not checked against it)."""
    blob = _row(data, "embedded")[2]
    flipped = _flip(blob, 1, 0)  # the lowest mantissa byte's bit: a small change
    _set(data, "embedded", "vector", flipped)
    col = _open(data)
    got = read_verified(col.store)
    stored = got.vectors[got.ids.index("embedded")]
    assert stored.tobytes() == flipped and stored.tobytes() != blob
    assert col.count() == 6


@pytest.mark.parametrize("doc_id", ["embedded", "given"])
def test_metadata_stored_in_another_json_form_is_checked_by_content_hash(
    data: Path, doc_id: str
) -> None:
    """A row whose metadata was stored other than as json.dumps(sort_keys=True) (same value,
    other bytes) opens: content_hash itself is the fallback before a row is called damaged."""
    meta = json.loads(_row(data, doc_id)[1])
    other = json.dumps(dict(reversed(list(meta.items()))), ensure_ascii=False, indent=1)
    _set(data, doc_id, "metadata", other)
    got = read_verified(_open(data).store)
    assert got.metadata[got.ids.index(doc_id)] == meta


# ---- the lazy model: name and dim from its files ----------------------------------------------
def _model_dir(tmp_path: Path, modules: list[str], pooling: dict[str, Any]) -> Path:
    path = tmp_path / "model"
    (path / "1_Pooling").mkdir(parents=True)
    paths = ["", "1_Pooling", "2_Normalize", "3"]
    entries = [
        {"idx": i, "name": str(i), "path": paths[i], "type": f"sentence_transformers.models.{t}"}
        for i, t in enumerate(modules)
    ]
    (path / "modules.json").write_text(json.dumps(entries))
    (path / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    return path


def test_model_dim_is_read_from_the_files() -> None:
    assert embed.model_dim(DEFAULT_MODEL) == 384
    assert embed.model_dim(DEFAULT_MODEL + BF16) == 384  # same files, other dtype
    assert embed.model_dim("hash-384") is None


def _pooling(dim: int | None, *modes: str) -> dict[str, Any]:
    config: dict[str, Any] = {f"pooling_mode_{m}": True for m in modes}
    config["pooling_mode_max_tokens"] = False
    return config if dim is None else {"word_embedding_dimension": dim, **config}


PLAIN = ["Transformer", "Pooling"]


@pytest.mark.parametrize(
    ("modules", "pooling", "dim"),
    [
        (PLAIN, _pooling(8, "mean_tokens"), 8),
        ([*PLAIN, "Normalize"], _pooling(8, "mean_tokens", "cls_token"), 16),  # modes multiply
        ([*PLAIN, "Dense"], _pooling(8, "mean_tokens"), None),  # a Dense layer changes the dim
        (PLAIN, _pooling(8), None),  # nothing pooled
        (PLAIN, _pooling(None, "mean_tokens"), None),
    ],
)
def test_model_dim_only_for_plainly_described_models(
    tmp_path: Path, modules: list[str], pooling: dict[str, Any], dim: int | None
) -> None:
    assert embed.model_dim(str(_model_dir(tmp_path, modules, pooling))) == dim
    assert embed.model_dim(str(tmp_path / "no-such-model")) is None


FRESH = """
import sys
import numpy as np
from indexer import Engine, Query, Settings
from indexer.embed import LazyEmbedder, lazy_embedder

emb = lazy_embedder("all-MiniLM-L6-v2")
out = {"kind": type(emb).__name__, "name": emb.name, "dim": emb.dim}
col = Engine(Settings(data_dir=sys.argv[1], embedder="all-MiniLM-L6-v2")).collection("m")
hits = col.search(Query(vector=np.eye(384, dtype=np.float32)[3], k=2))
out["hits"] = [h.id for h in hits]
out["words"] = len(LazyEmbedder("all-MiniLM-L6-v2", 384, 1, 64).vocabulary())
out["loaded"] = emb.loaded
heavy = ("torch", "sentence_transformers", "transformers")
out["modules"] = sorted(m for m in heavy if m in sys.modules)
print(__import__("json").dumps(out))
"""


def test_a_collection_opens_and_answers_a_vector_search_without_the_model(tmp_path: Path) -> None:
    """In a fresh interpreter (other tests' imports would hide it): the embedder, a collection
    of the model and a vector search on it, and the words check import no torch at all."""
    data = tmp_path / "data"
    engine = Engine(Settings(data_dir=data, embedder=DEFAULT_MODEL))
    col = engine.create_collection("m")
    assert col.embedder_name == DEFAULT_MODEL and col.dim == 384
    eye = np.eye(384, dtype=np.float32)
    col.upsert([DocumentIn(f"e{i}", f"axis {i}", vector=eye[i]) for i in range(6)])
    engine.close()
    env = {"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    cmd = [sys.executable, "-c", FRESH, str(data)]
    run = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=120, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.splitlines()[-1])
    assert out["kind"] == "LazyEmbedder" and (out["name"], out["dim"]) == (DEFAULT_MODEL, 384)
    assert out["hits"][0] == "e3"
    assert out["words"] > 20_000
    assert out["loaded"] is False
    assert out["modules"] == []


def test_lazy_embedder_is_one_shared_instance_and_the_engine_hands_it_out(tmp_path: Path) -> None:
    a = embed.lazy_embedder(DEFAULT_MODEL)
    assert isinstance(a, embed.LazyEmbedder)
    assert embed.lazy_embedder(DEFAULT_MODEL) is a
    engine = Engine(Settings(data_dir=tmp_path, embedder=DEFAULT_MODEL))
    assert engine.embedder() is a
    assert isinstance(embed.lazy_embedder("hash-8"), embed.HashEmbedder)


def test_a_model_whose_files_cannot_be_read_loads_now(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="cannot load embedder"):
        embed.lazy_embedder(str(tmp_path / "no-such-model"))


# ---- with the real model -----------------------------------------------------------------------
TEXTS = ["the cat sat on the mat", "stock markets fell sharply", "Il pleut depuis trois jours."]


@pytest.mark.model
def test_the_first_embed_loads_the_model_and_gives_its_vectors(real_embedder: Any) -> None:
    from sentence_transformers import SentenceTransformer

    lazy = embed.LazyEmbedder(DEFAULT_MODEL, 384, 1, 64)
    assert not lazy.loaded
    got = lazy.embed(TEXTS)
    assert lazy.loaded and got.shape == (3, 384) and got.dtype == np.float32
    np.testing.assert_array_equal(got, real_embedder.embed(TEXTS))
    ref = SentenceTransformer(embed._model_path(DEFAULT_MODEL), device="cpu").encode(TEXTS)
    np.testing.assert_allclose(got, ref, atol=1e-5)  # sentence-transformers itself
    assert lazy.max_tokens == real_embedder.max_tokens
    assert lazy.count_tokens("the cat") == real_embedder.count_tokens("the cat")


@pytest.mark.model
def test_a_model_that_gives_another_dim_than_its_files_is_refused(real_embedder: Any) -> None:
    lazy = embed.LazyEmbedder(DEFAULT_MODEL, 128, 1, 64)
    with pytest.raises(ModelUnavailable, match="gives dim 384, its files say 128"):
        lazy.embed(TEXTS)
    assert not lazy.loaded


@pytest.mark.model
def test_the_words_from_tokenizer_json_are_the_loaded_models(real_embedder: Any) -> None:
    lazy = embed.LazyEmbedder(DEFAULT_MODEL, 384, 1, 64)
    words = lazy.vocabulary()
    assert not lazy.loaded  # read from the file, no model
    assert words == real_embedder.vocabulary()
    assert len(words) > 20_000 and {"king", "queen", "paris"} <= set(words)
    lazy.load()
    assert lazy.vocabulary() == words


# ---- bf16: the embedder '<model>+bf16' -----------------------------------------------------------
@pytest.fixture
def no_backend_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("VP_EMBED_BACKEND", "VP_EMBEDDER"):
        monkeypatch.delenv(var, raising=False)


@pytest.mark.usefixtures("no_backend_env")
def test_the_bf16_backend_is_in_the_default_embedders_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert Settings(data_dir=tmp_path).embedder == DEFAULT_MODEL  # fp32 by default
    assert Settings(data_dir=tmp_path, embed_backend="bf16").embedder == DEFAULT_MODEL + BF16
    assert Settings(data_dir=tmp_path, embed_backend="fp32").embedder == DEFAULT_MODEL
    named = Settings(data_dir=tmp_path, embedder=DEFAULT_MODEL + BF16, embed_backend="bf16")
    assert named.embedder == DEFAULT_MODEL + BF16  # not '+bf16+bf16'
    assert Settings(data_dir=tmp_path, embedder="hash-8", embed_backend="bf16").embedder == "hash-8"
    monkeypatch.setattr("indexer.settings.cpu_has_bf16", lambda: True)
    monkeypatch.setattr("indexer.settings.openvino_available", lambda: False)
    assert Settings(data_dir=tmp_path, embed_backend="auto").embedder == DEFAULT_MODEL + BF16
    monkeypatch.setattr("indexer.settings.cpu_has_bf16", lambda: False)
    assert Settings(data_dir=tmp_path, embed_backend="auto").embedder == DEFAULT_MODEL
    monkeypatch.setenv("VP_EMBED_BACKEND", "bf16")
    assert Settings(data_dir=tmp_path).embedder == DEFAULT_MODEL + BF16


@pytest.mark.usefixtures("no_backend_env")
def test_fp32_and_bf16_collections_refuse_each_others_embedder(tmp_path: Path) -> None:
    """The backend is in the name the manifest records: asking an fp32 collection for the bf16
    embedder (or the other way round) is EmbedderMismatch, and a bf16 engine still opens an
    fp32 collection with the fp32 model it was made with. No model is loaded for any of this."""
    data = tmp_path / "data"
    fp32 = Engine(Settings(data_dir=data))
    fp32.create_collection("old")
    fp32.close()
    bf16 = Engine(Settings(data_dir=data, embed_backend="bf16"))
    col = bf16.collection("old")
    assert col.embedder_name == DEFAULT_MODEL and col.embedder is not None
    assert col.embedder.name == DEFAULT_MODEL
    with pytest.raises(EmbedderMismatch):
        bf16.collection("old", embedder=bf16.settings.embedder)
    with pytest.raises(EmbedderMismatch):
        bf16.create_collection("old", exist_ok=True)  # default embedder: now '+bf16'
    new = bf16.create_collection("new")
    assert new.embedder_name == DEFAULT_MODEL + BF16 and new.dim == 384
    bf16.close()
    again = Engine(Settings(data_dir=data))
    with pytest.raises(EmbedderMismatch):
        again.create_collection("new", exist_ok=True)
    with pytest.raises(EmbedderMismatch):
        again.collection("new", embedder=DEFAULT_MODEL)
    again.close()


SENTENCES = [
    "A man is playing a guitar on the street.",
    "The new movie is awesome and everyone loved it.",
    "How do I bake a loaf of sourdough bread?",
    "Quantum computers use qubits instead of bits.",
    "Der Zug hat heute zwanzig Minuten Verspätung.",
]


def _top10(X: np.ndarray) -> np.ndarray:
    """Each row's 10 nearest other rows by dot product (unit vectors: cosine)."""
    return np.argsort(-(X @ X.T), axis=1)[:, 1:11]


@pytest.mark.model
def test_bf16_vectors_agree_with_fp32(real_embedder: Any, short_text_vectors: Any) -> None:
    bf16 = embed.load_embedder(DEFAULT_MODEL + BF16)
    assert bf16.name == DEFAULT_MODEL + BF16 and bf16.dim == 384
    a, b = real_embedder.embed(SENTENCES), bf16.embed(SENTENCES)
    assert b.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-5)  # made unit again
    assert np.min(np.sum(a * b, axis=1)) > 0.99
    texts, vectors = short_text_vectors
    X32, X16 = vectors[:200], bf16.embed(list(texts[:200]))  # (200, 384) each
    T32, T16 = _top10(X32), _top10(X16)
    agreement = np.mean([len(set(r) & set(s)) / 10 for r, s in zip(T32, T16, strict=True)])
    assert agreement >= 0.95


@pytest.mark.model
def test_the_bf16_self_check_refuses_a_model_that_disagrees(
    real_embedder: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    plain = embed.SentenceTransformerEmbedder.embed

    def off_in_bf16(self: Any, texts: list[str]) -> Any:
        out = plain(self, texts)
        if next(self.model.parameters()).dtype == torch.bfloat16:
            return np.roll(out, 1, axis=0)  # each sentence gets another's vector
        return out

    monkeypatch.setattr(embed.SentenceTransformerEmbedder, "embed", off_in_bf16)
    uncached = embed._load_embedder.__wrapped__  # load_embedder keeps what loaded before
    with pytest.raises(InvalidInput, match="bf16 self-check failed") as e:
        uncached(DEFAULT_MODEL + BF16, 1, 64)
    assert repr(DEFAULT_MODEL) in e.value.detail  # says which name to use instead
