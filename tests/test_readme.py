"""The README is the user's first screen: it must show the two commands and every setting."""

from pathlib import Path

from indexer.settings import Settings

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_readme_first_screen_shows_make_run_and_make_test() -> None:
    first_screen = "\n".join(README.splitlines()[:20])
    assert "make run" in first_screen and "make test" in first_screen


def test_readme_names_every_setting() -> None:
    missing = [f"VP_{k.upper()}" for k in Settings.model_fields if f"VP_{k.upper()}" not in README]
    assert not missing, f"settings missing from the README: {missing}"
