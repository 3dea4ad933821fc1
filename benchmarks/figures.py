"""One measured figure beside its reference from the same run, the ratio and the goal.

Every benchmark prints its figures and, given ``--json FILE``, appends them there one per
line; `benchmarks/run_all.py` (``make bench``) collects them into benchmarks/results.md.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class Figure:
    area: str
    what: str  # the figure, e.g. "rows/s, stockcast vs per-ticker pandas loop"
    measured: str  # stockcast's value, formatted with its unit
    reference: str  # the reference's value from the same run, formatted
    ratio: float  # oriented so that higher is better for stockcast
    goal: float | None  # the ratio to reach (None: reported only)
    note: str = ""

    @property
    def met(self) -> bool | None:
        return None if self.goal is None else self.ratio >= self.goal


def emit(figures: list[Figure], json_path: str | None) -> None:
    for figure in figures:
        verdict = (
            ""
            if figure.goal is None
            else f"  goal >= {figure.goal:.3g}x: {'met' if figure.met else 'missed'}"
        )
        print(f"  {figure.what}: {figure.measured} vs {figure.reference} -> {figure.ratio:.2f}x{verdict}")
    if json_path:
        with Path(json_path).open("a") as handle:
            for figure in figures:
                handle.write(json.dumps(asdict(figure)) + "\n")


def load(path: Path) -> list[Figure]:
    if not path.exists():
        return []
    return [Figure(**json.loads(line)) for line in path.read_text().splitlines() if line.strip()]
