"""`python -m indexer.evaluation <task> PATH [options]`."""

import sys

from indexer.evaluation.cli import main

raise SystemExit(main(sys.argv[1:]))
