"""Fixtures for the operations tests: an in-process app on the hash embedder (fast), and the
real server in a subprocess (`live.py`) where the wire, the process and its log matter."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from indexer import Settings
from service.app import create_app

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

DOCS = [
    {"id": "cat", "text": "the cat sat on the mat", "metadata": {"kind": "animal", "year": 2020}},
    {"id": "dog", "text": "the dog barked loudly", "metadata": {"kind": "animal", "year": 2021}},
    {"id": "car", "text": "a red car drove fast", "metadata": {"kind": "machine", "year": 2022}},
    {"id": "sun", "text": "the sun is a star", "metadata": {"kind": "sky", "year": 2023}},
]


def make_app_client(tmp_path: Path, **overrides: Any) -> TestClient:
    values: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "embedder": "hash-384",
        "build_words": False,
        "log_format": "json",
        **overrides,
    }
    return TestClient(create_app(Settings(**values)))


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with make_app_client(tmp_path) as c:
        yield c


@pytest.fixture
def docs(client: TestClient) -> TestClient:
    """A client whose collection `docs` (flat, cosine, hash-384) holds DOCS."""
    assert client.post("/v1/collections", json={"name": "docs"}).status_code == 201
    r = client.put("/v1/collections/docs/documents", json={"documents": DOCS})
    assert r.status_code == 200, r.text
    return client
