"""One shape for every benchmark's results, so ``make bench`` can print them as one table.

Each headline script (discovery, cache, build, preview) measures some things against a named
baseline and prints :func:`show`'s table; with ``--json`` it prints the rows as JSON instead,
which ``bench/all.py`` gathers.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Row:
    """kubenb's ``measure`` took ``seconds``; ``baseline`` took ``baseline_seconds`` (None when
    the goal is absolute); ``goal`` is what the ratio (or the seconds) must meet."""

    bench: str
    measure: str
    seconds: float
    baseline: str = ""
    baseline_seconds: float | None = None
    goal: str = ""

    @property
    def ratio(self) -> float | None:
        return None if not self.baseline_seconds else self.seconds / self.baseline_seconds


def show(rows: list[Row], *, as_json: bool = False, title: str = "") -> None:
    if as_json:
        print(json.dumps([asdict(row) for row in rows]))
        return
    if title:
        print(title)
    print(table(rows))


def table(rows: list[Row]) -> str:
    lines = [f"{'bench':<10}{'measure':<38}{'seconds':>9}  {'baseline':<32}{'seconds':>9}{'ratio':>8}  goal"]
    for row in rows:
        base = "" if row.baseline_seconds is None else f"{row.baseline_seconds:9.3f}"
        ratio = "" if row.ratio is None else f"{row.ratio:7.2f}x"
        lines.append(f"{row.bench:<10}{row.measure:<38}{row.seconds:9.3f}  {row.baseline:<32}{base:>9}{ratio:>8}"
                     f"  {row.goal}")
    return "\n".join(lines)


def from_json(text: str) -> list[Row]:
    return [Row(**fields) for fields in json.loads(text)]
