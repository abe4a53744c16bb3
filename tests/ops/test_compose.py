"""docker-compose.yml, the Dockerfile and the README's deploy section, checked without a Docker
engine: the compose file against the compose specification (check-jsonschema, and Debian's
docker-compose when installed), what each service runs against our own CLIs and settings, and
the healthcheck's exact command against a real server."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from indexer.cli import make_parser
from indexer.settings import Settings, check_environment

from .live import ROOT, free_port, live_server

COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
README = ROOT / "README.md"
SETTINGS = {f"VP_{name.upper()}" for name in Settings.model_fields}


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def tool(name: str) -> str:
    """A console script of the venv running the tests, else one on PATH."""
    here = Path(sys.executable).parent / name
    found = str(here) if here.exists() else shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed (pip install -e '.[dev]')")
    return found


def validate(path: Path) -> subprocess.CompletedProcess[str]:
    cmd = [tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(path)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


def test_the_compose_file_validates_against_the_compose_spec(tmp_path: Path) -> None:
    ok = validate(COMPOSE)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    typo = tmp_path / "docker-compose.yml"  # the validator does catch mistakes
    typo.write_text(COMPOSE.read_text().replace("    healthcheck:", "    helthcheck:", 1))
    bad = validate(typo)
    assert bad.returncode != 0 and "helthcheck" in bad.stdout + bad.stderr


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="Debian's docker-compose absent")
def test_debians_docker_compose_accepts_it_and_insists_on_a_key(tmp_path: Path) -> None:
    def config(**env: str) -> subprocess.CompletedProcess[str]:
        cmd = ["docker-compose", "-f", str(COMPOSE), "config", "-q"]
        return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path)

    assert config(VP_API_KEY="k", PATH="/usr/bin:/bin").returncode == 0
    missing = config(PATH="/usr/bin:/bin")
    assert missing.returncode != 0 and "set VP_API_KEY" in missing.stderr


def test_the_api_service_is_a_durable_healthy_server() -> None:
    api = compose()["services"]["api"]
    assert api["build"] == "." and api["restart"] in ("always", "unless-stopped")
    env = api["environment"]
    assert set(env) <= SETTINGS, set(env) - SETTINGS  # the service refuses unknown VP_*
    check_environment({k: "x" for k in env})
    assert env["VP_DATA_DIR"] == "/data" and "vp-data:/data" in api["volumes"]
    assert "vp-data" in compose()["volumes"]
    assert env["VP_API_KEY"].startswith("${VP_API_KEY:?")  # listening beyond loopback: a key
    assert api["ports"] == ["${VECTOR_PRIMER_ADDR:-127.0.0.1:8000}:8000"]
    check = api["healthcheck"]
    assert check["test"][:5] == ["CMD", "python", "-m", "vector_primer_client", "ready"]
    assert check["test"][5:] == ["--url", "http://127.0.0.1:8000"]
    assert re.fullmatch(r"\d+s", check["start_period"]) and check["retries"] >= 3


def test_the_indexer_is_a_one_shot_job_through_the_api(tmp_path: Path) -> None:
    job = compose()["services"]["indexer"]
    assert job["profiles"] == ["indexer"] and job["restart"] == "no"
    assert job["image"] == compose()["services"]["api"]["image"]
    assert job["depends_on"] == {"api": {"condition": "service_healthy"}}
    assert set(job["environment"]) <= SETTINGS
    assert job["volumes"] == ["${VECTOR_PRIMER_INPUT:-./input}:/input:ro"]
    command = [re.sub(r"\$\{\w+:-(\w+)\}", r"\1", part) for part in job["command"]]
    assert command[:3] == ["vector-primer", "index", "build"]
    args = make_parser().parse_args(command[2:])  # what our own CLI makes of it
    assert (args.collection, args.input, args.url) == ("docs", "/input", "http://api:8000")


def test_the_dockerfile_installs_cpu_torch_first_bakes_the_model_and_drops_root() -> None:
    text = DOCKERFILE.read_text()
    steps = [line for line in text.splitlines() if re.match(r"^[A-Z]+ ", line)]
    torch = next(i for i, s in enumerate(steps) if "torch==2.13.0" in s)
    project = next(i for i, s in enumerate(steps) if s.startswith("RUN pip install ."))
    assert torch < project and "download.pytorch.org/whl/cpu" in steps[torch]
    assert "load_embedder().embed(" in text  # the model loads offline at build time
    assert "HF_HUB_OFFLINE=1" in text
    user = [s.split()[1] for s in steps if s.startswith("USER ")]
    assert user and user[-1] not in ("root", "0")
    assert steps.index(f"USER {user[-1]}") > project
    assert 'CMD ["vector-primer", "serve"]' in steps and "EXPOSE 8000" in steps
    assert "VP_HOST=0.0.0.0" in text and "VP_DATA_DIR=/data" in text
    include = re.search(r"include = \[(.*)\]", (ROOT / "pyproject.toml").read_text())
    assert include is not None
    for package in re.findall(r'"(\w+)\*"', include.group(1)):
        assert f"COPY {package} ./{package}" in text, package
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", "data", "tests", ".git"} <= set(ignored)


def test_the_readme_shows_the_commands_for_what_the_file_defines() -> None:
    readme = README.read_text()
    assert "## Deploy with docker compose" in readme
    section = readme.split("## Deploy with docker compose", 1)[1].split("\n## ", 1)[0]
    commands = [c for c in re.findall(r"^\$? ?(docker compose .*)$", section, re.M)]
    assert len(commands) >= 4, commands
    services, volumes = compose()["services"], compose()["volumes"]
    profiles = {p for s in services.values() for p in s.get("profiles", [])}
    for command in commands:
        for profile in re.findall(r"--profile (\S+)", command):
            assert profile in profiles, command
        named = re.search(r" (?:up -d|run --rm|logs(?: -f)?|ps|stop|restart) (\w+)", command)
        if named:
            assert named.group(1) in services, command
    assert "docker compose up -d api" in section
    assert "docker compose --profile indexer run --rm indexer" in section
    for name in [*volumes, "VP_API_KEY", "VECTOR_PRIMER_INPUT", "/readyz", "/metrics"]:
        assert name in section, name


def test_the_healthcheck_command_answers_for_a_real_server(tmp_path: Path) -> None:
    test = compose()["services"]["api"]["healthcheck"]["test"][1:]
    assert test[0] == "python"
    test[0] = sys.executable  # the image's python is the one with the project installed
    with live_server(tmp_path / "data", tmp_path / "log") as server:
        up = [server.url if a == "http://127.0.0.1:8000" else a for a in test]
        done = subprocess.run(up, cwd=ROOT, capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
    down = [f"http://127.0.0.1:{free_port()}" if a.startswith("http") else a for a in test]
    assert subprocess.run(down, cwd=ROOT, capture_output=True, timeout=30).returncode == 1


def test_the_page_ships_in_the_package(tmp_path: Path) -> None:
    """`pip install .` (what the Dockerfile runs) must carry service/static/, not only .py."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for package in ("indexer", "service", "primer_math", "vector_primer_client"):
        shutil.copytree(ROOT / package, src / package, ignore=shutil.ignore_patterns("__py*"))
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
    done = subprocess.run([*cmd, "-w", str(tmp_path), str(src)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    (wheel,) = tmp_path.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    page = {p.name for p in (ROOT / "service" / "static").iterdir()}
    assert {f"service/static/{name}" for name in page} <= names
    assert "vector_primer_client/client.py" in names
