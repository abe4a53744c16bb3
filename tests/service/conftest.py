"""Fixtures for the HTTP service: an app on a fresh data directory with the hash embedder, and a
TestClient that runs the lifespan and records which routes the suite exercised."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from indexer import Settings
from service.app import create_app

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

HERE = Path(__file__).parent
COVERAGE_TEST = "test_every_openapi_route_is_exercised"
EXERCISED: set[tuple[str, str]] = set()  # (METHOD, URL path) requested this session
SESSION = {"whole_suite": False}


class RecordingClient(TestClient):
    """A TestClient that notes each (method, route) it calls, for the OpenAPI coverage test."""

    def request(self, method: str, url: Any, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        response = super().request(method, url, *args, **kwargs)
        EXERCISED.add((method.upper(), response.request.url.path))
        return response

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while self.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, self.get("/readyz").json()
            time.sleep(0.02)


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "embedder": "hash-384",
        "build_words": False,
        **overrides,
    }
    return Settings(**values)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    return create_app(settings)


@pytest.fixture
def client(app: FastAPI) -> Iterator[RecordingClient]:
    with RecordingClient(app) as c:
        c.wait_ready()
        yield c


def open_client(app: FastAPI, **kwargs: Any) -> RecordingClient:
    """For tests that build their own app (other settings): use as a context manager."""
    return RecordingClient(app, **kwargs)


DOCS = [
    {"id": "cat", "text": "the cat sat on the mat", "metadata": {"kind": "animal", "year": 2020}},
    {"id": "dog", "text": "the dog barked loudly", "metadata": {"kind": "animal", "year": 2021}},
    {"id": "car", "text": "a red car drove fast", "metadata": {"kind": "machine", "year": 2022}},
    {"id": "sun", "text": "the sun is a star", "metadata": {"kind": "sky", "year": 2023}},
]


@pytest.fixture
def docs(client: RecordingClient) -> RecordingClient:
    """A client whose `docs` collection (cosine, hash-384) holds DOCS."""
    assert client.post("/v1/collections", json={"name": "docs"}).status_code == 201
    r = client.put("/v1/collections/docs/documents", json={"documents": DOCS})
    assert r.status_code == 200, r.text
    return client


def describe(client: TestClient, name: str) -> dict[str, Any]:
    r = client.get(f"/v1/collections/{name}")
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def assert_error(r: Any, status: int, error: str | None = None, field: str | None = None) -> None:
    """The service's error shape: JSON {error, detail, field} and never a traceback."""
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) >= {"error", "detail", "field"}, body
    assert "Traceback" not in r.text
    if error is not None:
        assert body["error"] == error, body
    if field is not None:
        assert body["field"] == field, body


# ---- the OpenAPI coverage test runs last, and only when the whole service suite ran -----------
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    last = [i for i in items if i.name == COVERAGE_TEST]
    items[:] = [i for i in items if i.name != COVERAGE_TEST] + last
    ours = {Path(str(i.path)).name for i in items if Path(str(i.path)).parent == HERE}
    SESSION["whole_suite"] = ours == {p.name for p in HERE.glob("test_*.py")}


def pytest_deselected(items: list[pytest.Item]) -> None:
    """Skipping the real-model tests loses no route; deselecting any other service test may."""
    for i in items:
        if Path(str(i.path)).parent == HERE and i.get_closest_marker("model") is None:
            SESSION["whole_suite"] = False
