"""R18: SIGTERM under write load is a graceful stop: requests in flight finish or fail (never
acknowledged and then lost), the process exits 0 within 10 s, and the next start is ready fast.

Same writers and journal as the kill -9 test (tests/reliability/http_support.py); after each
stop the same invariants are checked through the API of the restarted server.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest

from .http_support import Journal, ServerFactory, join_writers, percentile, run_writers, verify

COLLECTION = "graceful"
EXIT_WITHIN_S = 10.0
READY_WITHIN_S = 5.0  # process start to /readyz 200, imports included, on 2 busy cores


def sigterm_rounds(make: ServerFactory, rounds: int, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    server = make().start()
    with server.client() as http:
        assert http.post("/v1/collections", json={"name": COLLECTION}).status_code == 201
    journal = Journal()
    exits, ready, unanswered = [], [], []
    for r in range(rounds):
        workers, stop, clients = run_writers(server, journal, COLLECTION, 4, seed + r)
        time.sleep(rng.uniform(0.5, 1.5))
        code, took = server.terminate(EXIT_WITHIN_S)
        join_writers(workers, stop, clients)
        assert code == 0, f"round {r}: exit code {code} after {took:.1f} s\n{server.tail()}"
        assert "Traceback" not in server.tail(200), server.tail()
        exits.append(took)
        unanswered.append(len(journal.ambiguous))
        server.start()
        ready.append(server.ready_s)
        with server.client() as http:
            problems = verify(http, journal, COLLECTION)
        assert not problems, f"round {r} (seed {seed}): {problems[:10]}"
        assert not journal.server_errors, journal.server_errors[:5]
    server.terminate(EXIT_WITHIN_S)
    return {"exit_s": exits, "ready_s": ready, "unanswered": unanswered, "counts": journal.counts}


def check(result: dict[str, Any], rounds: int) -> None:
    exits, ready = result["exit_s"], result["ready_s"]
    print(
        f"\nR18: {rounds} SIGTERMs under 4 writers: exit 0 each, exit took max {max(exits):.2f} s "
        f"(p50 {percentile(exits, 50):.2f}); next start ready max {max(ready):.2f} s "
        f"(p50 {percentile(ready, 50):.2f}); unanswered at stop {result['unanswered']}; "
        f"{result['counts']}"
    )
    assert max(exits) <= EXIT_WITHIN_S
    assert max(ready) <= READY_WITHIN_S


def test_sigterm_under_write_load_exits_0_and_loses_nothing(http_server: Any) -> None:
    check(sigterm_rounds(http_server, rounds=2, seed=7), 2)


@pytest.mark.reliability_full
def test_sigterm_ten_times_under_write_load(http_server: Any) -> None:
    check(sigterm_rounds(http_server, rounds=10, seed=8), 10)
