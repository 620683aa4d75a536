"""Chart rendering against its floor: ``render_chart`` vs bare ``helm_python`` load + render.

    .venv/bin/python bench/charts_floor.py [--rounds 15]

Renders every chart the corpus expects (tests/corpus/expected/*.json whose source is a
chart, with its values file when it names one: 11 renders of 10 charts) both ways. Each round
renders every case once each way, back to back, the order swapped every other round, so both
sides see the same machine. The Go runtime inside the native library (its garbage collector
runs on its own threads) makes single renders noisy, so the figures are the sum over cases of
each case's best time and of its median time. The floor gets its values already parsed
(outside the timing); ``render_chart`` reads its values file itself, checks the dependencies,
and drops NOTES.txt and empty templates. Goal: ratio within 1.2x. Because that ratio moves by
+-15 % from run to run, the work ``render_chart`` adds around the engine is also timed alone
(many repeats, so it is stable) and shown as a share of the floor.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from statistics import median
from typing import Any

import helm_python
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kubenb.discover import charts
from kubenb.discover.charts import ChartSource, render_chart
from tests.support.corpus import CORPUS

Case = tuple[str, Path, Path | None]


def corpus_cases() -> list[Case]:
    """(chart, folder, values file) for every chart the corpus has an expected list for."""
    cases = []
    for expected in sorted((CORPUS / "expected").glob("*.json")):
        entry = json.loads(expected.read_text())
        if entry["source"].startswith("charts/"):
            values = CORPUS / entry["values"] if entry["values"] else None
            cases.append((entry["source"].split("/", 1)[1], CORPUS / entry["source"], values))
    return cases


def bare(folder: Path, values: dict[str, Any]) -> int:
    """The floor: load the chart, render it, nothing else."""
    with helm_python.Chart.load(folder) as chart:
        return len(chart.render(values, name="release", namespace="default", is_install=True))


def ours(chart: str, folder: Path, values_file: Path | None) -> int:
    return len(render_chart(ChartSource(chart, folder, values_file)))


def own_work(cases: list[Case], repeats: int = 50) -> float:
    """Seconds ``render_chart`` spends outside load + render, summed over the cases: values,
    dependency check, and filtering the rendered templates."""
    total = 0.0
    for chart, folder, values_file in cases:
        source = ChartSource(chart, folder, values_file)
        files = [values_file] if values_file else []
        with helm_python.Chart.load(folder) as loaded:
            start = time.perf_counter()
            for _ in range(repeats):
                values = charts._user_values(source, files, ())
                charts._check_dependencies(source, loaded)
            before = time.perf_counter() - start
            rendered = loaded.render(values, name="release", namespace="default", is_install=True)
            start = time.perf_counter()
            for _ in range(repeats):
                charts._records(chart, rendered)
            total += (before + time.perf_counter() - start) / repeats
    return total


def timed(run: Callable[[], int], times: list[float]) -> int:
    start = time.perf_counter()
    count = run()
    times.append(time.perf_counter() - start)
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description="render_chart vs bare helm_python render")
    parser.add_argument("--rounds", type=int, default=15)
    rounds = parser.parse_args().rounds
    cases = corpus_cases()
    values = [yaml.safe_load(file.read_text()) if file else {} for _, _, file in cases]
    floor_times: list[list[float]] = [[] for _ in cases]
    our_times: list[list[float]] = [[] for _ in cases]
    counts = [0, 0]
    for round_ in range(rounds + 1):  # round 0 warms up the library and the page cache
        for i, (chart, folder, values_file) in enumerate(cases):
            sides: list[tuple[int, Callable[[], int], list[float]]] = [
                (0, lambda f=folder, v=values[i]: bare(f, v), floor_times[i]),
                (1, lambda c=chart, f=folder, v=values_file: ours(c, f, v), our_times[i]),
            ]
            for side, run, times in sides[:: 1 if round_ % 2 else -1]:
                counts[side] = timed(run, times) if round_ else run()
    print(f"{len(cases)} renders of {len({c for c, _, _ in cases})} corpus charts, {rounds} rounds"
          "      sum of bests  sum of medians")
    totals = []
    for label, times in (("bare helm_python load+render", floor_times), ("kubenb render_chart", our_times)):
        best, mid = sum(min(t) for t in times), sum(median(t) for t in times)
        totals.append((best, mid))
        print(f"  {label:36} {best * 1000:9.1f} ms {mid * 1000:11.1f} ms")
    (floor_best, floor_mid), (our_best, our_mid) = totals
    print(f"  {'ratio (goal <= 1.2x)':36} {our_best / floor_best:9.2f}x  {our_mid / floor_mid:11.2f}x")
    extra = own_work(cases)
    print(f"  render_chart's own work, timed alone {extra * 1000:9.2f} ms  = {extra / floor_best:.1%} of the "
          "floor's best")


if __name__ == "__main__":
    main()
