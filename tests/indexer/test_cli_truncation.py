"""`index build` names the documents the model would truncate, and `--chunk` splits them instead.

The hash embedder counts words against a 256-token budget; one case uses the real model's
tokenizer (254 word pieces)."""

import inspect
import json
from pathlib import Path

import pytest

from indexer.cli import main
from indexer.collection import MAX_ID_LEN
from indexer.embed import load_embedder
from indexer.engine import Engine


@pytest.fixture(autouse=True)
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    data = tmp_path / "data"
    monkeypatch.setenv("VP_DATA_DIR", str(data))
    monkeypatch.setenv("VP_EMBEDDER", "hash-384")
    monkeypatch.chdir(tmp_path)
    return data


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def words(n: int) -> str:
    return " ".join(f"w{i}" for i in range(n))


def write_jsonl(docs: list[tuple[str, str]]) -> None:
    Path("in.jsonl").write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in docs))


def test_documents_over_the_budget_are_indexed_and_named_with_their_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    write_jsonl([("short", "a short text"), ("long", words(300)), ("ok", words(256))])
    code, out, err = run(capsys, "build", "-c", "docs", "-i", "in.jsonl")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].startswith("read 3, indexed 3, unchanged 0, bad 0 in ")
    assert lines[1].startswith("truncated 1: longer than the model's 256 tokens, embedded from")
    assert lines[2:] == ["  in.jsonl:2 long (300 tokens > 256)"]

    code, out, _ = run(capsys, "--json", "build", "-c", "docs", "-i", "in.jsonl")
    summary = json.loads(out)
    assert (code, summary["upserted"], summary["skipped_unchanged"]) == (0, 0, 3)
    assert summary["truncated_count"] == 1 and summary["max_tokens"] == 256
    assert summary["truncated"] == [{"source": "in.jsonl", "line": 2, "id": "long", "tokens": 300}]


def test_a_build_without_long_documents_reports_none(capsys: pytest.CaptureFixture[str]) -> None:
    write_jsonl([("a", "one text"), ("b", "another text")])
    code, out, _ = run(capsys, "build", "-c", "docs", "-i", "in.jsonl")
    assert code == 0 and len(out.splitlines()) == 1
    code, out, _ = run(capsys, "--json", "build", "-c", "other", "-i", "in.jsonl")
    assert (json.loads(out)["truncated_count"], json.loads(out)["truncated"]) == (0, [])


def test_only_the_first_few_are_named(capsys: pytest.CaptureFixture[str]) -> None:
    write_jsonl([(f"d{i}", words(257 + i)) for i in range(8)])
    code, out, _ = run(capsys, "build", "-c", "docs", "-i", "in.jsonl", "--batch-size", "3")
    lines = out.splitlines()
    assert code == 0
    assert lines[1].startswith("truncated 8: ")
    assert lines[2:] == [f"  in.jsonl:{i + 1} d{i} ({257 + i} tokens > 256)" for i in range(5)] + [
        "  ... and 3 more"
    ]


def test_a_refused_record_is_reported_bad_not_truncated(
    capsys: pytest.CaptureFixture[str],
) -> None:
    write_jsonl([("x" * (MAX_ID_LEN + 1), words(300)), ("long", words(280))])
    code, out, err = run(capsys, "build", "-c", "docs", "-i", "in.jsonl", "--batch-size", "2")
    assert code == 0 and err.startswith("in.jsonl:1: id must be a non-empty string")
    assert out.splitlines()[1:] == [
        "truncated 1: longer than the model's 256 tokens, embedded from their start only "
        "(build with --chunk to index them as passages)",
        "  in.jsonl:2 long (280 tokens > 256)",
    ]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--chunk-tokens", "100"], "--chunk-tokens and --chunk-overlap need --chunk"),
        (["--chunk", "--ray", "auto"], "--chunk works with a local or --url build"),
    ],
)
def test_chunk_options_that_cannot_apply_are_refused(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    write_jsonl([("a", "text")])
    code, out, err = run(capsys, "build", "-c", "docs", "-i", "in.jsonl", *argv)
    assert (code, out) == (2, "")
    assert err.startswith(f"error: {message}")


ENGINE_CHUNKS = "chunking" in inspect.signature(Engine.create_collection).parameters


@pytest.mark.skipif(not ENGINE_CHUNKS, reason="Engine.create_collection has no chunking yet")
def test_chunk_creates_a_chunked_collection_and_nothing_is_truncated(
    capsys: pytest.CaptureFixture[str], env: Path
) -> None:
    write_jsonl([("short", "a short text"), ("long", words(300))])
    argv = ["--json", "build", "-c", "docs", "-i", "in.jsonl", "--chunk"]
    code, out, err = run(capsys, *argv, "--chunk-tokens", "100", "--chunk-overlap", "10")
    assert code == 0, err
    assert json.loads(out)["truncated_count"] == 0
    manifest = json.loads((env / "docs" / "manifest.json").read_text())
    assert manifest["chunking"] == {"max_tokens": 100, "overlap": 10}
    code, out, err = run(capsys, *argv, "--chunk-tokens", "50")  # another budget: refused
    assert code == 2 and "chunking" in err
    assert run(capsys, "build", "-c", "plain", "-i", "in.jsonl")[0] == 0
    code, out, err = run(capsys, *argv[:3], "plain", *argv[4:])  # whole texts: refused too
    assert code == 2 and "chunking" in err


@pytest.mark.model
def test_the_real_model_reports_a_text_over_254_word_pieces_with_its_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VP_EMBEDDER", "all-MiniLM-L6-v2")
    long = "Antidisestablishmentarianism puzzles naïve readers in Zürich. " * 30  # ~300 words
    Path("notes.txt").write_text(f"a first short line\nanother one\n{long}\nthe end\n")
    tokens = len(load_embedder("all-MiniLM-L6-v2").token_spans(long.strip()))  # type: ignore[attr-defined]
    assert tokens > 256
    code, out, err = run(capsys, "build", "-c", "notes", "-i", "notes.txt")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].startswith("read 4, indexed 4, ")
    assert lines[1].startswith("truncated 1: longer than the model's 254 tokens")
    assert lines[2:] == [f"  notes.txt:3 notes:3 ({tokens} tokens > 254)"]
