"""With the real all-MiniLM-L6-v2: offline loading, the words collection, king - man + woman."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from indexer import Engine, Settings, analogy
from indexer.words import build_words

pytestmark = pytest.mark.model

NO_NETWORK = """
import socket
def refuse(*a, **k):
    raise OSError("network disabled by the test")
socket.socket.connect = refuse
socket.create_connection = refuse
socket.getaddrinfo = refuse
from indexer.embed import load_embedder
emb = load_embedder("all-MiniLM-L6-v2")
v = emb.embed(["offline is fine"])
print(emb.name, emb.dim, v.shape, round(float((v[0] ** 2).sum()), 4))
"""


def test_model_loads_with_the_network_disabled() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
    run = subprocess.run(
        [sys.executable, "-c", NO_NETWORK], capture_output=True, text=True, env=env, timeout=300
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split()[:3] == ["all-MiniLM-L6-v2", "384", "(1,"]
    assert run.stdout.split()[-1] == "1.0"  # the model's own Normalize layer


@pytest.fixture(scope="module")
def words(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    engine = Engine(Settings(data_dir=tmp_path_factory.mktemp("words")))
    col = build_words(engine)
    yield col
    engine.close()


def test_words_collection_is_the_tokenizer_vocabulary(words) -> None:  # type: ignore[no-untyped-def]
    assert words.count() > 20_000
    for w in ("king", "queen", "man", "woman", "paris"):
        assert words.get(w).text == w
    assert words.store.get(["##ing"]) == []  # word pieces are not words


@pytest.mark.parametrize("method", ["3cosadd", "3cosmul"])
def test_king_minus_man_plus_woman_is_queen(words, method: str) -> None:  # type: ignore[no-untyped-def]
    result = analogy(words, positive=["king", "woman"], negative=["man"], k=5, method=method)
    assert result.hits[0].id == "queen"
    assert not {"king", "woman", "man"} & {h.id for h in result.hits}
    top = result.hits[0]
    assert set(top.cosines) == {"king", "woman", "man"}
    # the 3CosAdd score is the sum of the cosines to the positives minus the negatives
    if method == "3cosadd":
        c = top.cosines
        assert top.score == pytest.approx(c["king"] + c["woman"] - c["man"], abs=1e-5)
    assert [t["source"] for t in result.terms] == ["document"] * 3


def test_analogy_keeps_inputs_when_asked(words) -> None:  # type: ignore[no-untyped-def]
    hits = analogy(words, ["king", "woman"], ["man"], k=5, exclude_inputs=False).hits
    assert {"king", "woman"} & {h.id for h in hits}


def test_rebuilding_words_is_a_no_op(words) -> None:  # type: ignore[no-untyped-def]
    seq = words.describe()["seq"]
    engine = Engine(Settings(data_dir=words.path.parent))
    build_words(engine, words=["king", "queen"])
    assert engine.collection("words").describe()["seq"] == seq
