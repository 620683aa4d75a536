"""How long a command takes to start: ``python bench/startup.py``.

Each measure runs a real ``python -m kubenb ...`` process (the ``kubenb`` script does the same)
and times it from spawn to exit, against a bare interpreter, ``python -c pass``, run in the same
rounds, alternated with it (the machine is shared: a bare start moves from 20 ms to 60 ms):

    --version    argparse's version action: nothing below the CLI's parser is needed.
    --help       the whole parser built and printed.
    images       an empty store listed: the store and nothing of discovery, the registry
                 client or the builders.

Figures are medians of ``--rounds`` (default 15); the range is the spread of the differences.
Goals (issue 17): ``--version`` and ``--help`` within +0.1 s of the bare interpreter, ``images``
within +0.2 s. Before the lazy imports every command paid about 0.46 s of imports (requests,
yaml and the whole engine). What each command still imports: ``python -X importtime -m kubenb
--version``; tests/test_startup.py checks that the heavy modules stay out.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from table import Row, show

REPO = Path(__file__).resolve().parents[1]
BASELINE = "python -c pass (same rounds)"
#: measure -> (arguments after ``python``, the goal: seconds over the bare interpreter)
CASES = {
    "kubenb --version": (["-m", "kubenb", "--version"], 0.1),
    "kubenb --help": (["-m", "kubenb", "--help"], 0.1),
    "kubenb images (empty store)": (["-m", "kubenb", "images"], 0.2),
}


def _wall(arguments: list[str], env: dict[str, str]) -> float:
    """Seconds from spawn to exit. The working directory is the store's: ``python -m`` puts it
    first on sys.path, so a checkout as the working directory would shadow PYTHONPATH."""
    started = time.perf_counter()
    subprocess.run([sys.executable, *arguments], env=env, cwd=env["KUBENB_ROOT"], stdout=subprocess.DEVNULL,
                   check=True)
    return time.perf_counter() - started


def measure(rounds: int) -> list[Row]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="kubenb-startup-") as root:
        # this checkout's kubenb, an empty store of our own, and no user site settings in the way
        env = {**os.environ, "PYTHONPATH": str(REPO), "KUBENB_ROOT": root}
        for measure_name, (arguments, goal) in CASES.items():
            _wall(arguments, env)  # warm the page cache and the bytecode files once
            bare, took = [], []
            for _ in range(rounds):
                bare.append(_wall(["-c", "pass"], env))
                took.append(_wall(arguments, env))
            differences = [command - baseline for command, baseline in zip(took, bare, strict=True)]
            over = statistics.median(took) - statistics.median(bare)
            verdict = "met" if over <= goal else "NOT met"
            rows.append(Row(
                "startup", measure_name, statistics.median(took), BASELINE, statistics.median(bare),
                f"<= +{goal:.1f} s: +{over:.3f} s ({min(differences):+.3f} to {max(differences):+.3f}), {verdict}",
            ))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--rounds", type=int, default=15, help="runs of each command and of the baseline")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON (for bench/all.py)")
    options = parser.parse_args()
    show(measure(options.rounds), as_json=options.json,
         title=f"process start, median of {options.rounds} alternating rounds")


if __name__ == "__main__":
    main()
