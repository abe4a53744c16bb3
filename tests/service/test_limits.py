"""What runs before any route: the API key, the body size limit; and the last-resort 500."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from starlette.types import Message

from service.app import create_app
from service.middleware import BodyLimitMiddleware

from .conftest import RecordingClient, assert_error, describe, make_settings, open_client

KEY = "s3cret-key"


@pytest.fixture
def keyed(tmp_path: Path) -> Any:
    with open_client(create_app(make_settings(tmp_path, api_key=KEY))) as c:
        c.wait_ready()
        yield c


def test_api_key_is_required_on_the_api(keyed: RecordingClient) -> None:
    r = keyed.get("/v1/collections")
    assert_error(r, 401, "unauthorized")
    assert r.headers["www-authenticate"] == "Bearer"
    assert_error(keyed.get("/v1/collections", headers={"Authorization": "Bearer wrong"}), 401)
    assert_error(keyed.get("/v1/collections", headers={"X-API-Key": KEY[:-1]}), 401)
    ok = keyed.get("/v1/collections", headers={"Authorization": f"Bearer {KEY}"})
    assert ok.status_code == 200
    assert keyed.get("/v1/collections", headers={"X-API-Key": KEY}).status_code == 200


def test_a_refused_key_changes_nothing(keyed: RecordingClient) -> None:
    r = keyed.post("/v1/collections", json={"name": "c"})
    assert_error(r, 401)
    assert keyed.get("/v1/collections", headers={"X-API-Key": KEY}).json()["collections"] == []


def test_health_and_docs_stay_open(keyed: RecordingClient) -> None:
    for path in (
        "/livez",
        "/readyz",
        "/docs",
        "/openapi.json",
        "/static-offline-docs/swagger-ui.css",
    ):
        assert keyed.get(path).status_code == 200, path


@pytest.fixture
def small(tmp_path: Path) -> Any:
    with open_client(create_app(make_settings(tmp_path, max_body_bytes=2048))) as c:
        c.wait_ready()
        c.post("/v1/collections", json={"name": "docs"})
        yield c


def test_a_body_over_the_limit_is_413_and_changes_nothing(small: RecordingClient) -> None:
    documents = [{"id": f"d{i}", "text": "word " * 20} for i in range(30)]
    r = small.put("/v1/collections/docs/documents", json={"documents": documents})
    assert_error(r, 413, "body_too_large")
    assert "2048" in r.json()["detail"]
    assert describe(small, "docs")["count"] == 0
    r = small.put("/v1/collections/docs/documents", json={"documents": documents[:2]})
    assert r.status_code == 200


def test_a_streamed_body_is_counted_too(small: RecordingClient) -> None:
    def chunks() -> Any:
        yield b'{"documents": ['
        for i in range(30):
            yield json.dumps({"id": f"d{i}", "text": "word " * 20}).encode() + b","
        yield b'{"id": "last", "text": "x"}]}'

    r = small.put(
        "/v1/collections/docs/documents",
        content=chunks(),
        headers={"content-type": "application/json"},
    )
    assert "content-length" not in r.request.headers
    assert_error(r, 413, "body_too_large")
    assert describe(small, "docs")["count"] == 0


def test_the_body_limit_middleware_never_calls_the_app_when_over() -> None:
    called: list[bool] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        called.append(True)

    sent: list[Message] = []
    incoming = [{"type": "http.request", "body": b"x" * 600, "more_body": True}] * 2

    async def receive() -> Message:
        return incoming.pop()

    async def send(message: Message) -> None:
        sent.append(message)

    mw = BodyLimitMiddleware(app, max_bytes=1000)
    asyncio.run(mw({"type": "http", "headers": []}, receive, send))
    assert not called
    assert sent[0]["status"] == 413


def test_an_unexpected_error_is_a_json_500_without_traceback(
    client: RecordingClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = client.app.state.engine  # type: ignore[attr-defined]

    def broken() -> None:
        raise RuntimeError("disk on fire at /secret/path")

    monkeypatch.setattr(engine, "list_collections", broken)
    r = open_client(client.app, raise_server_exceptions=False).get("/v1/collections")
    assert_error(r, 500, "internal_error")
    assert "secret" not in r.text
    assert "RuntimeError" not in r.text
