"""`python -m service [--host H] [--port P]` serves the API; `python -m service index ...` too."""

import sys

from service.cli import main

argv = sys.argv[1:]
if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
    argv = ["serve", *argv]
raise SystemExit(main(argv))
