"""R17: secure defaults. Loopback bind, CORS off unless allow-listed (and never with credentials),
no traceback, file path or echoed input in an error body, a refusal to serve the network without
a key unless told it is on purpose, and keys absent from a real server's log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from indexer import Settings
from indexer.errors import StorageError
from service import cli
from service.app import create_app

from .http_support import DOCS, http_settings, wait_ready

PREFLIGHT = {"Origin": "https://app.example", "Access-Control-Request-Method": "PUT"}


def test_the_defaults_are_the_safe_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(__import__("os").environ):
        if name.startswith("VP_"):
            monkeypatch.delenv(name)
    s = Settings()
    assert (s.host, s.cors_origins, s.allow_insecure) == ("127.0.0.1", "", False)
    assert s.api_key is None and s.read_only_api_key is None


def test_cors_is_off_by_default(tmp_path: Path) -> None:
    with TestClient(create_app(http_settings(tmp_path))) as c:
        r = c.options("/v1/collections", headers=PREFLIGHT)
        assert "access-control-allow-origin" not in r.headers
        r = c.get("/v1/collections", headers={"Origin": "https://app.example"})
        assert r.status_code == 200 and "access-control-allow-origin" not in r.headers


def test_cors_allows_only_the_listed_origins_and_never_credentials(tmp_path: Path) -> None:
    settings = http_settings(
        tmp_path, cors_origins="https://app.example, http://localhost:3000", api_key="k1"
    )
    with TestClient(create_app(settings)) as c:
        r = c.options("/v1/collections/docs/documents", headers=PREFLIGHT)  # no key needed
        assert r.status_code == 200
        assert r.headers["access-control-allow-origin"] == "https://app.example"
        assert "api-key" in r.headers["access-control-allow-headers"].lower()
        assert "access-control-allow-credentials" not in r.headers
        evil = {**PREFLIGHT, "Origin": "https://evil.example"}
        r = c.options("/v1/collections/docs/documents", headers=evil)
        assert "access-control-allow-origin" not in r.headers
        r = c.get("/v1/collections", headers={"Origin": "https://app.example"})
        assert r.status_code == 401  # CORS does not replace the key...
        assert r.headers["access-control-allow-origin"] == "https://app.example"  # ...but says why


def test_no_traceback_path_or_input_in_error_bodies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with TestClient(create_app(http_settings(tmp_path)), raise_server_exceptions=False) as c:
        wait_ready(c)
        c.post("/v1/collections", json={"name": "docs"})
        c.put("/v1/collections/docs/documents", json={"documents": DOCS})
        secret = "sekrit-value-123"
        r = c.put("/v1/collections/docs/documents", json={"documents": [{"id": 1, "text": secret}]})
        assert r.status_code == 422 and secret not in r.text  # pydantic's `input` is not echoed
        engine = c.app.state.engine  # type: ignore[attr-defined]

        def disk_error(*args: Any, **kwargs: Any) -> None:
            raise StorageError(f"write failed: [Errno 28] No space left: '{tmp_path}/x/store.db'")

        monkeypatch.setattr(engine, "list_collections", disk_error)
        r = c.get("/v1/collections")
        assert r.status_code == 503 and "No space left" in r.json()["detail"]
        assert str(tmp_path) not in r.text and "store.db" not in r.text

        def crash(*args: Any, **kwargs: Any) -> None:
            raise RuntimeError(f"boom in {tmp_path}/secret.py")

        monkeypatch.setattr(engine, "list_collections", crash)
        r = c.get("/v1/collections")
        assert r.status_code == 500 and r.json()["error"] == "internal_error"
        for leak in ("Traceback", "RuntimeError", "boom", str(tmp_path), ".py"):
            assert leak not in r.text


@pytest.fixture
def fake_uvicorn(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    import uvicorn

    seen: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn.Server, "run", lambda server: seen.update(host=server.config.host))
    monkeypatch.setattr(cli, "_exit_zero_after_graceful_shutdown", lambda server: None)
    for name in list(__import__("os").environ):
        if name.startswith("VP_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("VP_EMBEDDER", "hash-16")
    return seen


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "my-host.example"])
def test_serve_refuses_the_network_without_a_key(
    fake_uvicorn: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    host: str,
) -> None:
    assert cli.main(["serve", "--host", host, "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"refusing to bind {host} without an API key" in err and "--insecure" in err
    assert fake_uvicorn == {}


@pytest.mark.parametrize(
    ("argv", "env"),
    [
        (["--host", "127.0.0.1"], {}),
        (["--host", "::1"], {}),
        (["--host", "0.0.0.0", "--insecure"], {}),
        (["--host", "0.0.0.0"], {"VP_ALLOW_INSECURE": "true"}),
        (["--host", "0.0.0.0"], {"VP_API_KEY": "k1"}),
    ],
)
def test_serve_binds_loopback_a_key_or_an_explicit_insecure(
    fake_uvicorn: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    argv: list[str],
    env: dict[str, str],
) -> None:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert cli.main(["serve", *argv, "--data-dir", str(tmp_path)]) == 0
    assert fake_uvicorn["host"] == argv[1]


def test_serve_refuses_unusable_keys_before_binding(
    fake_uvicorn: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("VP_READ_ONLY_API_KEY", "ro-only")
    assert cli.main(["serve", "--data-dir", str(tmp_path)]) == 2
    assert "needs VP_API_KEY" in capsys.readouterr().err
    assert fake_uvicorn == {}


def test_a_real_server_never_logs_a_key(http_server: Any) -> None:
    rw, ro = "rw-4d8e-logged?", "ro-91c2-logged?"
    server = http_server(VP_API_KEY=rw, VP_READ_ONLY_API_KEY=ro, VP_LOG_LEVEL="debug").start()
    with httpx.Client(base_url=server.url, timeout=10) as http:
        for key in (rw, ro, "wrong-5e5e"):
            for header in ("Authorization", "api-key"):
                value = f"Bearer {key}" if header == "Authorization" else key
                http.post("/v1/collections", json={"name": "c"}, headers={header: value})
                http.get("/v1/collections", headers={header: value})
    code, _ = server.terminate(10)
    assert code == 0
    log = server.log_path.read_text()
    assert "/v1/collections" in log and "401" in log and "403" in log  # requests were logged
    assert rw not in log and ro not in log and "wrong-5e5e" not in log
