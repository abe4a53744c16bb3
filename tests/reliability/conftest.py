"""tests/reliability (issue 6). Every test here is marked `reliability`; the full-tier variants
(`reliability_full`: the counts of the R1–R18 table) are skipped unless RELIABILITY_FULL=1, which
`make reliability` sets. The storage half and the HTTP half share this file: HTTP fixtures are
named `http_*`."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

HERE = Path(__file__).parent
FULL = os.environ.get("RELIABILITY_FULL") == "1"  # not VP_*: unknown VP_ variables are refused


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip = pytest.mark.skip(reason="full tier: make reliability (RELIABILITY_FULL=1)")
    for item in items:
        if HERE in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.reliability)
            if item.get_closest_marker("reliability_full") is not None and not FULL:
                item.add_marker(skip)


# ---- HTTP half ------------------------------------------------------------------------------
@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[object]:
    """A factory of real `python -m service` processes on 127.0.0.1 (tests/reliability/
    http_support.py), every one of them killed when the test ends."""
    from .http_support import ServerFactory

    factory = ServerFactory(tmp_path)
    try:
        yield factory
    finally:
        factory.close()
