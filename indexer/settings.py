"""Settings from `VP_*` environment variables, validated once at start-up."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_MODEL = "all-MiniLM-L6-v2"
BF16 = "+bf16"  # "<model>+bf16": the model in bfloat16 (indexer/embed.py)
OPENVINO = "+openvino"  # "<model>+openvino": the model compiled by OpenVINO (indexer/embed.py)
BACKENDS = (BF16, OPENVINO)


class Settings(BaseSettings):
    """Every knob of the engine and the service. Unknown `VP_*` variables are refused by
    `check_environment`, so a typo (`VP_PROT=9000`) fails loudly instead of being ignored."""

    model_config = SettingsConfigDict(env_prefix="VP_", extra="forbid")

    data_dir: Path = Field(Path("data"), description="where collections live")
    embedder: str = Field(
        DEFAULT_MODEL,
        description="default embedder: 'all-MiniLM-L6-v2', a sentence-transformers path/name, "
        "or 'hash-<dim>' (deterministic, for tests)",
    )
    embed_backend: Literal["auto", "fp32", "bf16", "openvino"] = Field(
        "fp32",
        description="bf16: the default embedder becomes '<model>+bf16' (bfloat16 weights, about "
        "1.9x the texts/s of fp32 on a CPU with AMX; checked against fp32 when it loads; "
        "collections record the name, so fp32 and bf16 vectors never mix); openvino: "
        "'<model>+openvino', the model compiled by OpenVINO (bf16 where the CPU has it; needs "
        "the openvino extra; checked against fp32 when it loads); auto: when the CPU does "
        "bfloat16 natively (amx_bf16 or avx512_bf16), openvino if installed, else bf16; "
        "otherwise fp32",
    )
    embed_threads: int = Field(1, ge=1, le=64, description="torch threads for embedding")
    embed_batch_size: int = Field(64, ge=1, le=4096)
    faiss_threads: int = Field(
        1, ge=1, le=64, description="OpenMP threads for FAISS training and batch search"
    )
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    workers: int = Field(
        1,
        ge=1,
        le=64,
        description="server processes sharing the port (uvicorn workers): each opens every "
        "collection itself (memory x workers) and sees the others' writes at its next request",
    )
    build_words: bool = Field(True, description="build the 'words' collection on first start")
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["auto", "json", "text"] = Field(
        "auto", description="JSON lines, or text; auto: text on a terminal, else JSON"
    )
    max_body_bytes: int = Field(32 * 1024 * 1024, ge=1024)
    max_batch: int = Field(10_000, ge=1, description="max documents per upsert request")
    max_k: int = Field(1000, ge=1)
    write_lock_timeout_s: float = Field(
        2.0,
        gt=0,
        le=600,
        description="seconds a write waits for another process's write lock on a collection "
        "before failing with 409 collection_busy",
    )
    api_key: SecretStr | None = Field(
        None,
        description="read-write key; if set, every route but health and docs needs a key "
        "(Authorization: Bearer, api-key or X-API-Key header); empty = unset",
    )
    # ---- HTTP hardening (issue 6: service/auth.py, service/limits.py) ----
    api_key_file: Path | None = Field(None, description="read the read-write key from this file")
    read_only_api_key: SecretStr | None = Field(
        None, description="a key for reads only: writes answer 403 (needs a read-write key too)"
    )
    read_only_api_key_file: Path | None = Field(None, description="read-only key from a file")
    allow_insecure: bool = Field(
        False, description="allow binding a non-loopback address without an API key"
    )
    cors_origins: str = Field(
        "", description="comma-separated origins allowed by CORS; empty = CORS off"
    )
    max_concurrency: int = Field(
        32, ge=1, le=10_000, description="requests handled at once; more wait, then 503"
    )
    queue_timeout: float = Field(
        1.0, ge=0, le=60, description="seconds a request waits for a free slot before 503"
    )
    body_timeout: float = Field(
        30.0, gt=0, le=3600, description="seconds a client has to send its whole body (408)"
    )

    @field_validator("embed_backend")
    @classmethod
    def _backend_installed(cls, value: str) -> str:
        if value == "openvino" and not openvino_available():
            raise ValueError(
                "openvino needs the openvino extra: pip install 'vector-primer[openvino]'"
            )
        return value

    @model_validator(mode="after")
    def _backend_in_name(self) -> Settings:
        """The backend is part of the default embedder's name (a model path of our own)."""
        plain = self.embedder.startswith("hash-") or self.embedder.endswith(BACKENDS)
        if plain:
            return self
        backend = self.embed_backend
        if backend == "auto":  # decided by what this machine has, so the same on every start
            backend = "fp32"
            if cpu_has_bf16():
                backend = "openvino" if openvino_available() else "bf16"
        if backend == "openvino":
            self.embedder += OPENVINO
        elif backend == "bf16":
            self.embedder += BF16
        return self


def openvino_available() -> bool:
    """Whether the openvino extra is installed (found, not imported: that takes a while)."""
    import importlib.util

    return importlib.util.find_spec("openvino") is not None


def cpu_has_bf16() -> bool:
    """Whether the CPU computes in bfloat16 natively (Linux: /proc/cpuinfo flags)."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def check_environment(environ: dict[str, str] | None = None) -> None:
    """Raise ValueError naming every `VP_*` variable that is not a known setting."""
    env = os.environ if environ is None else environ
    known = {f"VP_{name.upper()}" for name in Settings.model_fields}
    unknown = sorted(k for k in env if k.upper().startswith("VP_") and k.upper() not in known)
    if unknown:
        raise ValueError(
            f"unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )


def load_settings(**overrides: object) -> Settings:
    check_environment()
    return Settings(**overrides)  # type: ignore[arg-type]
