"""How fast hostile or huge Kubefiles parse: ``python bench/kubefile_parse.py``.

Each case is parsed and expanded the way a build starts (``kubenb.kubefile.parse`` then
``expand``), in this process, best of ``--rounds``, in CPU time (the machine is shared; the
work is single-threaded pure Python, so CPU time is what a user waits):

    arg chain    ``ARG A1=${A0}${A0}`` and so on, 40 lines: each doubles the last, so the
                 chain runs into the 1 MiB cap of one instruction and stops there (one error).
    1 MB line    ``LABEL big=`` followed by one word of 1 MB (one long word was quadratic).
    1 MB RUN     a RUN line of 1 MB, read by the check that tells cluster commands apart.
    1e5 lines    100,000 instructions (ARG, COPY, RUN in turn).

Goal: every case under 1 s. Baseline: the floor any parser pays, the same text merely split
into lines and each line into words with ``str.split``; the ratio says how far above it the
real parser is (none for the chain: its 900 bytes of text split in microseconds).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from table import Row, show

from kubenb.builders.steps import needs_cluster
from kubenb.errors import KubefileError
from kubenb.kubefile import expand, parse

BASELINE = "str.split of lines and words"


def arg_chain(links: int = 40) -> str:
    chain = "".join(f"ARG A{n + 1}=${{A{n}}}${{A{n}}}\n" for n in range(links))
    return f"ARG A0=0123456789abcdef\n{chain}FROM scratch\n"


def long_label(size: int = 1_000_000) -> str:
    return "FROM scratch\nLABEL big=" + "a" * size + "\n"


def long_run(size: int = 1_000_000) -> str:
    return "FROM scratch\nRUN echo " + "a" * size + " && echo done\n"


def many_lines(count: int = 100_000) -> str:
    body = "".join(f"ARG A{n}=v{n}\nCOPY file{n} manifests/\nRUN echo $A{n}\n" for n in range(count // 3))
    return "FROM scratch\n" + body


def kubenb_parse(text: str) -> None:
    """What a build does first: parse, expand, and sort RUN lines into build-time and cluster ones."""
    try:
        kubefile = expand(parse(text))
    except KubefileError as error:
        if "1 MiB" not in str(error):
            raise
        return
    for instruction in kubefile.of_kind("RUN"):
        needs_cluster(instruction.args)


def floor(text: str) -> None:
    for line in text.splitlines():
        line.split()


def best(function: Callable[[str], None], text: str, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.process_time()
        function(text)
        times.append(time.process_time() - started)
    return min(times)


def baseline(measure: str, text: str, rounds: int) -> tuple[str, float | None, str]:
    """The floor, except for the chain: its text is tiny, the work is in what it expands to."""
    if measure.startswith("ARG"):
        return "", None, "< 1 s"
    return BASELINE, best(floor, text, rounds), "< 1 s"


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--rounds", type=int, default=3)
    options.add_argument("--json", action="store_true", help="print the rows as JSON (for bench/all.py)")
    args = options.parse_args()
    cases = {
        "ARG doubling chain, 40 lines (capped)": arg_chain(),
        "one 1 MB LABEL line": long_label(),
        "one 1 MB RUN line": long_run(),
        "1e5-line Kubefile": many_lines(),
    }
    rows = [
        Row("kubefile", measure, best(kubenb_parse, text, args.rounds), *baseline(measure, text, args.rounds))
        for measure, text in cases.items()
    ]
    show(rows, as_json=args.json, title=f"parse + expand, best of {args.rounds}")


if __name__ == "__main__":
    main()
