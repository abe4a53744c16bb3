"""An evaluation's outcome: headline scores, a table of rows, and the same as JSON."""

from __future__ import annotations

import json
import math
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class EvalResult:
    task: str  # sts | retrieval | analogy | wordsim
    dataset: str  # the path evaluated
    via: str  # "engine" or the service URL
    embedder: str
    size: dict[str, int]  # what was evaluated: {"pairs": 1379} / {"queries": 809, "documents": ...}
    scores: dict[str, float]  # the headline figures
    columns: list[str]  # the table's columns, in order (keys of each row)
    rows: list[dict[str, Any]]  # one per index kind / section / ...
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    when: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    python: str = field(default_factory=platform.python_version)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = _finite(asdict(self))
        return out

    def write_json(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        return path

    def table(self) -> str:
        """Aligned plain text: a header line, the rows, then notes."""
        size = ", ".join(f"{v:,} {k}" for k, v in self.size.items())
        head = (
            f"{self.task}: {self.dataset} via {self.via} ({self.embedder}), {size}, "
            f"{self.seconds:.1f} s"
        )
        cells = [self.columns] + [[_cell(r.get(c)) for c in self.columns] for r in self.rows]
        widths = [max(len(row[i]) for row in cells) for i in range(len(self.columns))]
        lines = [head, ""]
        for n, row in enumerate(cells):
            first = row[0].ljust(widths[0])
            rest = [v.rjust(w) for v, w in zip(row[1:], widths[1:], strict=True)]
            lines.append("  ".join([first, *rest]).rstrip())
            if n == 0:
                lines.append("  ".join("-" * w for w in widths))
        lines.extend(f"note: {n}" for n in self.notes)
        return "\n".join(lines)


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        return f"{v:.4f}" if abs(v) < 1 else f"{v:,.2f}"  # scores to 4 places, times to 2
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def _finite(obj: Any) -> Any:
    """JSON has no NaN: write null instead."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return obj
