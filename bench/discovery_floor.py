"""Manifest parsing against its floors: ``split_documents`` + ``load_documents`` vs bare parsers.

    .venv/bin/python bench/discovery_floor.py [--copies 20] [--rounds 7] [--profile]

Every manifest of tests/corpus/manifests is copied ``--copies`` times into a temporary
folder and read back (``read_input_file``, timed apart), then the same texts are parsed three ways:

    (a) PyYAML's CSafeLoader merely loading every document (``yaml.load_all``)
    (b) yaml-rs merely loading every file (one ``yaml_rs.loads`` call per file, defaults);
        also shown with the garbage collector off, for scale: ``load_documents`` leaves it
        running (in a notebook it is the user's kernel's), and it walks the millions of new
        dicts and lists again and again (about 0.1x of the floor)
    (c) kubenb: ``split_documents`` then ``load_documents`` (PyYAML's C composer, each
        document once, CustomResourceDefinitions included here, and the value built from
        the node tree)

(b) and (c) run ``--rounds`` times, back to back and in alternating order, timed in CPU
seconds of this process: on a shared machine wall time (and even CPU time) drifts by tens of
per cent between runs, so besides the best and median rounds the figure to quote is the
median of the per-round ratios c/b, which cancels the drift. (a) is ten times slower and runs
once. Goal for the whole discovery: 1.5x the yaml-rs floor, so (c) should stay close to (b).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import pstats
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from statistics import median

import yaml
import yaml_rs

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kubenb.discover.documents import load_documents, read_input_file, split_documents
from tests.support.corpus import CORPUS

Texts = list[tuple[str, str]]


def copied_corpus(folder: Path, copies: int) -> list[Path]:
    """Every corpus manifest ``copies`` times under ``folder`` (copy<n>/<name>)."""
    paths = []
    for n in range(copies):
        (folder / f"copy{n}").mkdir()
        for source in sorted((CORPUS / "manifests").glob("*")):
            paths.append(Path(shutil.copy(source, folder / f"copy{n}" / source.name)))
    return paths


def pyyaml(texts: Texts) -> int:
    return sum(sum(doc is not None for doc in yaml.load_all(text, Loader=yaml.CSafeLoader))
               for _, text in texts)


def yaml_rs_floor(texts: Texts) -> int:
    return sum(_count(yaml_rs.loads(text, parse_datetime=False)) for _, text in texts)


def yaml_rs_floor_no_gc(texts: Texts) -> int:
    gc.disable()
    try:
        return yaml_rs_floor(texts)
    finally:
        gc.enable()


def kubenb(texts: Texts) -> int:
    return sum(len(load_documents(split_documents(text, name))) for name, text in texts)


def _count(loaded: object) -> int:
    """Documents in a yaml-rs result (a list for a multi-document stream)."""
    return 1 if not isinstance(loaded, list) else sum(doc is not None for doc in loaded)


def timed(run: Callable[[Texts], int], texts: Texts) -> tuple[float, int]:
    start = time.process_time()
    count = run(texts)
    return time.process_time() - start, count


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--copies", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--profile", action="store_true", help="profile (c) once and exit")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        paths = copied_corpus(Path(folder), options.copies)
        start = time.process_time()
        texts = [(path.relative_to(folder).as_posix(), read_input_file(path, path.name)) for path in paths]
        reading = time.process_time() - start
    megabytes = sum(len(text.encode()) for _, text in texts) / 1e6
    print(f"{len(texts)} files ({options.copies} copies of the corpus), {megabytes:.1f} MB, "
          f"read_input_file {reading:.3f} s")
    if options.profile:
        cProfile.runctx("kubenb(texts)", globals(), {"texts": texts}, "/tmp/discovery_floor.prof")
        pstats.Stats("/tmp/discovery_floor.prof").sort_stats("tottime").print_stats(15)
        return
    runs = {"(b) yaml-rs floor": yaml_rs_floor, "(b) floor, no GC": yaml_rs_floor_no_gc,
            "(c) kubenb split+load": kubenb}
    times: dict[str, list[float]] = {name: [] for name in runs}
    counts = {}
    for round_ in range(options.rounds):
        for name, run in list(runs.items())[:: 1 if round_ % 2 else -1]:
            seconds, counts[name] = timed(run, texts)
            times[name].append(seconds)
    seconds_a, counts["a"] = timed(pyyaml, texts)
    print(f"\n{'':26s} {'best s':>8s} {'median s':>9s} {'documents':>10s}")
    print(f"{'(a) PyYAML CSafeLoader':26s} {seconds_a:8.3f} {seconds_a:9.3f} {counts['a']:10d}")
    for name, seconds in times.items():
        print(f"{name:26s} {min(seconds):8.3f} {median(seconds):9.3f} {counts[name]:10d}")
    ours = times["(c) kubenb split+load"]
    for name in ("(b) yaml-rs floor", "(b) floor, no GC"):
        ratios = [c / b for b, c in zip(times[name], ours, strict=True)]
        print(f"c/b vs {name[4:]:17s} median of per-round ratios {median(ratios):.2f}x "
              f"(rounds {min(ratios):.2f}-{max(ratios):.2f}; best/best {min(ours) / min(times[name]):.2f}x)")
    print(f"c/a  {median(ours) / seconds_a:.2f}x  (kubenb vs PyYAML CSafeLoader alone: "
          f"{seconds_a / median(ours):.1f} times faster)")


if __name__ == "__main__":
    main()
