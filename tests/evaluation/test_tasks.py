"""Each task end to end on tiny files with the hash embedder: through the engine, through the
HTTP API (in-process TestClient) with identical results, and from the command line."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.stats

from indexer import Engine
from indexer.evaluation import (
    EngineBackend,
    evaluate_analogy,
    evaluate_retrieval,
    evaluate_sts,
    evaluate_wordsim,
)
from indexer.evaluation.backend import MODES
from indexer.evaluation.cli import main
from indexer.evaluation.remote import HttpBackend, RemoteError

SENTENCES = [
    ("a cat sat on the mat", "a cat sat on a mat", 4.8),
    ("a dog barked loudly", "the dog barked", 3.9),
    ("the sun is a star", "stars burn far away", 1.2),
    ("he plays the guitar", "a man plays a guitar", 3.1),
    ("rain falls in spring", "the stock market fell", 0.1),
    ("two men ride horses", "two men are riding horses", 4.5),
    ("a woman slices onions", "an onion is sliced", 3.6),
]
TOPICS = {
    "d1": "cats purr and sleep on warm mats",
    "d2": "dogs bark at the postman every morning",
    "d3": "the sun is a star made of hydrogen",
    "d4": "guitars have six strings and frets",
    "d5": "onions make people cry when sliced",
    "d6": "horses gallop across open fields",
}
QUERIES = {"q1": "why do cats purr", "q2": "dogs bark postman", "q3": "guitar strings frets"}
QRELS = {"q1": "d1", "q2": "d2", "q3": "d4"}


@pytest.fixture
def sts_file(tmp_path: Path) -> Path:
    path = tmp_path / "pairs.tsv"
    path.write_text("".join(f"{a}\t{b}\t{g}\n" for a, b, g in SENTENCES), encoding="utf-8")
    return path


def write_beir(
    folder: Path, corpus: dict[str, str], queries: dict[str, str], qrels: dict[str, str]
) -> Path:
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": d, "title": "", "text": t}) + "\n" for d, t in corpus.items())
    )
    (folder / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": q, "text": t}) + "\n" for q, t in queries.items())
    )
    (folder / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t1\n" for q, d in qrels.items())
    )
    return folder


@pytest.fixture
def beir_folder(tmp_path: Path) -> Path:
    return write_beir(tmp_path / "tiny-beir", TOPICS, QUERIES, QRELS)


@pytest.fixture
def google_file(tmp_path: Path) -> Path:
    path = tmp_path / "questions-words.txt"
    path.write_text(
        ": capitals\nathens greece berlin germany\nberlin germany paris france\n"
        ": gram-plural\ncat cats dog dogs\ndog dogs ox oxen\n",
        encoding="utf-8",
    )
    return path


def test_sts_spearman_is_that_of_the_embedder_cosines(engine: Engine, sts_file: Path) -> None:
    result = evaluate_sts(sts_file, engine)
    emb = engine.embedder()
    A = emb.embed([a for a, _, _ in SENTENCES])
    B = emb.embed([b for _, b, _ in SENTENCES])
    cos = (A * B).sum(1) / np.linalg.norm(A, axis=1) / np.linalg.norm(B, axis=1)
    gold = [g for *_, g in SENTENCES]
    assert result.scores["spearman"] == pytest.approx(scipy.stats.spearmanr(cos, gold).statistic)
    assert result.scores["pearson"] == pytest.approx(scipy.stats.pearsonr(cos, gold).statistic)
    assert result.size == {"pairs": 7} and result.via == "engine"
    assert "spearman" in result.table() and "pairs.tsv" in result.table()


@pytest.mark.parametrize("pairs_per_request", [1, 3])
def test_sts_over_http_equals_the_engine(
    engine: Engine, sts_file: Path, serve: Callable[[str], Any], pairs_per_request: int
) -> None:
    local = evaluate_sts(sts_file, engine)
    remote = HttpBackend(client=serve("hash-384"), pairs_per_request=pairs_per_request)
    served = evaluate_sts(sts_file, remote)
    assert served.scores == pytest.approx(local.scores, abs=1e-9)
    assert served.embedder == "hash-384" and served.via == "http://testserver"


def test_wordsim_engine_and_http(
    engine: Engine, tmp_path: Path, serve: Callable[[str], Any]
) -> None:
    path = tmp_path / "pairs.tsv"  # phrases, so the hash embedder's cosines are not all 0
    path.write_text("red cat\tcat\t4\nbig red cat\tcat\t3\nsun moon\tmoon\t2\ncat\tsun\t1\n")
    local = evaluate_wordsim(path, engine)
    assert local.size == {"pairs": 4, "words": 6}
    assert local.scores["spearman"] > 0.5
    served = evaluate_wordsim(path, HttpBackend(client=serve("hash-384")))
    assert served.scores == pytest.approx(local.scores, abs=1e-6)


def test_retrieval_engine_every_kind_then_http(
    engine: Engine, beir_folder: Path, serve: Callable[[str], Any]
) -> None:
    kinds = [("cosine", "flat"), ("cosine", "hnsw"), ("l2", "ivf"), ("dot", "sq8")]
    result = evaluate_retrieval(beir_folder, engine, kinds=kinds, k=5)
    assert [(r["metric"], r["index"]) for r in result.rows] == kinds
    for row in result.rows:  # word overlap puts each relevant doc first
        assert row["ndcg@10"] == pytest.approx(1.0) and row["mrr@10"] == pytest.approx(1.0)
        assert row["recall@10"] == 1.0 and row["delta"] == pytest.approx(0.0)
        assert row["ms/query"] > 0 and row["search ms/query"] > 0
    assert result.size == {"queries": 3, "documents": 6}
    # the embedded corpus is kept for next time; the per-kind collections are gone
    assert [c["name"] for c in engine.list_collections()] == ["eval-tiny-beir-hash-384-vectors"]

    remote = HttpBackend(client=serve("hash-384"))
    served = evaluate_retrieval(beir_folder, remote, kinds=kinds[:2], k=5)
    assert served.scores == pytest.approx(result.scores)
    assert served.rows[0]["search ms/query"] is None  # over HTTP only end-to-end time
    names = [c["name"] for c in remote.client.get("/v1/collections").json()["collections"]]
    assert names == ["eval-tiny-beir-hash-384-vectors"]


# 360 words of filler, then the answer: past the hash embedder's 256-word passage budget
LONG = " ".join(["Alpha beta gamma delta epsilon zeta."] * 60) + " Volcanoes erupt molten lava."


def test_retrieval_every_mode_through_the_engine_and_over_http(
    engine: Engine, tmp_path: Path, serve: Callable[[str], Any]
) -> None:
    folder = write_beir(
        tmp_path / "modes-beir",
        {**TOPICS, "d7": LONG},
        {**QUERIES, "q4": "volcanoes erupt lava"},
        {**QRELS, "q4": "d7"},
    )
    result = evaluate_retrieval(folder, engine, k=5, modes=list(MODES))
    assert [(r["mode"], r["index"]) for r in result.rows] == [
        ("vector", "flat"),
        ("keyword", "flat"),
        ("hybrid rrf", "flat"),
        ("hybrid convex 0.5", "flat"),
        ("vector, chunked", "flat"),
        ("hybrid rrf, chunked", "flat"),
    ]
    assert "mode" in result.columns and "vs best single" in result.columns
    for row in result.rows:  # every mode finds each query's document first, d7 by its last words
        assert row["ndcg@10"] == pytest.approx(1.0) and row["mrr@10"] == pytest.approx(1.0)
        assert row["vs best single"] == pytest.approx(0.0) and row["search ms/query"] > 0
    keyword = result.rows[1]
    assert keyword["ms/query"] == keyword["search ms/query"]  # BM25 embeds no query
    assert any(n.startswith("chunked: passages of at most 256 tokens") for n in result.notes)
    # both embedded forms of the corpus are kept; the passages hold d7 as several rows
    kept = {c["name"]: c for c in engine.list_collections()}
    assert set(kept) == {
        "eval-modes-beir-hash-384-vectors",
        "eval-modes-beir-hash-384-passages-256-32",
    }
    passages = engine.collection("eval-modes-beir-hash-384-passages-256-32")
    assert passages.count() > 7
    seq = passages.describe()["seq"]
    again = evaluate_retrieval(folder, engine, k=5, modes=["chunks"])
    assert passages.describe()["seq"] == seq  # the second run writes (and embeds) nothing
    assert [r["mode"] for r in again.rows] == ["vector", "vector, chunked"]

    remote = HttpBackend(client=serve("hash-384"))
    served = evaluate_retrieval(folder, remote, k=5, modes=["keyword", "convex", "chunks"])
    assert [r["mode"] for r in served.rows] == ["vector", "keyword", "hybrid convex 0.5"]
    for here, there in zip(result.rows[:2], served.rows, strict=False):
        assert there["ndcg@10"] == pytest.approx(here["ndcg@10"])
    assert served.rows[2]["ndcg@10"] == pytest.approx(result.rows[3]["ndcg@10"])
    assert "vector, chunked: through the engine only, left out here" in served.notes


def test_retrieval_keep_leaves_the_collection(engine: Engine, beir_folder: Path) -> None:
    evaluate_retrieval(beir_folder, EngineBackend(engine, keep=True), kinds=[("cosine", "hnsw")])
    names = {c["name"] for c in engine.list_collections()}
    assert names == {"eval-tiny-beir-hash-384-vectors", "eval-tiny-beir-cosine-hnsw"}


def test_analogy_rows_and_http(
    engine: Engine, google_file: Path, serve: Callable[[str], Any]
) -> None:
    result = evaluate_analogy(google_file, engine, check=4)
    labels = [(r["section"], r["level"], r["questions"]) for r in result.rows]
    assert labels == [
        ("all", "all", 4),
        ("semantic", "group", 2),
        ("  capitals", "section", 2),
        ("syntactic", "group", 2),
        ("  gram-plural", "section", 2),
    ]
    assert result.columns == ["section", "questions", "3cosadd", "3cosmul", "nn"]
    assert result.scores["engine_agreement"] == 1.0
    served = evaluate_analogy(google_file, HttpBackend(client=serve("hash-384")))
    assert {m: served.scores[m] for m in ("3cosadd", "3cosmul", "nn")} == pytest.approx(
        {m: result.scores[m] for m in ("3cosadd", "3cosmul", "nn")}
    )


def test_remote_errors_name_the_service(tmp_path: Path) -> None:
    backend = HttpBackend("http://127.0.0.1:9", timeout=2)
    with pytest.raises(RemoteError, match="cannot reach"):
        backend.pair_cosines(["a"], ["b"])
    with pytest.raises(RemoteError, match="not ready"):
        backend.wait_ready(0.3)
    backend.close()


def test_remote_http_errors_carry_the_status(serve: Callable[[str], Any]) -> None:
    backend = HttpBackend(client=serve("hash-384"))
    with pytest.raises(RemoteError, match="HTTP 422"):
        backend.pair_cosines(["fine"], [" "])


# ---- the command line -------------------------------------------------------------------------
def cli(tmp_path: Path, *args: str) -> list[str]:
    return [*args, "--data-dir", str(tmp_path / "cli-data"), "--embedder", "hash-384", "--quiet"]


def test_cli_prints_a_table_and_writes_json(
    tmp_path: Path, sts_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "res" / "sts.json"
    assert main(cli(tmp_path, "sts", str(sts_file), "--out", str(out))) == 0
    table = capsys.readouterr().out
    assert table.startswith("sts: ") and "spearman" in table
    saved = json.loads(out.read_text())
    assert saved["task"] == "sts" and saved["size"] == {"pairs": 7}
    assert set(saved["scores"]) == {"spearman", "pearson"}


def test_cli_json_for_each_task(
    tmp_path: Path,
    beir_folder: Path,
    google_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(cli(tmp_path, "retrieval", str(beir_folder), "--index", "flat,hnsw", "--json")) == 0
    body = json.loads(capsys.readouterr().out)
    assert [r["index"] for r in body["rows"]] == ["flat", "hnsw"]
    assert (
        main(cli(tmp_path, "retrieval", str(beir_folder), "--modes", "keyword,rrf", "--json")) == 0
    )
    body = json.loads(capsys.readouterr().out)
    assert [r["mode"] for r in body["rows"]] == ["vector", "keyword", "hybrid rrf"]
    assert main(cli(tmp_path, "analogy", str(google_file), "--methods", "3cosmul", "--json")) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["columns"] == ["section", "questions", "3cosmul"]
    men = tmp_path / "men.tsv"
    men.write_text("cat\tdog\t3\nsun\tmoon\t2\ncar\ttree\t1\n")
    assert main(cli(tmp_path, "wordsim", str(men), "--json")) == 0
    assert json.loads(capsys.readouterr().out)["size"]["pairs"] == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["sts", "missing.tsv"], "no such file"),
        (["retrieval", ".", "--index", "flat,btree"], "choose from"),
        (["retrieval", ".", "--distractors", "5"], "--distractors needs --queries"),
        (["retrieval", ".", "--modes", "vector,splade"], "choose from"),
        (["analogy", "missing.txt", "--url", "http://127.0.0.1:9"], "cannot reach|no such file"),
        (["sts", "x", "--limit", "0"], "not a positive integer"),
    ],
)
def test_cli_failures_exit_2_with_one_line(
    tmp_path: Path, args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(cli(tmp_path, *args)) == 2
    err = capsys.readouterr().err
    assert err.strip() and pytest.importorskip("re").search(message, err), err
