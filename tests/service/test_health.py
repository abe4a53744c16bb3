"""Liveness, readiness, the OpenAPI schema, /docs offline, and errors for unknown routes."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from indexer import Engine
from service.app import create_app
from service.warmup import Warmup

from .conftest import RecordingClient, assert_error, make_settings, open_client


def test_livez_answers(client: RecordingClient) -> None:
    r = client.get("/livez")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}


def test_readyz_lists_collections_once_ready(docs: RecordingClient) -> None:
    r = docs.get("/readyz")
    assert r.status_code == 200
    assert r.json()["status"] == "ready"
    assert "words" in r.json()


def test_readyz_is_503_until_warmup_finishes_while_livez_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = threading.Event()
    original = Warmup._run

    def slow_run(self: Warmup) -> None:
        gate.wait(10)
        original(self)

    monkeypatch.setattr(Warmup, "_run", slow_run)
    with open_client(create_app(make_settings(tmp_path))) as c:
        assert c.get("/livez").status_code == 200
        r = c.get("/readyz")
        assert_error(r, 503, "not_ready")
        assert "starting" in r.json()["detail"]
        assert c.get("/v1/collections").status_code == 200  # the API works meanwhile
        gate.set()
        c.wait_ready()


def test_readyz_reports_a_failed_start(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path, embedder="hash-x"))  # not a valid embedder name
    with open_client(app) as c:
        c.get("/livez")
        app.state.warmup.thread.join(10)
        r = c.get("/readyz")
        assert_error(r, 503, "not_ready")
        assert "start-up failed" in r.json()["detail"]


def test_words_build_is_skipped_for_an_embedder_without_vocabulary(tmp_path: Path) -> None:
    with open_client(create_app(make_settings(tmp_path, build_words=True))) as c:
        c.wait_ready()
        assert "no vocabulary" in c.get("/readyz").json()["words"]


def test_a_collection_that_cannot_open_is_reported_and_the_rest_served(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    engine = Engine(settings)
    engine.create_collection("good")
    engine.create_collection("broken")
    engine.close()
    (settings.data_dir / "broken" / "manifest.json").write_text("{not json")
    with open_client(create_app(settings)) as c:
        c.wait_ready()
        ready = c.get("/readyz").json()
        assert ready["collections"] == ["broken", "good"]
        assert "manifest" in ready["problems"]["broken"]
        assert c.get("/v1/collections/good").status_code == 200
        r = c.get("/v1/collections/broken")
        assert_error(r, 500, "corrupt_collection")
        assert "Traceback" not in r.text


def test_openapi_schema_is_served(client: RecordingClient) -> None:
    r = client.get("/openapi.json")
    assert r.status_code == 200
    paths = r.json()["paths"]
    assert "/v1/collections/{name}/search" in paths
    assert "/v1/embeddings" in paths


def test_docs_page_works_offline(client: RecordingClient) -> None:
    r = client.get("/docs")
    assert r.status_code == 200
    assert "static-offline-docs" in r.text  # assets served locally, no CDN
    assert client.get("/static-offline-docs/swagger-ui-bundle.js").status_code == 200


def test_unknown_route_and_method_are_json_errors(client: RecordingClient) -> None:
    assert_error(client.get("/v2/nothing"), 404, "not_found")
    assert_error(client.delete("/livez"), 405, "method_not_allowed")
