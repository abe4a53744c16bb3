"""Peers in their own virtual environments, so their pins never touch ours.

    python -m bench.peers install [chroma] [txtai]

- chroma: `chromadb` (its Rust server, `chroma run`).
- txtai: `txtai[api]` with torch==2.13.0 (CPU) installed first, so pip never pulls a CUDA build.
"""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

from bench.data import CACHE

VENVS = CACHE / "venvs"
PACKAGES: dict[str, list[list[str]]] = {
    "chroma": [["chromadb"]],
    "txtai": [["torch==2.13.0"], ["txtai[api]"]],  # the CPU torch first, as our Makefile does
}


def python(name: str) -> Path:
    return VENVS / name / "bin" / "python"


def installed(name: str) -> bool:
    return (VENVS / name / ".installed").exists()


def install(name: str) -> Path:
    """Create the venv `name` and install its packages once; returns its python."""
    root = VENVS / name
    if installed(name):
        return python(name)
    venv.create(root, with_pip=True, clear=True)
    pip = [str(python(name)), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    for args in PACKAGES[name]:
        subprocess.run([*pip, *args], check=True)
    (root / ".installed").touch()
    return python(name)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] != "install":
        print(__doc__, file=sys.stderr)
        return 2
    for name in args[1:] or list(PACKAGES):
        print(f"installing {name} into {VENVS / name} ...", file=sys.stderr)
        print(install(name))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
