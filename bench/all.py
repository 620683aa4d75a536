"""Every headline benchmark, one table: ``make bench`` (``python bench/all.py``).

Runs discovery.py, cache.py, build.py, preview.py, kubefile_parse.py and startup.py, each in its own
process with ``--json``, ``--runs`` times over (all scripts once, then again, so the runs are minutes
apart), and prints one row per measure: the median run's figures, the range of the ratio over the
runs (how much one run can be trusted on a shared machine) and whether the median meets the goal.
docs/benchmarks.md quotes this table. The deep dives (discovery_floor.py, charts_floor.py) are run
by hand.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from table import Row, combine, from_json, table

SCRIPTS = ("discovery.py", "cache.py", "build.py", "preview.py", "kubefile_parse.py", "startup.py")


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--runs", type=int, default=3, help="runs of every script (default 3)")
    options.add_argument("scripts", nargs="*", default=list(SCRIPTS), help="only these scripts")
    args = options.parse_args()
    runs: list[list[Row]] = []
    started = time.perf_counter()
    for run in range(1, args.runs + 1):
        rows: list[Row] = []
        for script in args.scripts:
            print(f"run {run}/{args.runs}: bench/{script} ...", file=sys.stderr, flush=True)
            rows.extend(_rows_of(script))
        runs.append(rows)
    print(table(combine(runs)))
    print(f"({len(args.scripts)} benchmarks, {args.runs} runs each, in {time.perf_counter() - started:.0f} s; "
          f"{sys.platform}, Python {sys.version.split()[0]})")


def _rows_of(script: str) -> list[Row]:
    done = subprocess.run([sys.executable, str(Path(__file__).parent / script), "--json"],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"bench/{script} failed:\n{done.stderr[-3000:]}")
    return from_json(done.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
