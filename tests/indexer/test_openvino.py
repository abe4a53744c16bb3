"""VP_EMBED_BACKEND=openvino: all-MiniLM-L6-v2 compiled by OpenVINO, as the embedder
`all-MiniLM-L6-v2+openvino`. Its vectors must be the fp32 model's in all but rounding (checked
at load and here on real texts), and collections keep them apart from fp32 ones by name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from indexer import Engine, Settings
from indexer.collection import DocumentIn, Query
from indexer.embed import OpenVinoEncoder, SentenceTransformerEmbedder, load_embedder
from indexer.errors import EmbedderMismatch, InvalidInput
from indexer.settings import BF16, DEFAULT_MODEL, OPENVINO

pytest.importorskip("openvino", reason="the openvino extra is not installed")

OV = DEFAULT_MODEL + OPENVINO


@pytest.fixture(scope="module")
def ov_embedder() -> Any:
    return load_embedder(OV)


def real_fp32_of(text: str) -> np.ndarray:
    return np.asarray(load_embedder(DEFAULT_MODEL).embed([text])[0])


def top10(vectors: np.ndarray) -> list[set[int]]:
    sims = vectors @ vectors.T
    np.fill_diagonal(sims, -np.inf)
    return [set(np.argsort(-row)[:10].tolist()) for row in sims]


def test_the_backend_names_the_default_embedder(tmp_path: Path) -> None:
    assert Settings(data_dir=tmp_path, embed_backend="openvino").embedder == OV
    named = Settings(data_dir=tmp_path, embedder=OV, embed_backend="openvino")
    assert named.embedder == OV  # not '+openvino+openvino'
    assert Settings(data_dir=tmp_path, embedder=OV, embed_backend="bf16").embedder == OV
    assert Settings(data_dir=tmp_path, embedder="hash-8", embed_backend="openvino").embedder == (
        "hash-8"
    )
    assert Settings(data_dir=tmp_path, embed_backend="bf16").embedder == DEFAULT_MODEL + BF16


@pytest.mark.parametrize(
    ("bf16_cpu", "installed", "want"),
    [(True, True, OV), (True, False, DEFAULT_MODEL + BF16), (False, True, DEFAULT_MODEL)],
)
def test_auto_takes_openvino_where_the_cpu_does_bf16_and_it_is_installed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bf16_cpu: bool, installed: bool, want: str
) -> None:
    monkeypatch.delenv("VP_EMBEDDER", raising=False)
    monkeypatch.setattr("indexer.settings.cpu_has_bf16", lambda: bf16_cpu)
    monkeypatch.setattr("indexer.settings.openvino_available", lambda: installed)
    assert Settings(data_dir=tmp_path, embed_backend="auto").embedder == want


def test_openvino_vectors_match_fp32_on_real_texts(
    ov_embedder: Any, short_text_vectors: tuple[list[str], np.ndarray]
) -> None:
    texts, fp32 = short_text_vectors
    texts, fp32 = texts[:1000], fp32[:1000]
    got = ov_embedder.embed(texts)
    assert ov_embedder.name == OV and got.shape == (1000, 384) and got.dtype == np.float32
    assert np.allclose(np.linalg.norm(got, axis=1), 1, atol=1e-4)  # the model normalises
    cosines = np.sum(got * fp32, axis=1)
    assert cosines.min() > 0.999, cosines.min()
    agreement = np.mean([len(a & b) / 10 for a, b in zip(top10(got), top10(fp32), strict=True)])
    assert agreement >= 0.98, agreement  # the bar for a faster backend
    # a text longer than the model's 256 tokens is cut where sentence-transformers cuts it
    long = " ".join(texts[:40])
    assert float(ov_embedder.embed([long])[0] @ real_fp32_of(long)) > 0.999
    # a text alone gives the vector it gets in a batch (padding does not leak in)
    alone = ov_embedder.embed([texts[0]])[0]
    assert float(alone @ got[0]) > 0.9999
    assert ov_embedder.embed([]).shape == (0, 384)


def test_the_backend_without_its_extra_is_refused_naming_the_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("indexer.settings.openvino_available", lambda: False)
    with pytest.raises(ValidationError) as e:
        Settings(data_dir=tmp_path, embed_backend="openvino")
    assert e.value.errors()[0]["loc"] == ("embed_backend",)
    assert "pip install 'vector-primer[openvino]'" in str(e.value)


def test_collections_keep_openvino_vectors_apart_from_fp32(
    ov_embedder: Any, tmp_path: Path
) -> None:
    eng = Engine(Settings(data_dir=tmp_path / "data", embed_backend="openvino"))
    try:
        col = eng.create_collection("notes")
        assert col.embedder_name == OV
        col.upsert(
            [
                DocumentIn(id="cat", text="The cat sat on the mat."),
                DocumentIn(id="rates", text="The central bank raised interest rates again."),
            ]
        )
        hits = col.search(Query(text="a kitten resting on a rug", k=1))
        assert hits[0].id == "cat"
        with pytest.raises(EmbedderMismatch):
            eng.collection("notes", embedder=DEFAULT_MODEL)
    finally:
        eng.close()


def test_a_failed_self_check_refuses_the_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    def off(self: OpenVinoEncoder, texts: list[str], batch_size: int) -> np.ndarray:
        rng = np.random.default_rng(0)
        v = rng.standard_normal((len(texts), 384)).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    monkeypatch.setattr(OpenVinoEncoder, "encode", off)
    with pytest.raises(ValueError, match="openvino self-check failed"):
        SentenceTransformerEmbedder(OV)


def test_only_plain_sentence_models_are_compiled() -> None:
    class Dense:  # a module the encoder does not know how to run after the transformer
        pass

    class Transformer:
        pass

    class Pooling:
        pass

    with pytest.raises(ValueError, match="Transformer \\+ Pooling"):
        OpenVinoEncoder([Transformer(), Pooling(), Dense()], threads=1)


def test_a_name_that_is_no_model_is_refused_naming_the_field() -> None:
    with pytest.raises(InvalidInput) as e:
        load_embedder("/no/such/model" + OPENVINO)
    assert e.value.field == "embedder"
