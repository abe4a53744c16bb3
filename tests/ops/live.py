"""A real server for tests: `python -m service serve` in a subprocess on 127.0.0.1 and an
ephemeral port, its log (stderr) kept in a file, stopped with SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LiveServer:
    url: str
    port: int
    log: Path
    proc: subprocess.Popen[bytes]

    def log_lines(self) -> list[str]:
        return self.log.read_text(encoding="utf-8", errors="replace").splitlines()


@contextmanager
def live_server(
    data_dir: Path, log: Path, timeout: float = 60.0, **settings: str
) -> Iterator[LiveServer]:
    """Start the service with `VP_<NAME>` = value for each setting (hash-384 embedder and no
    `words` build unless given) and wait for /readyz; stop it on exit."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("VP_")}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    env.update(VP_EMBEDDER="hash-384", VP_BUILD_WORDS="false", VP_LOG_FORMAT="json")
    env.update({f"VP_{k.upper()}": v for k, v in settings.items()})
    env.update(VP_DATA_DIR=str(data_dir), VP_HOST="127.0.0.1", VP_PORT=str(port))
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "service", "serve"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = LiveServer(f"http://127.0.0.1:{port}", port, log, proc)
    try:
        _wait_ready(server, timeout)
        yield server
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait_ready(server: LiveServer, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=5) as http:
        while time.monotonic() < deadline:
            if server.proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{server.log.read_text()[-3000:]}")
            try:
                if http.get(f"{server.url}/readyz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
    raise RuntimeError(f"server not ready after {timeout} s:\n{server.log.read_text()[-3000:]}")
