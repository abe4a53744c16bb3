"""The `words` collection at start-up: built in the background while /livez answers, interrupted
cleanly by a shutdown, resumed on the next start. (The hash embedder is given a vocabulary here;
the real model's build is in test_server.py.)"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from indexer.embed import HashEmbedder
from service.app import create_app

from .conftest import make_settings, open_client

VOCABULARY = [f"w{i:04d}" for i in range(2048)]


@pytest.fixture(autouse=True)
def vocabulary(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(HashEmbedder, "vocabulary", lambda self: list(VOCABULARY))


def test_words_are_built_at_start_up(tmp_path: Path) -> None:
    with open_client(create_app(make_settings(tmp_path, build_words=True))) as c:
        c.wait_ready()
        assert c.get("/readyz").json()["words"] == f"ready ({len(VOCABULARY)} words)"
        r = c.get("/v1/analogy", params={"q": "w0001-w0002+w0003", "k": 1})
        assert r.status_code == 200 and r.json()["collection"] == "words"


def test_shutdown_interrupts_the_build_and_the_next_start_resumes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    embed = HashEmbedder.embed

    def slow_embed(self: HashEmbedder, texts: list[str]) -> object:
        time.sleep(0.2)
        return embed(self, texts)

    monkeypatch.setattr(HashEmbedder, "embed", slow_embed)
    settings = make_settings(tmp_path, build_words=True)
    app = create_app(settings)
    with open_client(app) as c:
        while "building" not in (detail := c.get("/readyz").json().get("detail", "")):
            time.sleep(0.02)
        assert c.get("/livez").status_code == 200
        started = time.monotonic()
    assert time.monotonic() - started < 5  # the lifespan stopped the build between batches
    assert not app.state.warmup.thread.is_alive()
    monkeypatch.setattr(HashEmbedder, "embed", embed)
    with open_client(create_app(settings)) as c:
        c.wait_ready()
        assert c.get("/v1/collections/words").json()["count"] == len(VOCABULARY)
    assert "building" in detail
