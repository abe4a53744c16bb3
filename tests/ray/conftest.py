"""Ray tests: skipped with the reason when the optional extra is not installed
(`pip install -e '.[ray]'`)."""

import os
from collections.abc import Iterator
from typing import Any

import pytest

ray = pytest.importorskip("ray", reason="ray not installed: pip install -e '.[ray]' (issue 9)")


@pytest.fixture(scope="session")
def local_ray() -> Iterator[Any]:
    """One small single-node Ray for the session: 2 CPUs, a 100 MB object store, no dashboard."""
    os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
    ray.init(
        num_cpus=2,
        object_store_memory=100 * 1024 * 1024,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
        resources={"shard0": 1, "shard1": 1},  # as two worker nodes would have
    )
    yield ray
    ray.shutdown()  # only this session's own processes
