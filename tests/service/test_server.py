"""The real thing: `python -m service` as a subprocess with the real model, on an ephemeral
port, answering over HTTP; then SIGTERM and a clean exit."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 120.0  # model load + embedding the 21,745-word vocabulary (~25 s on 2 cores)

NOTES = [
    {"id": "n1", "text": "The cat purred on the warm windowsill.", "metadata": {"topic": "pets"}},
    {"id": "n2", "text": "A puppy chewed my new shoes.", "metadata": {"topic": "pets"}},
    {"id": "n3", "text": "The stock market fell sharply today.", "metadata": {"topic": "money"}},
    {
        "id": "n4",
        "text": "Interest rates were raised by the central bank.",
        "metadata": {"topic": "money"},
    },
    {"id": "n5", "text": "Heavy rain is expected this weekend.", "metadata": {"topic": "weather"}},
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


Server = tuple[httpx.Client, "subprocess.Popen[bytes]", Path]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("server")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("VP_")}
    env.update(
        VP_DATA_DIR=str(tmp / "data"),
        VP_PORT=str(port),
        VP_HOST="127.0.0.1",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
    )
    log = (tmp / "server.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "service"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
    try:
        wait_ready(client, proc, tmp / "server.log")
        yield client, proc, tmp / "server.log"
    finally:
        client.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()


def wait_ready(client: httpx.Client, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    state = "no answer yet"
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"server exited early:\n{server_log(log)}"
        try:
            r = client.get("/readyz")
            if r.status_code == 200:
                return
            state = r.json()["detail"]
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    pytest.fail(f"not ready after {START_TIMEOUT} s ({state}):\n{server_log(log)}")


def server_log(log: Path) -> str:
    """The server's log without the access lines of our /readyz polling."""
    lines = [line for line in log.read_text().splitlines() if "GET /readyz" not in line]
    return "\n".join(lines[-40:])


@pytest.mark.model
@pytest.mark.slow
def test_real_server_end_to_end(server: Server) -> None:
    http, proc, log = server
    assert http.get("/livez").json() == {"status": "ok"}
    ready = http.get("/readyz").json()
    assert ready["collections"] == ["words"] and ready["words"].startswith("ready (")

    r = http.post("/v1/collections", json={"name": "notes"})
    assert r.status_code == 201, r.text
    assert (r.json()["embedder"], r.json()["dim"]) == ("all-MiniLM-L6-v2", 384)
    r = http.put("/v1/collections/notes/documents", json={"documents": NOTES})
    assert r.json()["count"] == 5

    search = "/v1/collections/notes/search"
    r = http.post(search, json={"query": "kitten", "k": 2})
    assert r.json()["hits"][0]["id"] == "n1"
    r = http.post(search, json={"query": "finance news", "k": 5, "filter": {"topic": "money"}})
    assert {h["id"] for h in r.json()["hits"]} == {"n3", "n4"}

    emb = http.post(
        "/v1/embeddings",
        json={
            "input": ["will it rain on saturday?"],
            "model": "sentence-transformers/all-MiniLM-L6-v2",
        },
    )
    body = emb.json()
    assert body["model"] == "all-MiniLM-L6-v2" and body["usage"]["prompt_tokens"] > 5
    vector = body["data"][0]["embedding"]
    assert len(vector) == 384
    r = http.post(search, json={"vector": vector, "k": 1})
    assert r.json()["hits"][0]["id"] == "n5"

    r = http.get("/v1/analogy", params={"q": "king-man+woman"})
    assert r.json()["hits"][0]["id"] == "queen"
    r = http.post(
        "/v1/analogy",
        json={"positive": ["king", "woman"], "negative": ["man"], "method": "3cosmul"},
    )
    assert r.json()["hits"][0]["id"] == "queen"

    r = http.post("/v1/similarity", json={"texts": ["a cat", "a kitten", "a truck"]})
    cos = r.json()["cosine"]
    assert cos[0][1] > cos[0][2]

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 0
    assert "Application shutdown complete" in log.read_text()
