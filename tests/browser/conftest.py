"""The page in a real browser: Playwright (Python) driving Debian's Chromium, headless, against
the real server (all-MiniLM-L6-v2, API keys on) on 127.0.0.1.

Playwright cannot download browsers here, so it launches the system's `chromium`
(`apt-get install chromium`; `.ci/run` installs it). Without it the tests fail when they could
have installed it (root, as in CI) and skip, saying why, when they could not.
"""

from __future__ import annotations

import io
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import sync_playwright

from vector_primer_client import Client

from ..ops.live import LiveServer, live_server

HERE = Path(__file__).parent
ARTIFACTS = HERE / "artifacts"  # screenshots of every view, git-ignored
SCREENSHOTS = HERE.parents[1] / "docs" / "screenshots"  # copies for the README
KEY = "browser-test-key-1"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
NOTES = [
    ("n1", "The cat purred on the warm windowsill in the afternoon sun.", "pets"),
    ("n2", "A puppy chewed my new running shoes.", "pets"),
    ("n3", "Our old dog sleeps by the fire all evening.", "pets"),
    ("n4", "The stock market fell sharply today.", "money"),
    ("n5", "Interest rates were raised by the central bank.", "money"),
    ("n6", "Heavy rain is expected this weekend.", "weather"),
    ("n7", "A heat wave will bring record temperatures.", "weather"),
    ("n8", "The goldfish swims in circles in its bowl.", "pets"),
]


def chromium_path() -> str:
    path = shutil.which("chromium")
    if path is not None:
        return path
    hint = "apt-get install -y chromium (.ci/run does this)"
    if os.geteuid() == 0:
        pytest.fail(f"chromium is not installed; as root this run could have: {hint}")
    pytest.skip(f"chromium is not installed and this user cannot install it: {hint}")


# module scope, not session: Playwright's sync API keeps an asyncio loop running in this thread
# while it is open, and later tests that call asyncio.run() would fail
@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The real model; a small `words` collection (a few hundred words, with king, queen, man
    and woman) and a `notes` collection, both built through the API."""
    tmp = tmp_path_factory.mktemp("browser")
    settings = {"embedder": "all-MiniLM-L6-v2", "api_key": KEY}
    with live_server(tmp / "data", tmp / "server.log", timeout=120, **settings) as s:
        words = sorted(set((HERE / "words.txt").read_text().split()))
        with Client(s.url, KEY) as vp:
            vp.create_collection("words")
            vp.upsert("words", [{"id": w, "text": w} for w in words], batch_size=512)
            vp.create_collection("notes")
            vp.upsert(
                "notes",
                [{"id": i, "text": t, "metadata": {"topic": topic}} for i, t, topic in NOTES],
            )
        yield s


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = chromium_path()
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: Any, server: LiveServer) -> Iterator[Any]:
    """A fresh tab (its own sessionStorage) at 1200 px wide; fails the test on a JS error."""
    context = browser.new_context(viewport={"width": 1200, "height": 900}, base_url=server.url)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda e: errors.append(str(e)))
    tab.set_default_timeout(15_000)
    yield tab
    context.close()
    assert not errors, errors


def enter_key(page: Any) -> None:
    page.fill("#api-key", KEY)
    page.press("#api-key", "Enter")
    page.locator("#api-key").blur()  # `change` fires


def screenshot(page: Any, name: str, readme: bool = False) -> Path:
    """Save the view in tests/browser/artifacts/; with UPDATE_SCREENSHOTS=1 also copy the ones
    the README shows into docs/screenshots/."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if readme and os.environ.get("UPDATE_SCREENSHOTS") == "1":
        from PIL import Image  # matplotlib's dependency; 128 colours keep the PNGs small

        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shot = Image.open(io.BytesIO(page.screenshot(full_page=False))).convert("RGB")
        shot.quantize(128).save(SCREENSHOTS / f"{name}.png", optimize=True)
    return path
