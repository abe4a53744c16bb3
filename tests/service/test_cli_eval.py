"""`vector-primer eval` is the evaluation CLI, reached through the one console script."""

from __future__ import annotations

import json
from pathlib import Path

from service.cli import main


def test_vector_primer_eval_runs_a_task(tmp_path: Path) -> None:
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("cat\tcat\t10\ncat\tdog\t5\nbank\tsummer\t1\nsea\tsea\t9\n")
    out = tmp_path / "result.json"
    code = main(
        [
            "eval",
            "wordsim",
            str(pairs),
            "--embedder",
            "hash-384",
            "--quiet",
            "--data-dir",
            str(tmp_path / "data"),
            "--out",
            str(out),
        ]
    )
    assert code == 0
    result = json.loads(out.read_text())
    assert "spearman" in json.dumps(result).lower()


def test_vector_primer_eval_reports_a_missing_file(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    code = main(["eval", "sts", str(tmp_path / "missing.tsv"), "--embedder", "hash-384"])
    assert code != 0
    assert "missing.tsv" in capsys.readouterr().err
