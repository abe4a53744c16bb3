"""`python -m vector_primer_client ready [--url URL] [--wait SECONDS]`: exit 0 when the service
answers `/readyz` with 200, 1 otherwise. The container healthcheck uses it (the image has no curl).
"""

from __future__ import annotations

import argparse
import sys

from .client import DEFAULT_URL, Client
from .errors import VectorPrimerError


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m vector_primer_client")
    sub = p.add_subparsers(dest="command", required=True)
    ready = sub.add_parser("ready", help="exit 0 if the service is ready, 1 if not")
    ready.add_argument("--url", default=DEFAULT_URL)
    ready.add_argument("--wait", type=float, default=0.0, help="keep trying this many seconds")
    ready.add_argument("--timeout", type=float, default=5.0, help="per request")
    args = p.parse_args(argv)
    with Client(args.url, timeout=args.timeout) as client:
        try:
            state = client.wait_ready(args.wait) if args.wait > 0 else client.readyz()
        except VectorPrimerError as e:
            print(f"not ready: {e}", file=sys.stderr)
            return 1
    details = [f"{len(state['collections'])} collection(s)"] if "collections" in state else []
    details += [f"words {state['words']}"] if "words" in state else []
    print("ready" + (f": {', '.join(details)}" if details else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
