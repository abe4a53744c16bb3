"""R2: `kill -9` of the real uvicorn under write load loses nothing it acknowledged.

Four writer threads upsert (1-4 documents, new or replaced, each with its own random float32
vector, text and metadata) and delete through the HTTP API; at a random moment the server gets
SIGKILL; a request sent and never answered is "in flight" (ambiguous), and at least 30% of the
kills must land on one.
After each restart, through the API: every acknowledged write is there with a bit-identical
vector, text and metadata (I1), every acknowledged delete is gone (I2), a batch in flight is
applied to all its ids or none (I3), no phantom or duplicate ids (I4), the count equals the
listing and every stored vector finds its own document first (I5), the server opened with no
manual step (I6); and while it was up no response was a 5xx.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from .http_support import Journal, ServerFactory, join_writers, percentile, run_writers, verify

WRITERS = 4
COLLECTION = "crash"


@dataclass
class KillReport:
    in_flight: list[int] = field(default_factory=list)  # requests unanswered at each kill
    ready_s: list[float] = field(default_factory=list)  # restart to ready
    acked: list[int] = field(default_factory=list)  # acknowledged writes per round

    def summary(self, journal: Journal) -> str:
        mid = sum(1 for n in self.in_flight if n)
        return (
            f"R2: {len(self.in_flight)} kills, {mid} mid-request "
            f"({100 * mid / len(self.in_flight):.0f}%), in flight per kill {self.in_flight}; "
            f"acked writes {sum(self.acked)} (per round {self.acked}); restart to ready p50 "
            f"{percentile(self.ready_s, 50):.2f} s max {max(self.ready_s):.2f} s; {journal.counts}"
        )


def kill_rounds(
    make: ServerFactory, kills: int, window: tuple[float, float], seed: int
) -> tuple[KillReport, Journal]:
    rng = np.random.default_rng(seed)
    server = make().start()
    with server.client() as http:
        assert http.post("/v1/collections", json={"name": COLLECTION}).status_code == 201
    journal, report = Journal(), KillReport()
    for k in range(kills):
        before = _acked_count(journal)
        workers, stop, clients = run_writers(server, journal, COLLECTION, WRITERS, seed + k)
        time.sleep(rng.uniform(*window))
        with journal.lock:  # writers wait here, so nothing is sent or recorded meanwhile
            server.kill9()
        join_writers(workers, stop, clients)
        report.in_flight.append(len(journal.ambiguous))  # sent, never answered
        report.acked.append(_acked_count(journal) - before)
        server.start()
        report.ready_s.append(server.ready_s)
        with server.client() as http:
            problems = verify(http, journal, COLLECTION)
        assert not problems, f"kill {k} (seed {seed}): {problems[:10]}\n{server.tail()}"
        assert not journal.server_errors, journal.server_errors[:5]
    return report, journal


def _acked_count(journal: Journal) -> int:
    return sum(v for k, v in journal.counts.items() if k.endswith("acked"))


def check(report: KillReport, journal: Journal, kills: int) -> None:
    print("\n" + report.summary(journal))
    assert len(report.in_flight) == kills
    mid = sum(1 for n in report.in_flight if n)
    assert mid >= 0.3 * kills, f"only {mid}/{kills} kills landed mid-request"
    assert sum(report.acked) > 0


def test_kill9_under_write_load_loses_no_acknowledged_write(http_server: Any) -> None:
    report, journal = kill_rounds(http_server, kills=5, window=(0.3, 1.0), seed=1)
    check(report, journal, 5)


@pytest.mark.reliability_full
def test_kill9_twenty_times_loses_no_acknowledged_write(http_server: Any) -> None:
    report, journal = kill_rounds(http_server, kills=20, window=(0.5, 3.0), seed=2)
    check(report, journal, 20)
