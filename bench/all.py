"""Every headline benchmark in one run, one table: ``make bench`` (``python bench/all.py``).

Runs discovery.py, cache.py, build.py, preview.py, kubefile_parse.py, startup.py and scale.py, each in
its own process with ``--json``, and prints their rows together: what kubenb took, the named
baseline, the ratio and the goal.
docs/benchmarks.md quotes this table. The deep dives (discovery_floor.py, charts_floor.py)
are run by hand. scale.py generates its 500 images (5 GB) once and keeps them in a cache
folder (see bench/scale_images.py); ``scale.py --growth 50,100,200,500`` gives the growth table.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from table import Row, from_json, table

SCRIPTS = ("discovery.py", "cache.py", "build.py", "preview.py", "kubefile_parse.py", "startup.py",
           "scale.py")


def main() -> None:
    rows: list[Row] = []
    started = time.perf_counter()
    for script in SCRIPTS:
        print(f"running bench/{script} ...", file=sys.stderr, flush=True)
        done = subprocess.run([sys.executable, str(Path(__file__).parent / script), "--json"],
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"bench/{script} failed:\n{done.stderr[-3000:]}")
        rows.extend(from_json(done.stdout.strip().splitlines()[-1]))
    print(table(rows))
    print(f"({len(SCRIPTS)} benchmarks in {time.perf_counter() - started:.0f} s; "
          f"{sys.platform}, Python {sys.version.split()[0]})")


if __name__ == "__main__":
    main()
