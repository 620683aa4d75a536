"""One shape for every benchmark's results, so ``make bench`` can print them as one table.

Each headline script (discovery, cache, build, preview) measures some things against a named
baseline and prints :func:`show`'s table; with ``--json`` it prints the rows as JSON instead,
which ``bench/all.py`` gathers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace


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

    low: float | None = None  # the range over several runs: of the ratio, or of the seconds
    high: float | None = None  # when the goal is absolute (``bench/all.py --runs``)

    @property
    def ratio(self) -> float | None:
        return None if not self.baseline_seconds else self.seconds / self.baseline_seconds

    @property
    def compared(self) -> float | None:
        """What the goal is about: the ratio, the seconds, or (a ``+`` goal) the seconds over
        the baseline; None when the goal says nothing it can check."""
        goal = _GOAL.match(self.goal)
        if goal is None:
            return None
        if goal["unit"] == "x":
            return self.ratio
        if goal["over"]:
            return None if self.baseline_seconds is None else self.seconds - self.baseline_seconds
        return self.seconds

    @property
    def verdict(self) -> str:
        """"met" or "NOT met" against the goal, "" when there is no goal to check."""
        goal, value = _GOAL.match(self.goal), self.compared
        if goal is None or value is None:
            return ""
        limit = float(goal["limit"])
        return "met" if (value <= limit if goal["op"] == "<=" else value < limit) else "NOT met"


#: The goals the scripts write: ``<= 1.5x`` (a ratio), ``< 2 s`` (seconds), ``<= +0.1 s`` (seconds
#: over the baseline); anything after them (a script's own comment) is ignored.
_GOAL = re.compile(r"(?P<op><=|<)\s*(?P<over>\+)?(?P<limit>\d+(?:\.\d+)?)\s*(?P<unit>x|s)\b")


def combine(runs: Sequence[Sequence[Row]]) -> list[Row]:
    """One row per measure from several runs of the same scripts: the median run's seconds
    (by what the goal compares) with the range over all runs in ``low`` and ``high``."""
    groups: dict[tuple[str, str, str], list[Row]] = {}
    for rows in runs:
        for row in rows:
            groups.setdefault((row.bench, row.measure, row.baseline), []).append(row)
    combined = []
    for rows in groups.values():
        values = [_key(row) for row in rows]
        middle = sorted(rows, key=_key)[(len(rows) - 1) // 2]
        goal = _without_run_note(middle.goal)
        combined.append(replace(middle, goal=goal, low=min(values), high=max(values)))
    return combined


def _without_run_note(goal: str) -> str:
    """``<= 0.1x: 0.05x to 0.12x per round`` -> ``<= 0.1x``: a script's note on one run (its
    own verdict, its rounds) does not hold for all runs. Other texts are kept whole."""
    head, colon, _ = goal.partition(":")
    match = _GOAL.match(head)
    return head.strip() if colon and match is not None and match.end() == len(head.strip()) else goal


def _key(row: Row) -> float:
    value = row.compared if row.compared is not None else row.ratio
    return row.seconds if value is None else value


def show(rows: list[Row], *, as_json: bool = False, title: str = "") -> None:
    if as_json:
        print(json.dumps([asdict(row) for row in rows]))
        return
    if title:
        print(title)
    print(table(rows))


def table(rows: list[Row]) -> str:
    ranged = any(row.low is not None for row in rows)
    lines = [f"{'bench':<10}{'measure':<38}{'seconds':>9}  {'baseline':<32}{'seconds':>9}{'ratio':>8}"
             + (f"  {'range':<17}" if ranged else "") + "  goal"]
    for row in rows:
        base = "" if row.baseline_seconds is None else f"{row.baseline_seconds:9.3f}"
        ratio = "" if row.ratio is None else f"{row.ratio:7.2f}x"
        spread = f"  {_range(row):<17}" if ranged else ""
        said = row.goal.rstrip(")").endswith("met")  # a script that judged the row itself
        goal = f"{row.goal}, {row.verdict}" if ranged and row.verdict and not said else row.goal
        lines.append(f"{row.bench:<10}{row.measure:<38}{row.seconds:9.3f}  {row.baseline:<32}{base:>9}{ratio:>8}"
                     f"{spread}  {goal}")
    return "\n".join(lines)


def _range(row: Row) -> str:
    if row.low is None or row.high is None:
        return ""
    goal = _GOAL.match(row.goal)
    if goal is not None and goal["over"]:
        return f"{row.low:+.3f}..{row.high:+.3f} s"
    unit = "x" if (goal is None and row.ratio is not None) or (goal is not None and goal["unit"] == "x") else " s"
    return f"{row.low:.2f}..{row.high:.2f}{unit}"


def from_json(text: str) -> list[Row]:
    return [Row(**fields) for fields in json.loads(text)]
