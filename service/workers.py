"""`serve --workers N`: N server processes on one port, each listening on a socket of its own
(SO_REUSEPORT), so the kernel spreads new connections across the workers by their addresses.

uvicorn's own `--workers` shares one listening socket: the first worker to wake accepts every
connection waiting, so a client that opens its 8 keep-alive connections at once could get all of
them on one worker (bench: one round in three at ~1,250 QPS instead of ~2,200). Here each worker
binds its own socket, as nginx's `reuseport` does.

The parent only supervises: it starts the workers (spawned, so each imports the app afresh and
reads its settings from the VP_* environment), restarts one that dies after it had started,
stops them all on SIGTERM or SIGINT (each shuts down gracefully), and exits 2 when none got
through its start-up."""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import time
from multiprocessing.process import BaseProcess
from pathlib import Path

from prometheus_client.multiprocess import mark_process_dead

log = logging.getLogger("vector_primer.service")
GRACE_S = 15.0  # uvicorn's graceful shutdown (10 s) and a margin, before SIGKILL


def _socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def _worker(host: str, port: int, log_level: str) -> None:
    """One worker, in its own process: its own socket on the shared port, then uvicorn."""
    import uvicorn

    sock = _socket(host, port)
    sock.listen(2048)
    config = uvicorn.Config(
        "service.app:create_app",
        factory=True,
        log_level=log_level,
        timeout_graceful_shutdown=10,
    )
    uvicorn.Server(config).run(sockets=[sock])


def _started(metrics_dir: Path, pid: int | None) -> bool:
    return pid is not None and (metrics_dir / f"started-{pid}").exists()


def run(host: str, port: int, workers: int, log_level: str, metrics_dir: Path) -> int:
    """Supervise `workers` processes until SIGTERM/SIGINT; the exit code of `serve`."""
    # the port is taken here first (bound, not listening: no connection is queued to it), so
    # a port in use is one clear error, and port 0 becomes one port for every worker
    holder = _socket(host, port)  # OSError: the caller says which port and why
    port = holder.getsockname()[1]
    ctx = multiprocessing.get_context("spawn")
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}

    def start() -> BaseProcess:
        proc = ctx.Process(target=_worker, args=(host, port, log_level), name="vp-worker")
        proc.start()
        return proc

    procs = [start() for _ in range(workers)]
    ever_started, dead = False, set[int]()
    try:
        while not stopping:
            time.sleep(0.2)
            for i, proc in enumerate(procs):
                if proc.is_alive():
                    ever_started = ever_started or _started(metrics_dir, proc.pid)
                    continue
                if proc.pid is not None and proc.pid not in dead:  # its live gauges: not summed
                    mark_process_dead(proc.pid, str(metrics_dir))  # type: ignore[no-untyped-call]
                    dead.add(proc.pid)
                if _started(metrics_dir, proc.pid):  # it served, then died: replace it
                    ever_started = True
                    log.error("worker %s exited with %s; starting another", proc.pid, proc.exitcode)
                    procs[i] = start()
            if not any(p.is_alive() for p in procs):  # each died during its start-up
                break
    finally:
        for proc in procs:
            if proc.is_alive() and proc.pid is not None:
                os.kill(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + GRACE_S
        for proc in procs:
            proc.join(max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                proc.kill()
                proc.join()
        holder.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0 if ever_started else 2
