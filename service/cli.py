"""`vector-primer serve` runs the HTTP service; `vector-primer index ...` runs batch jobs;
`vector-primer eval ...` runs the evaluations."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

import uvicorn
from pydantic import ValidationError

from indexer.settings import Settings, check_environment

PROG = "vector-primer"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="A vector search service that shows "
        "its math. Settings come from VP_* environment variables.",
    )
    sub = p.add_subparsers(dest="command", metavar="{serve,index,eval}")
    serve = sub.add_parser("serve", help="serve the HTTP API (builds 'words' on first start)")
    serve.add_argument("--host", help="address to bind (VP_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to bind (VP_PORT, default 8000)")
    serve.add_argument("--data-dir", help="where collections live (VP_DATA_DIR)")
    serve.add_argument(
        "--insecure",
        action="store_true",
        default=None,
        help="allow a non-loopback --host without an API key (VP_ALLOW_INSECURE)",
    )
    serve.add_argument(
        "--workers",
        type=int,
        help="server processes sharing the port (VP_WORKERS, default 1; README Performance)",
    )
    serve.add_argument(
        "--ray",
        metavar="ADDRESS",
        help="serve the sharded --collection on a Ray cluster (Ray Serve, service/ray_serve.py)",
    )
    serve.add_argument("--collection", help="with --ray: the sharded collection to serve")
    sub.add_parser(
        "index", help="batch jobs: build, rebuild, ... (see 'index --help')", add_help=False
    )
    sub.add_parser(
        "eval",
        help="evaluations: sts, retrieval, analogy, wordsim (see 'eval --help')",
        add_help=False,
    )
    return p


def _fail(message: str) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return 2


def _settings_error(e: ValidationError) -> str:
    parts = [
        f"VP_{'_'.join(str(x) for x in err['loc']).upper()}: {err['msg']}" for err in e.errors()
    ]
    return "bad setting(s): " + "; ".join(parts)


def is_loopback(host: str) -> bool:
    """Only this machine can connect: 127.0.0.0/8, ::1 or localhost.

    >>> [is_loopback(h) for h in ("127.0.0.1", "::1", "localhost", "0.0.0.0", "example.org")]
    [True, True, True, False, False]
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name may resolve to anything


def check_exposure(settings: Settings, keys_on: bool) -> None:
    """Refuse to serve the whole network without a key unless told it is on purpose."""
    if keys_on or settings.allow_insecure or is_loopback(settings.host):
        return
    raise ValueError(
        f"refusing to bind {settings.host} without an API key: anyone who can reach it could "
        "read and write everything. Set VP_API_KEY (or VP_API_KEY_FILE), bind 127.0.0.1, or "
        "pass --insecure (VP_ALLOW_INSECURE=true) if that is what you want"
    )


def _exit_zero_after_graceful_shutdown(server: uvicorn.Server) -> None:
    """uvicorn handles SIGINT/SIGTERM with a graceful shutdown, then raises the signal again
    for the handler that was there before it; ours makes that a clean exit (0), while a signal
    that comes before uvicorn is listening still stops the process at once."""

    def handler(sig: int, frame: object) -> None:
        if not server.should_exit:
            raise SystemExit(128 + sig)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, handler)


def serve_ray(args: argparse.Namespace) -> int:
    """`serve --ray ADDRESS --collection NAME`: one Serve deployment per shard, pinned by the
    custom resource `shard<i>`, behind an ingress on --host/--port; runs until Ctrl-C."""
    import time

    import ray

    from service.ray_serve import deploy

    if not args.collection:
        return _fail("serve --ray needs --collection (a collection built with index build --ray)")
    settings = Settings(**{k: v for k, v in (("data_dir", args.data_dir),) if v is not None})
    ray.init(address=args.ray, include_dashboard=False)
    host, port = args.host or settings.host, args.port or settings.port
    deploy(str(Path(settings.data_dir).resolve()), args.collection, settings.embedder, host, port)
    print(f"serving {args.collection!r} on http://{host}:{port} (Ray Serve); Ctrl-C stops")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return 0


def serve(args: argparse.Namespace) -> int:
    if getattr(args, "ray", None):
        return serve_ray(args)
    try:
        check_environment()
        flags = (
            ("host", args.host),
            ("port", args.port),
            ("data_dir", args.data_dir),
            ("allow_insecure", args.insecure),
            ("workers", args.workers),
        )
        given = {k: v for k, v in flags if v is not None}
        settings = Settings(**given)
        from service.app import create_app

        app = create_app(settings)  # refuses unusable key settings (ValueError)
        check_exposure(settings, app.state.keys.enabled)
    except ValueError as e:  # pydantic's ValidationError is a ValueError too
        return _fail(_settings_error(e) if isinstance(e, ValidationError) else str(e))

    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if settings.workers > 1:
        return _serve_workers(settings, given)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        timeout_graceful_shutdown=10,
    )
    server = uvicorn.Server(config)
    _exit_zero_after_graceful_shutdown(server)
    server.run()
    return 0


def _serve_workers(settings: Settings, given: dict[str, object]) -> int:
    """`serve --workers N` (service/workers.py): N processes on the port, each with a socket
    of its own, each building its app from the environment, so the flags given here are handed
    on as VP_* variables. Each worker has its own engine over the same data directory: the
    store is made for several processes (a write takes SQLite's lock; the others replay it at
    their next request), so an acknowledged write is seen by every worker after it. Metrics
    are summed over the workers by prometheus-client's multiprocess mode, in a fresh directory
    removed at exit. Exits 2 when no worker got through its start-up."""
    from service import workers

    for key, value in given.items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        os.environ[f"VP_{key.upper()}"] = text
    metrics_dir = tempfile.mkdtemp(prefix="vp-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    try:
        s = settings
        try:
            code = workers.run(s.host, s.port, s.workers, s.log_level, Path(metrics_dir))
        except OSError as e:
            return _fail(f"cannot listen on {settings.host}:{settings.port}: {e}")
        if code == 2:
            return _fail("no worker started (the log above says why)")
        return code
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] == "index":
        from indexer.cli import main as index_main  # the batch jobs live with the engine

        return int(index_main(argv[1:]) or 0)
    if argv and argv[0] == "eval":
        from indexer.evaluation.cli import main as eval_main

        return int(eval_main(argv[1:], prog=f"{PROG} eval") or 0)
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return serve(args)
    _parser().print_help(sys.stderr)
    return 2
