"""`python -m indexer ...`: the batch-job command line (see `indexer.cli`)."""

from .cli import main

raise SystemExit(main())
