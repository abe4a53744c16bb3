"""Request logs: one JSON line per request carrying the request id the response returns, plain
text on a terminal, and never an API key or a document's text."""

from __future__ import annotations

import io
import json
import logging
import re
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.logs import TextFormatter, access_log, configure_logging

from .conftest import make_app_client
from .live import live_server

KEY = "sk-live-0123456789abcdef"
SECRET_TEXT = "the launch code is 7-alpha-7"
QUERY_TEXT = "where is the launch code"


def request_lines(err: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    return [line for line in lines if line["logger"] == "vector_primer.access"]


def test_each_request_is_one_json_line_with_the_id_the_response_returns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with make_app_client(tmp_path) as client:
        capsys.readouterr()
        given = client.get("/v1/collections/missing", headers={"X-Request-ID": "trace-42.a:b"})
        made = client.post("/v1/collections", json={"name": "notes"})
        bad = client.get("/v1/collections", headers={"X-Request-ID": 'no spaces\t"or quotes"'})
        long = client.get("/v1/collections", headers={"X-Request-ID": "a" * 129})
    lines = request_lines(capsys.readouterr().err)
    assert len(lines) == 4, lines

    assert given.headers["x-request-id"] == "trace-42.a:b"
    first = lines[0]
    assert first["request_id"] == "trace-42.a:b"
    assert (first["method"], first["route"], first["status"]) == (
        "GET",
        "/v1/collections/{name}",
        404,
    )
    assert first["error"] == "collection_not_found" and first["level"] == "info"
    assert isinstance(first["duration_ms"], float) and first["duration_ms"] >= 0
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", first["ts"])

    generated = made.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated) and lines[1]["request_id"] == generated
    assert (lines[1]["route"], lines[1]["status"], "error" in lines[1]) == (
        "/v1/collections",
        201,
        False,
    )
    for refused, line in ((bad, lines[2]), (long, lines[3])):  # replaced, never echoed
        rid = refused.headers["x-request-id"]
        assert re.fullmatch(r"[0-9a-f]{32}", rid) and line["request_id"] == rid


def test_no_key_and_no_document_text_reach_the_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with make_app_client(tmp_path, api_key=KEY) as client:
        h = {"Authorization": f"Bearer {KEY}"}
        client.post("/v1/collections", json={"name": "vault"}, headers=h)
        doc = {"id": "d1", "text": SECRET_TEXT, "metadata": {"owner": SECRET_TEXT}}
        client.put("/v1/collections/vault/documents", json={"documents": [doc]}, headers=h)
        client.post("/v1/collections/vault/search", json={"query": QUERY_TEXT}, headers=h)
        client.get("/v1/analogy", params={"q": "launch-code+seven"}, headers={"api-key": KEY})
        client.get("/v1/collections", headers={"X-API-Key": KEY + "-wrong"})
        client.put("/v1/collections/vault/documents", json={"documents": [{"id": "x"}] * 0})
    err = capsys.readouterr().err
    assert len(request_lines(err)) == 6
    for secret in (KEY, SECRET_TEXT, QUERY_TEXT, "launch-code", "seven"):
        assert secret not in err


def test_text_on_a_terminal_json_elsewhere() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty, pipe = Terminal(), io.StringIO()
    try:
        for stream in (tty, pipe):
            configure_logging("info", "auto", stream=stream)
            access_log.info(
                "request",
                extra={"method": "GET", "route": "/livez", "status": 200, "duration_ms": 0.4},
            )
        configure_logging("info", "text", stream=pipe)  # asked for: text even into a pipe
        extra = {"method": "PUT", "route": "/x", "status": 413, "duration_ms": 1.5}
        access_log.info("request", extra={**extra, "error": "body_too_large"})
    finally:
        configure_logging("info", "json")
    assert re.fullmatch(r"\d\d:\d\d:\d\d\.\d{3} INFO  GET /livez 200 0\.4 ms\n", tty.getvalue())
    first, second = pipe.getvalue().splitlines()
    assert json.loads(first)["route"] == "/livez"
    assert second.endswith("INFO  PUT /x 413 1.5 ms body_too_large")


def test_text_lines_carry_the_request_id_and_tracebacks() -> None:
    fmt = TextFormatter()
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("vector_primer.service", 40, "f", 1, "failed", None, None)
        record.exc_info = sys.exc_info()
    record.request_id = "r-1"
    text = fmt.format(record)
    assert "ERROR failed  rid=r-1\nTraceback" in text and "ValueError: boom" in text


def test_the_real_server_logs_json_lines_only_after_start_up(tmp_path: Path) -> None:
    with live_server(tmp_path / "data", tmp_path / "server.log", api_key=KEY) as server:
        h = {"Authorization": f"Bearer {KEY}", "X-Request-ID": "from-the-client-1"}
        r = httpx.post(f"{server.url}/v1/collections", json={"name": "logs"}, headers=h)
        assert r.headers["x-request-id"] == "from-the-client-1"
        doc = {"id": "d", "text": SECRET_TEXT}
        httpx.put(
            f"{server.url}/v1/collections/logs/documents", json={"documents": [doc]}, headers=h
        )
        httpx.get(f"{server.url}/readyz")  # health checks: DEBUG, not in an info log
    text = server.log.read_text()
    after = text.split("Waiting for application startup.\n", 1)[1]
    lines = [json.loads(line) for line in after.splitlines()]  # every line is JSON
    requests = [line for line in lines if line["logger"] == "vector_primer.access"]
    assert [(r["method"], r["route"], r["status"]) for r in requests] == [
        ("POST", "/v1/collections", 201),
        ("PUT", "/v1/collections/{name}/documents", 200),
    ]
    assert {r["request_id"] for r in requests} == {"from-the-client-1"}
    assert any(line["msg"].startswith("Uvicorn running on") for line in lines)
    assert KEY not in text and SECRET_TEXT not in text
