"""`vector-primer serve` runs the HTTP service; `vector-primer index ...` runs batch jobs."""

from __future__ import annotations

import argparse
import logging
import signal
import sys

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
    sub = p.add_subparsers(dest="command", metavar="{serve,index}")
    serve = sub.add_parser("serve", help="serve the HTTP API (builds 'words' on first start)")
    serve.add_argument("--host", help="address to bind (VP_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to bind (VP_PORT, default 8000)")
    serve.add_argument("--data-dir", help="where collections live (VP_DATA_DIR)")
    sub.add_parser(
        "index", help="batch jobs: build, rebuild, ... (see 'index --help')", add_help=False
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


def _exit_zero_after_graceful_shutdown(server: uvicorn.Server) -> None:
    """uvicorn handles SIGINT/SIGTERM with a graceful shutdown, then raises the signal again
    for the handler that was there before it; ours makes that a clean exit (0), while a signal
    that comes before uvicorn is listening still stops the process at once."""

    def handler(sig: int, frame: object) -> None:
        if not server.should_exit:
            raise SystemExit(128 + sig)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, handler)


def serve(args: argparse.Namespace) -> int:
    try:
        check_environment()
        overrides = {
            k: v
            for k, v in (("host", args.host), ("port", args.port), ("data_dir", args.data_dir))
            if v is not None
        }
        settings = Settings(**overrides)
    except ValueError as e:  # pydantic's ValidationError is a ValueError too
        return _fail(_settings_error(e) if isinstance(e, ValidationError) else str(e))
    from service.app import create_app

    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        timeout_graceful_shutdown=10,
    )
    server = uvicorn.Server(config)
    _exit_zero_after_graceful_shutdown(server)
    server.run()
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] == "index":
        from indexer.cli import main as index_main  # the batch jobs live with the engine

        return int(index_main(argv[1:]) or 0)
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return serve(args)
    _parser().print_help(sys.stderr)
    return 2
