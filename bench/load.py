"""A bounded closed-loop load generator on 127.0.0.1: `wrk` (C, with post.lua) when installed,
else an asyncio/httpx client. Each connection sends its next request when the last answer came.

A run is bounded in time (`seconds`) and, for the Python client, in count (`max_requests`).
Result: QPS, p50 and p99 latency in ms, errors (socket errors, timeouts and non-2xx answers).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np

LUA = Path(__file__).with_name("post.lua")


@dataclass
class Req:
    method: str
    path: str
    body: Any = None  # JSON-able, or None


@dataclass
class LoadResult:
    qps: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int
    connections: int
    tool: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def run(
    base: str,
    reqs: list[Req],
    connections: int,
    seconds: float = 5.0,
    max_requests: int = 1_000_000,
    tool: str = "auto",
) -> LoadResult:
    """Closed-loop load at `connections` for `seconds`; requests cycle through `reqs`."""
    if not base.startswith(("http://127.0.0.1", "http://localhost")):
        raise ValueError("load is only ever sent to this machine (127.0.0.1)")
    if tool == "wrk" or (tool == "auto" and shutil.which("wrk")):
        return _wrk(base, reqs, connections, seconds)
    return asyncio.run(_python(base, reqs, connections, seconds, max_requests))


def _wrk(base: str, reqs: list[Req], connections: int, seconds: float) -> LoadResult:
    with tempfile.NamedTemporaryFile("w", suffix=".tsv", delete=False) as f:
        for r in reqs:
            body = "" if r.body is None else json.dumps(r.body, separators=(",", ":"))
            f.write(f"{r.method}\t{r.path}\t{body}\n")
    try:
        out = subprocess.run(
            [
                "wrk",
                "-t1",
                f"-c{connections}",
                f"-d{max(1, round(seconds))}s",
                "--timeout",
                "10s",
                "-s",
                str(LUA),
                base,
            ],
            env={"WRK_REQUESTS": f.name, "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            check=True,
            timeout=seconds + 60,
        ).stdout
    finally:
        Path(f.name).unlink()
    line = next(x for x in out.splitlines() if x.startswith("WRKJSON "))
    s = json.loads(line.removeprefix("WRKJSON "))
    return LoadResult(
        qps=s["requests"] / (s["duration_us"] / 1e6),
        p50_ms=s["p50_us"] / 1000,
        p99_ms=s["p99_us"] / 1000,
        errors=s["socket_errors"] + s["status_errors"] + s["timeouts"],
        requests=s["requests"],
        connections=connections,
        tool="wrk",
    )


async def _python(
    base: str, reqs: list[Req], connections: int, seconds: float, max_requests: int
) -> LoadResult:
    latencies: list[float] = []
    errors = 0
    sent = 0
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=10.0) as client:
        t_end = time.perf_counter() + seconds

        async def worker(offset: int) -> None:
            nonlocal errors, sent
            i = offset
            while time.perf_counter() < t_end and sent < max_requests:
                sent += 1
                r = reqs[i % len(reqs)]
                i += connections
                t0 = time.perf_counter()
                try:
                    resp = await client.request(r.method, r.path, json=r.body)
                    ok = resp.is_success
                except httpx.HTTPError:
                    ok = False
                latencies.append(time.perf_counter() - t0)
                errors += not ok

        t0 = time.perf_counter()
        await asyncio.gather(*(worker(c) for c in range(connections)))
        elapsed = time.perf_counter() - t0
    lat = np.asarray(latencies) * 1000 if latencies else np.zeros(1)
    return LoadResult(
        qps=len(latencies) / elapsed,
        p50_ms=float(np.percentile(lat, 50)),
        p99_ms=float(np.percentile(lat, 99)),
        errors=errors,
        requests=len(latencies),
        connections=connections,
        tool="python",
    )
