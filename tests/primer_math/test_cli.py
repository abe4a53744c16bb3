"""Every command of ``python -m primer_math``, through main(argv) and once as a real process."""

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

from primer_math.cli import main

REPO = Path(__file__).resolve().parents[2]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_softmax_prints_the_worked_example(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "softmax", "2.0", "1.0", "0.1")
    assert code == 0 and "0.6590" in out and "0.2424" in out and "0.0986" in out


def test_softmax_with_temperature_and_top_p_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "softmax", "2.0", "1.0", "0.1", "--temperature", "0.5",
                       "--top-p", "0.9", "--json")  # fmt: skip
    data = json.loads(out)
    assert code == 0 and data["kept"] == [0, 1]
    np.testing.assert_allclose(data["probs"], [0.8638, 0.1169, 0.0193], atol=1e-4)
    assert sum(data["sampled_probs"]) == pytest.approx(1.0) and data["sampled_probs"][2] == 0.0


def test_negative_logits_are_numbers_not_options(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "softmax", "-1", "-2", "--json")
    assert code == 0 and json.loads(out)["logits"] == [-1.0, -2.0]


def test_attention_over_hash_embedder_tokens(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "attention", "the cat sat on the mat", "--embedder", "hash-384",
                       "--json")  # fmt: skip
    data = json.loads(out)
    assert code == 0 and data["tokens"] == ["the", "cat", "sat", "on", "the", "mat"]
    np.testing.assert_allclose(np.sum(data["weights"], axis=1), 1.0)


@pytest.mark.model
def test_attention_over_the_real_models_token_embeddings(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(capsys, "attention", "the cat sat on the mat")
    assert code == 0 and "[CLS]" in out and "strongest link" in out
    code, out, _ = run(capsys, "attention", "the cat sat on the mat", "--causal", "--json")
    A = np.array(json.loads(out)["weights"])
    assert A.shape == (8, 8) and np.allclose(np.triu(A, 1), 0) and np.allclose(A.sum(1), 1)


def test_descent_reaches_the_rosenbrock_minimum_with_adam(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(capsys, "descent", "--optimizer", "adam", "--surface", "rosenbrock")
    assert code == 0 and "adam on rosenbrock, lr=0.1" in out
    code, out, _ = run(capsys, "descent", "--optimizer", "adam", "--surface", "rosenbrock",
                       "--json")  # fmt: skip
    data = json.loads(out)
    assert data["diverged"] is False and data["losses"][-1] < 1e-4  # from 24.2 at the start
    np.testing.assert_allclose(data["trajectory"][-1], [1.0, 1.0], atol=1e-2)


def test_descent_reports_divergence(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "descent", "--optimizer", "sgd", "--surface", "bowl", "--lr", "0.5")
    assert code == 0 and "DIVERGED" in out


def test_explain_a_topic_list_topics_and_refuse_unknown(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(capsys, "explain", "attention")
    assert code == 0 and out.startswith("Attention as a similarity-weighted average")
    code, out, _ = run(capsys, "explain", "geometry", "--json")
    assert json.loads(out)["topic"] == "vectors"
    code, out, _ = run(capsys, "explain")
    assert code == 0 and "softmax" in out
    code, _, err = run(capsys, "explain", "astrology")
    assert code == 2 and "unknown topic" in err


@pytest.mark.parametrize(
    "argv",
    [
        ["softmax", "--logits", "3", "1", "0.2", "-1"],
        ["attention", "--embedder", "hash-384", "--text", "a dog chased the red ball"],
        ["descent", "--surface", "saddle", "--optimizer", "momentum", "--steps", "100"],
        ["complexity", "--ns", "64", "128", "256", "--repeats", "2"],
    ],
    ids=lambda argv: argv[0],
)
def test_plot_writes_a_png(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str]
) -> None:
    out_file = tmp_path / f"{argv[0]}.png"
    code, out, _ = run(capsys, "plot", argv[0], "--out", str(out_file), *argv[1:])
    assert code == 0 and "wrote" in out
    image = matplotlib.image.imread(io.BytesIO(out_file.read_bytes()), format="png")
    assert image.shape[0] >= 250 and image.shape[1] >= 300


def test_python_dash_m_primer_math_runs_as_a_program() -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "primer_math", "softmax", "2.0", "1.0", "0.1", "--temperature",
         "0.5"], capture_output=True, text=True, cwd=REPO, env=env, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "softmax at T=0.5" in done.stdout and "0.8638" in done.stdout


def test_bad_arguments_exit_with_usage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["descent", "--optimizer", "lion"])
    assert exit_info.value.code == 2 and "invalid choice" in capsys.readouterr().err
