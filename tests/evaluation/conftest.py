"""Fixtures for the evaluation tests: tiny data files written into tmp_path, a hash-embedder
service, and (for the `model` tests) one engine with all-MiniLM-L6-v2 shared by the session."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from indexer import Engine, Settings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = Path(os.environ.get("SHARED_DATA", REPO.parent / "shared" / "data"))


def shared(*parts: str) -> Path:
    """A path under ../shared/data, or skip the test saying where it looked."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared evaluation data not found at {path} (set SHARED_DATA)")
    return path


@pytest.fixture
def shared_data() -> Callable[..., Path]:
    """`shared_data("stsbenchmark", "sts-test.csv")`: the path, or a skip naming it."""
    return shared


@pytest.fixture(scope="session")
def real_engine(real_embedder, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:  # type: ignore[no-untyped-def]
    """An engine on all-MiniLM-L6-v2 (the session's loaded model) in a fresh data directory."""
    eng = Engine(
        Settings(data_dir=tmp_path_factory.mktemp("eval-data"), embedder=real_embedder.name)
    )
    yield eng
    eng.close()


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[[str], Any]]:
    """`serve("hash-384")`: a started TestClient (an httpx client) over the real app on a fresh
    data directory, or a skip if the service package is not importable."""
    app_module = pytest.importorskip("service.app", reason="service.app is not importable yet")
    from fastapi.testclient import TestClient

    clients: list[Any] = []

    def start(embedder: str) -> Any:
        settings = Settings(
            data_dir=tmp_path / f"served-{len(clients)}", embedder=embedder, build_words=False
        )
        client = TestClient(app_module.create_app(settings))
        client.__enter__()
        clients.append(client)
        deadline = time.monotonic() + 60
        while client.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, client.get("/readyz").text
            time.sleep(0.02)
        return client

    yield start
    for c in clients:
        c.__exit__(None, None, None)
