"""Manifest parsing against its floors: ``split_documents`` + ``load_documents`` vs bare parsers.

    .venv/bin/python bench/discovery_floor.py [--copies 20] [--rounds 5] [--profile]

Every manifest of ../shared/corpus/manifests is read ``--copies`` times (the texts are in
memory before any timing), then parsed three ways over the same texts:

    (a) PyYAML's CSafeLoader merely loading every document (``yaml.load_all``)
    (b) yaml-rs merely loading every file (``yaml_rs.loads``, one call per file; shown with
        its default duplicate-key check and with last-wins, the setting kubenb uses)
    (c) kubenb: ``split_documents`` then ``load_documents`` (yaml-rs when it surely agrees
        with PyYAML, PyYAML otherwise)

(b) and (c) run ``--rounds`` times, interleaved so both see the same machine; the figures are
the best round and the median round, in CPU seconds of this process (other work on the
machine disturbs wall time much more). (a) is ten times slower and runs once. Goal for the
whole discovery: 1.5x the yaml-rs floor, so (c) should stay close to (b).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from collections.abc import Callable
from pathlib import Path
from statistics import median

import yaml
import yaml_rs

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kubenb.discover.documents import load_documents, split_documents

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
Texts = list[tuple[str, str]]


def corpus_texts(copies: int) -> Texts:
    """(name, text) of every corpus manifest, ``copies`` times (copy number in the name)."""
    files = sorted((CORPUS / "manifests").glob("*"))
    return [(f"copy{n}/{path.name}", path.read_text(encoding="utf-8"))
            for n in range(copies) for path in files]


def pyyaml(texts: Texts) -> int:
    return sum(sum(doc is not None for doc in yaml.load_all(text, Loader=yaml.CSafeLoader))
               for _, text in texts)


def yaml_rs_default(texts: Texts) -> int:
    return sum(_count(yaml_rs.loads(text, parse_datetime=False)) for _, text in texts)


def yaml_rs_last_wins(texts: Texts) -> int:
    last_wins = yaml_rs.DuplicateKeyPolicy.LastWins
    return sum(_count(yaml_rs.loads(text, parse_datetime=False, duplicate_key_policy=last_wins))
               for _, text in texts)


def kubenb(texts: Texts) -> int:
    return sum(len(load_documents(split_documents(text, name))) for name, text in texts)


def _count(loaded: object) -> int:
    """Documents in a yaml-rs result (a list for a multi-document stream)."""
    return 1 if not isinstance(loaded, list) else sum(doc is not None for doc in loaded)


def timed(run: Callable[[Texts], int], texts: Texts) -> tuple[float, int]:
    """CPU seconds of this process (steadier than wall time on a shared machine)."""
    start = time.process_time()
    count = run(texts)
    return time.process_time() - start, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--copies", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", action="store_true", help="profile (c) once and exit")
    options = parser.parse_args()
    texts = corpus_texts(options.copies)
    megabytes = sum(len(text.encode()) for _, text in texts) / 1e6
    print(f"{len(texts)} files ({options.copies} copies of the corpus), {megabytes:.1f} MB")
    if options.profile:
        cProfile.runctx("kubenb(texts)", globals(), {"texts": texts}, "/tmp/discovery_floor.prof")
        pstats.Stats("/tmp/discovery_floor.prof").sort_stats("tottime").print_stats(15)
        return
    floors = {"yaml-rs (default)": yaml_rs_default, "yaml-rs (last wins)": yaml_rs_last_wins,
              "kubenb split+load": kubenb}
    times: dict[str, list[float]] = {name: [] for name in floors}
    counts: dict[str, int] = {}
    for round_ in range(options.rounds):
        order = list(floors.items())
        for name, run in order if round_ % 2 == 0 else reversed(order):
            seconds, counts[name] = timed(run, texts)
            times[name].append(seconds)
    seconds_a, counts["PyYAML CSafeLoader"] = timed(pyyaml, texts)
    print(f"\n{'':24s} {'best s':>8s} {'median s':>9s} {'documents':>10s}")
    print(f"{'(a) PyYAML CSafeLoader':24s} {seconds_a:8.3f} {seconds_a:9.3f} "
          f"{counts['PyYAML CSafeLoader']:10d}")
    for label, name in (("(b) yaml-rs default", "yaml-rs (default)"),
                        ("(b) yaml-rs last-wins", "yaml-rs (last wins)"),
                        ("(c) kubenb split+load", "kubenb split+load")):
        print(f"{label:24s} {min(times[name]):8.3f} {median(times[name]):9.3f} {counts[name]:10d}")
    ours = times["kubenb split+load"]
    print()
    for name in ("yaml-rs (default)", "yaml-rs (last wins)"):
        print(f"c/b, b = {name:20s} best {min(ours) / min(times[name]):.2f}x   "
              f"median {median(ours) / median(times[name]):.2f}x")
    print(f"c/a  (vs PyYAML CSafeLoader)         best {min(ours) / seconds_a:.2f}x")


if __name__ == "__main__":
    main()
