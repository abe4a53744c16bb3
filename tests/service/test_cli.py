"""`vector-primer serve` / `python -m service` start-up checks, and `index` delegation."""

from __future__ import annotations

import os
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from service import cli

ROOT = Path(__file__).resolve().parents[2]


def run_service(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("VP_")}
    return subprocess.run(
        [sys.executable, "-m", "service", *args],
        env={**clean, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_an_unknown_vp_variable_stops_the_start_with_a_clear_message() -> None:
    done = run_service({"VP_PROT": "9000"})
    assert done.returncode == 2
    assert "unknown setting(s) VP_PROT" in done.stderr
    assert "VP_PORT" in done.stderr  # the known ones are listed
    assert "Traceback" not in done.stderr


def test_a_bad_setting_value_stops_the_start(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("VP_PORT", "eighty")
    assert cli.main(["serve"]) == 2
    assert "VP_PORT" in capsys.readouterr().err


def test_serve_passes_settings_and_flags_to_uvicorn(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import uvicorn

    seen: dict[str, Any] = {}

    def fake_run(server: uvicorn.Server) -> None:
        c = server.config
        seen.update(host=c.host, port=c.port, app=c.app)

    monkeypatch.setattr(uvicorn.Server, "run", fake_run)
    monkeypatch.setattr(cli, "_exit_zero_after_graceful_shutdown", lambda server: None)
    monkeypatch.setenv("VP_PORT", "9123")
    monkeypatch.setenv("VP_EMBEDDER", "hash-16")
    argv = ["serve", "--host", "0.0.0.0", "--insecure", "--data-dir", str(tmp_path)]
    assert cli.main(argv) == 0  # no key on 0.0.0.0 needs --insecure (tests/reliability)
    assert (seen["host"], seen["port"]) == ("0.0.0.0", 9123)
    assert seen["app"].state.settings.data_dir == tmp_path
    assert seen["app"].state.settings.embedder == "hash-16"
    assert cli.main(["serve", "--port", "9124"]) == 0
    assert seen["port"] == 9124


def test_index_delegates_to_the_batch_job_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[str]] = []
    fake = types.ModuleType("indexer.cli")
    fake.main = lambda argv: calls.append(argv) or 3  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "indexer.cli", fake)
    assert cli.main(["index", "build", "--collection", "c", "docs.jsonl"]) == 3
    assert calls == [["build", "--collection", "c", "docs.jsonl"]]


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == 2
    assert "serve" in capsys.readouterr().err
