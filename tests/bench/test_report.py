"""bench/report.py: ratios are taken within a round, and each goal says met or missed."""

from __future__ import annotations

from typing import Any

from bench import report


def runs(label: str, qps: list[float], p99: float = 10.0) -> list[dict[str, Any]]:
    return [
        {"round": r, "label": label, "connections": 8, "qps": q, "p50_ms": 1.0, "p99_ms": p99}
        for r, q in enumerate(qps)
    ]


def test_ratios_pair_runs_of_the_same_round() -> None:
    res = {
        "runs": runs("ours, vector, recall>=0.95", [300, 600, 900])
        + runs("chroma, vector, recall>=0.95", [100, 300, 300], p99=20.0)
    }
    assert report.ratio(res, "ours, vector, recall>=0.95", "chroma, vector, recall>=0.95", 8) == [
        3.0,
        2.0,
        3.0,
    ]
    rows = {goal: (value, ok) for goal, value, _, ok in report.goal_rows(res)}
    assert rows["vector, recall ≥ 0.95, 8 conn: QPS vs Chroma"] == ("3.00x (2.00x–3.00x)", "met")
    assert rows["vector, recall ≥ 0.95, 8 conn: p99 vs Chroma"][1] == "met"
    assert rows["text, 8 conn: QPS vs txtai (same 2k corpus, same model)"][1] == "—"


def test_a_missed_goal_says_so() -> None:
    res = {"runs": [], "restart": {"ours": [2.5, 3.0, 2.7]}, "data": {"corpus": 100}}
    rows = {goal: (value, ok) for goal, value, _, ok in report.goal_rows(res)}
    assert rows["restart to ready with 100 documents (s)"] == ("2.7 (2.5–3.0)", "**missed**")
