"""With the real all-MiniLM-L6-v2, through the command line a user types:
`python -m indexer words --words-file ...` then `python -m indexer analogy king - man + woman`."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.model

# about 200 everyday words, with the royal and family ones the analogy needs
WORDS = """
king queen man woman prince princess boy girl father mother son daughter brother sister
husband wife uncle aunt nephew niece emperor empress duke duchess lord lady monarch throne
crown royal palace kingdom castle knight gentleman grandfather grandmother child baby
city town village country river mountain ocean sea lake forest desert island valley road
street bridge house home school church hospital market garden park farm field
dog cat horse cow pig sheep bird fish lion tiger bear wolf fox rabbit mouse snake eagle
car bus train plane ship boat bicycle book paper pen pencil table chair bed door window
wall floor roof phone computer camera clock watch lamp key box bag cup plate knife fork
bread cheese milk water coffee tea apple banana orange grape rice meat egg sugar salt
day night morning evening week month year summer winter spring autumn rain snow wind sun
moon star sky cloud storm doctor nurse teacher student soldier farmer worker artist writer
singer actor friend enemy big small old young new good bad happy sad fast slow hot cold dark
light strong weak rich poor run walk eat drink sleep read write sing dance play work speak
think love hate red blue green yellow black white one two three four five ten hundred
"""


def test_king_minus_man_plus_woman_is_queen_from_the_command_line(tmp_path: Path) -> None:
    (tmp_path / "words.txt").write_text(WORDS)
    env = {k: v for k, v in os.environ.items() if not k.startswith("VP_")}
    env.update(VP_DATA_DIR=str(tmp_path / "data"), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")

    def indexer(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "indexer", *argv],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=300,
        )

    p = indexer("words", "--words-file", "words.txt")
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.startswith(f"'words' holds {len(set(WORDS.split()))} words")
    p = indexer("analogy", "king", "-", "man", "+", "woman", "--json")
    assert p.returncode == 0, p.stderr[-2000:]
    res = json.loads(p.stdout)
    assert res["hits"][0]["id"] == "queen", res["hits"]
    assert [t["source"] for t in res["terms"]] == ["document"] * 3  # found in the collection
