"""`python -m indexer`: what a user types, what they see, and the exit code a script checks.

In-process through `main(argv)` with the hash embedder, plus one real subprocess."""

import gzip
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from indexer.cli import main

DOCS = [
    {"id": "cat", "text": "the cat sat on the mat", "source": "news", "year": 2020},
    {"id": "dog", "text": "a dog chased the ball in the park", "source": "blog", "year": 2021},
    {"id": "sea", "text": "waves crash on the sea shore", "source": "news", "year": 2019},
    {"id": "tea", "text": "hot tea on a cold morning", "source": "blog", "year": 2022},
]


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


def jsonl(path: Path, docs: list[dict], broken_at: int | None = None) -> Path:
    lines = [json.dumps(d) for d in docs]
    if broken_at is not None:
        lines.insert(broken_at - 1, '{"id": "broken", "text": ')
    path.write_text("\n".join(lines) + "\n")
    return path


# ---- build ----------------------------------------------------------------------------------
def test_build_reports_a_malformed_line_indexes_the_rest_and_a_rerun_is_a_noop(
    capsys: pytest.CaptureFixture[str],
) -> None:
    jsonl(Path("input.jsonl"), DOCS, broken_at=3)
    code, out, err = run(capsys, "build", "--collection", "docs", "--input", "input.jsonl")
    assert code == 0
    assert err.splitlines() == ["input.jsonl:3: malformed JSON at column 26: Expecting value"]
    assert out.startswith("read 5, indexed 4, unchanged 0, bad 1 in ")
    code, out, err = run(capsys, "build", "-c", "docs", "-i", "input.jsonl")
    assert code == 0
    assert out.startswith("read 5, indexed 0, unchanged 4, bad 1 in ")


def test_changing_one_text_reindexes_only_that_document(capsys: pytest.CaptureFixture[str]) -> None:
    jsonl(Path("in.jsonl"), DOCS)
    assert run(capsys, "build", "-c", "docs", "-i", "in.jsonl")[0] == 0
    changed = [dict(d) for d in DOCS]
    changed[2]["text"] = "a lighthouse above the harbour"
    jsonl(Path("in.jsonl"), changed)
    code, out, _ = run(capsys, "--json", "build", "-c", "docs", "-i", "in.jsonl")
    summary = json.loads(out)
    assert (code, summary["upserted"], summary["skipped_unchanged"]) == (0, 1, 3)
    _, out, _ = run(capsys, "query", "-c", "docs", "lighthouse harbour", "--k", "1", "--json")
    assert json.loads(out)["hits"][0]["id"] == "sea"


@pytest.mark.parametrize(
    "name, content, fmt, ids",
    [
        ("in.csv", 'id,text,year\na,first row,2020\nb,"second, quoted",2021\n', [], ["a", "b"]),
        ("in.tsv", "id\ttext\na\tfirst\n", [], ["a"]),
        ("lines.txt", "line one\n\nline three\n", [], ["lines:1", "lines:3"]),
        ("notes.dat", "one\ntwo\n", ["--format", "text"], ["notes:1", "notes:2"]),
        ("in.jsonl.gz", None, [], ["cat", "dog", "sea", "tea"]),
    ],
)
def test_each_input_format_builds(
    capsys: pytest.CaptureFixture[str],
    name: str,
    content: str | None,
    fmt: list[str],
    ids: list[str],
) -> None:
    if content is None:
        with gzip.open(name, "wt") as f:
            f.write("".join(json.dumps(d) + "\n" for d in DOCS))
    else:
        Path(name).write_text(content)
    code, out, err = run(capsys, "build", "-c", "docs", "-i", name, *fmt, "--json")
    assert (code, err) == (0, "")
    assert json.loads(out)["upserted"] == len(ids)
    _, out, _ = run(capsys, "query", "-c", "docs", "first line one", "--k", "10", "--json")
    assert sorted(h["id"] for h in json.loads(out)["hits"]) == sorted(ids)


def test_a_directory_of_text_files_builds_with_paths_as_ids(
    capsys: pytest.CaptureFixture[str],
) -> None:
    Path("corpus/guides").mkdir(parents=True)
    Path("corpus/readme.md").write_text("# Read me\nstart here")
    Path("corpus/guides/setup.txt").write_text("install the package")
    Path("corpus/guides/empty.txt").write_text("")
    code, out, err = run(capsys, "build", "-c", "files", "-i", "corpus")
    assert code == 0 and out.startswith("read 3, indexed 2, unchanged 0, bad 1")
    assert err.strip() == f"{Path('corpus/guides/empty.txt')}: empty file"
    _, out, _ = run(capsys, "query", "-c", "files", "install package", "--json")
    hit = json.loads(out)["hits"][0]
    assert (hit["id"], hit["metadata"]) == ("guides/setup.txt", {"path": "guides/setup.txt"})


def test_field_options_metric_index_and_params(capsys: pytest.CaptureFixture[str]) -> None:
    Path("c.jsonl").write_text(
        "".join(
            json.dumps(
                {
                    "_id": f"p{i}",
                    "title": f"title {i}",
                    "body": f"body text {i}",
                    "lang": "en",
                    "n": i,
                }
            )
            + "\n"
            for i in range(30)
        )
    )
    code, _, err = run(
        capsys,
        "build",
        "-c",
        "c",
        "-i",
        "c.jsonl",
        "--id-field",
        "_id",
        "--text-field",
        "title,body",
        "--metadata-fields",
        "n",
        "--metric",
        "l2",
        "--index",
        "hnsw",
        "--param",
        "ann_threshold=10",
        "--param",
        "M=16",
    )
    assert (code, err) == (0, "")
    _, out, _ = run(capsys, "info", "c", "--json")
    info = json.loads(out)
    assert (info["metric"], info["index"], info["params"], info["count"]) == (
        "l2",
        "hnsw",
        {"ann_threshold": 10, "M": 16},
        30,
    )
    assert info["ann"]["built"]
    _, out, _ = run(
        capsys,
        "query",
        "-c",
        "c",
        "title 7 body text 7",
        "--json",
        "--k",
        "1",
        "--filter",
        '{"n": {"$gte": 5}}',
    )
    res = json.loads(out)
    assert res["metric"] == "l2" and "lower is better" in res["score"]
    assert res["hits"][0] == {
        "id": "p7",
        "score": pytest.approx(0, abs=1e-3),
        "text": "title 7 body text 7",
        "metadata": {"n": 7},
    }


def test_strict_turns_bad_records_into_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    jsonl(Path("in.jsonl"), DOCS, broken_at=2)
    code, _, err = run(capsys, "build", "-c", "docs", "-i", "in.jsonl", "--strict")
    assert code == 1 and "in.jsonl:2:" in err


# ---- failures: exit 2, one line, no traceback -----------------------------------------------
@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["build", "-c", "docs", "-i", "missing.jsonl"],
            "error: input missing.jsonl does not exist",
        ),
        (["query", "-c", "nope", "hello"], "error: no collection named 'nope'"),
        (["info", "nope"], "error: no collection named 'nope'"),
        (["rebuild", "nope"], "error: no collection named 'nope'"),
        (["drop", "nope", "--yes"], "error: no collection named 'nope'"),
        (
            ["build", "-c", "docs", "-i", "in.unknown"],
            "error: cannot tell the format of in.unknown",
        ),
        (["build", "-c", "docs", "-i", "in.jsonl", "--param", "M"], "error: --param 'M' must look"),
        (
            ["build", "-c", "docs", "-i", "in.jsonl", "--param", "bogus=1"],
            "error: unknown index parameter 'bogus'",
        ),
        (["build", "-c", "bad/name", "-i", "in.jsonl"], "error: collection name 'bad/name' must"),
        (["query", "-c", "docs", "x", "--filter", "{nope"], "error: --filter is not valid JSON"),
        (["query", "-c", "docs", "x", "--filter", '{"year": {"$near": 1}}'], "error: "),
        (["analogy", "king", "-", "-", "man", "-c", "docs"], "error: expression"),
    ],
)
def test_failures_exit_2_with_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    jsonl(Path("in.jsonl"), DOCS)
    Path("in.unknown").write_text("x")
    assert run(capsys, "build", "-c", "docs", "-i", "in.jsonl")[0] == 0
    code, out, err = run(capsys, *argv)
    assert code == 2, err
    assert err.startswith(message), err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert out == ""


def test_unknown_collection_names_the_ones_that_exist(capsys: pytest.CaptureFixture[str]) -> None:
    jsonl(Path("in.jsonl"), DOCS)
    run(capsys, "build", "-c", "docs", "-i", "in.jsonl")
    assert run(capsys, "info", "doc")[2].strip() == (
        "error: no collection named 'doc'; collections: docs"
    )


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys)[0] == 2
    code, _, err = run(capsys, "build", "-i", "x.jsonl")
    assert code == 2 and "--collection" in err
    code, _, err = run(capsys, "build", "-c", "d", "-i", "x.jsonl", "--metric", "hamming")
    assert code == 2 and "invalid choice" in err
    assert run(capsys, "--help")[0] == 0


def test_an_unknown_vp_variable_is_refused(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VP_DATADIR", "typo")
    code, _, err = run(capsys, "list")
    assert code == 2 and "VP_DATADIR" in err


# ---- the other subcommands ------------------------------------------------------------------
def test_query_prints_a_table_with_the_metric_and_its_direction(
    capsys: pytest.CaptureFixture[str],
) -> None:
    jsonl(Path("in.jsonl"), DOCS)
    run(capsys, "build", "-c", "docs", "-i", "in.jsonl")
    code, out, _ = run(
        capsys, "query", "-c", "docs", "the", "cat", "sat", "on", "the", "mat", "-k", "2"
    )
    lines = out.splitlines()
    assert code == 0
    assert lines[0] == "2 hits in 'docs', score = cosine similarity (higher is better)"
    assert lines[1].split() == ["#", "score", "id", "text", "metadata"]
    assert lines[2].split()[:3] == ["1", "1.0000", "cat"]
    _, out, _ = run(
        capsys, "query", "-c", "docs", "cat", "--filter", '{"source": "blog"}', "--json"
    )
    assert {h["metadata"]["source"] for h in json.loads(out)["hits"]} == {"blog"}


def test_words_then_analogy_returns_json_hits(capsys: pytest.CaptureFixture[str]) -> None:
    Path("w.txt").write_text(
        "# tiny vocabulary\nking queen man woman\nprince princess\napple pear\n"
    )
    code, out, _ = run(capsys, "words", "--words-file", "w.txt")
    assert code == 0 and out.startswith("'words' holds 8 words (8 new)")
    assert run(capsys, "words", "--words-file", "w.txt")[1].startswith(
        "'words' holds 8 words (0 new)"
    )
    for expr in (["king", "-", "man", "+", "woman"], ["king - man + woman"], ["king-man+woman"]):
        code, out, _ = run(capsys, "analogy", *expr, "--json", "--k", "3")
        res = json.loads(out)
        assert code == 0
        assert (res["positive"], res["negative"]) == (["king", "woman"], ["man"])
        assert len(res["hits"]) == 3
        assert not {"king", "man", "woman"} & {h["id"] for h in res["hits"]}
        assert set(res["hits"][0]["cosines"]) == {"king", "man", "woman"}
    code, out, _ = run(
        capsys,
        "analogy",
        "king",
        "-",
        "man",
        "+",
        "woman",
        "--method",
        "3cosmul",
        "--include-inputs",
    )
    assert code == 0 and "3cosmul over 'words', inputs included" in out.splitlines()[0]
    assert out.splitlines()[1].split() == [
        "#",
        "term",
        "score",
        "cos(king)",
        "cos(woman)",
        "cos(man)",
    ]


def test_analogy_without_a_words_collection_says_how_to_build_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = run(capsys, "analogy", "king - man + woman")
    assert code == 2
    assert err.startswith("error: no collection named 'words'")
    assert err.rstrip().endswith("(build one with: python -m indexer words)")


def test_words_without_a_vocabulary_asks_for_a_words_file(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = run(capsys, "words")
    assert code == 2 and "pass --words-file" in err


def test_info_list_rebuild_and_drop(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "list")[1].startswith("no collections in ")
    jsonl(Path("in.jsonl"), DOCS)
    run(capsys, "build", "-c", "docs", "-i", "in.jsonl")
    run(capsys, "build", "-c", "ann", "-i", "in.jsonl", "--index", "ivf")
    _, out, _ = run(capsys, "list")
    assert [line.split() for line in out.splitlines()] == [
        ["name", "count", "metric", "index", "dim", "embedder"],
        ["ann", "4", "cosine", "ivf", "384", "hash-384"],
        ["docs", "4", "cosine", "flat", "384", "hash-384"],
    ]
    _, out, _ = run(capsys, "info", "docs")
    info = {line.split(None, 1)[0]: line.split(None, 1)[1] for line in out.splitlines()}
    assert info["count"] == "4" and info["score"] == "similarity (higher is better)"
    assert info["keyword_index"] == '{"documents": 4}' and info["chunking"] == "null"
    code, out, _ = run(capsys, "rebuild", "docs")
    assert code == 0 and out.startswith("rebuilt 'docs': exact flat index, nothing to rebuild")
    code, out, _ = run(capsys, "rebuild", "ann", "--json")
    assert code == 0 and json.loads(out)["count"] == 4
    code, _, err = run(capsys, "drop", "docs")  # stdin is not a terminal here
    assert code == 2 and "without --yes" in err
    assert run(capsys, "drop", "docs", "--yes")[1] == "dropped 'docs' (4 documents)\n"
    assert [c["name"] for c in json.loads(run(capsys, "list", "--json")[1])] == ["ann"]


def test_common_options_work_before_and_after_the_subcommand(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    jsonl(Path("in.jsonl"), DOCS)
    other = tmp_path / "other"
    assert run(capsys, "--data-dir", str(other), "build", "-c", "a", "-i", "in.jsonl")[0] == 0
    assert (
        run(
            capsys,
            "build",
            "-c",
            "b",
            "-i",
            "in.jsonl",
            "--data-dir",
            str(other),
            "--embedder",
            "hash-64",
        )[0]
        == 0
    )
    _, out, _ = run(capsys, "list", "--json", "--data-dir", str(other))
    assert [(c["name"], c["dim"]) for c in json.loads(out)] == [("a", 384), ("b", 64)]


# ---- a real process -------------------------------------------------------------------------
def test_python_m_indexer_runs_in_a_subprocess(tmp_path: Path, env: Path) -> None:
    jsonl(tmp_path / "input.jsonl", DOCS, broken_at=2)
    environ = {**os.environ, "VP_DATA_DIR": str(env), "VP_EMBEDDER": "hash-384"}

    def indexer(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "indexer", *argv],
            capture_output=True,
            text=True,
            env=environ,
            cwd=tmp_path,
            timeout=120,
        )

    p = indexer("build", "--collection", "docs", "--input", "input.jsonl", "--index", "hnsw")
    assert p.returncode == 0, p.stderr
    assert p.stderr.startswith("input.jsonl:2: malformed JSON")
    assert p.stdout.startswith("read 5, indexed 4, unchanged 0, bad 1 in ")
    p = indexer("query", "--collection", "docs", "sea shore waves", "--json")
    assert p.returncode == 0 and json.loads(p.stdout)["hits"][0]["id"] == "sea"
    p = indexer("info", "missing")
    assert p.returncode == 2 and p.stderr.startswith("error: no collection named 'missing'")
    assert "Traceback" not in p.stderr


def test_standard_input_is_read_with_dash(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = b'{"id": "s1", "text": "piped in"}\nnot json\n'
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    code, out, err = run(capsys, "build", "-c", "docs", "-i", "-")
    assert code == 0 and out.startswith("read 2, indexed 1, unchanged 0, bad 1")
    assert err.startswith("stdin:2: malformed JSON")


def test_an_unreachable_service_fails_in_one_line(
    capsys: pytest.CaptureFixture[str], env: Path
) -> None:
    jsonl(Path("in.jsonl"), DOCS)
    code, out, err = run(
        capsys, "build", "-c", "docs", "-i", "in.jsonl", "--url", "http://127.0.0.1:9"
    )
    assert (code, out) == (2, "")
    assert err.startswith("error: cannot reach http://127.0.0.1:9") and err.count("\n") == 1
    assert not env.exists()  # a remote build leaves no local data directory behind


def test_an_interrupted_build_says_how_far_it_got_and_exits_130(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from indexer import readers

    def stream(*_: object, **__: object) -> Iterator[readers.Item]:
        yield readers.Record(1, "a", "first document")
        raise KeyboardInterrupt

    monkeypatch.setattr(readers, "read_records", stream)
    code, out, err = run(capsys, "build", "-c", "docs", "-i", "in.jsonl", "--batch-size", "1")
    assert (code, out) == (130, "")
    assert err.startswith("interrupted: read 1, indexed 1, unchanged 0, bad 0 in ")
    assert err.rstrip().endswith("re-run to resume")
