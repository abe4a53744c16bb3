"""Every plot is a real PNG of a sensible size with something drawn on it; and primer_math's
core imports neither matplotlib nor torch nor scipy."""

import ast
import io
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

from primer_math import plots
from primer_math.attention import Complexity, self_attention
from primer_math.descent import compare_learning_rates

PACKAGE = Path(__file__).resolve().parents[2] / "primer_math"


def decode(png: bytes) -> np.ndarray:
    assert png[:8] == plots.PNG_SIGNATURE
    return matplotlib.image.imread(io.BytesIO(png), format="png")


def assert_picture(png: bytes, min_width: int = 300, min_height: int = 250) -> None:
    image = decode(png)
    height, width = image.shape[:2]
    assert width >= min_width and height >= min_height
    assert image[..., :3].std() > 0.05  # not a blank canvas


def test_softmax_temperature_plot_is_a_png() -> None:
    assert_picture(plots.softmax_temperature_png([2.0, 1.0, 0.1]), 900, 350)


def test_softmax_plot_of_a_single_logit_warns_of_nothing(recwarn: pytest.WarningsRecorder) -> None:
    assert_picture(plots.softmax_temperature_png([3.0]), 900, 350)
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


def test_attention_heatmap_is_a_png(rng: np.random.Generator) -> None:
    tokens = ["the", "cat", "sat", "on", "the", "mat"]
    _, A = self_attention(rng.normal(size=(6, 8)))
    assert_picture(plots.attention_heatmap_png(A, tokens))


@pytest.mark.parametrize("surface", ["bowl", "rosenbrock", "saddle"])
def test_descent_plot_is_a_png_even_when_a_run_diverges(surface: str) -> None:
    runs = compare_learning_rates(surface, "sgd", steps=100)
    assert_picture(plots.descent_png(surface, runs), 600, 450)


def test_complexity_plot_is_a_png() -> None:
    result = Complexity((256, 512, 1024), (0.001, 0.0041, 0.0158), 1.99)
    assert_picture(plots.complexity_png(result))


def imported_top_level_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_primer_math_imports_numpy_and_the_standard_library_only() -> None:
    allowed = {"numpy", "primer_math", *sys.stdlib_module_names}
    extra = {"plots.py": {"matplotlib"}, "cli.py": {"indexer"}}  # lazy, inside functions
    for path in PACKAGE.glob("*.py"):
        outside = imported_top_level_modules(path) - allowed - extra.get(path.name, set())
        assert not outside, f"{path.name} imports {outside}"


def test_importing_primer_math_loads_no_heavy_library() -> None:
    code = (
        "import sys, primer_math.vectors, primer_math.softmax, primer_math.attention, "
        "primer_math.descent, primer_math.regression, primer_math.explain, primer_math.cli, "
        "primer_math.plots; "
        "print(sorted(m for m in ('matplotlib', 'torch', 'scipy', 'indexer') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
