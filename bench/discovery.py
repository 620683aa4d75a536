"""Discovery speed against its floors, in one run: ``python bench/discovery.py``.

    manifests  every corpus manifest copied --copies times into one context; kubenb's whole
               discovery (read, split, parse, walk, normalise) against two floors that merely
               load the same documents: PyYAML's CSafeLoader and yaml-rs. Goal: <= 1.5x yaml-rs.
    no CRDs    the same without the CustomResourceDefinitions, which are 90% of the corpus's bytes
               and which discovery skips (a type's schema holds no image): what the parse costs on
               workload YAML. No goal: here discovery's reading, splitting and walking, which
               the CRDs dilute in the row above, show against the bare load (docs/benchmarks.md).
    charts     every corpus chart in one context; kubenb against bare helm-python-sdk
               ``Chart.load(...).render(...)`` of the same charts, the two alternating for
               --chart-rounds rounds; medians, as bench/build.py takes them. Goal: <= 1.2x.
               (Not best-of like the rows above: Helm's Go runtime moves one render of the
               same charts by up to 40 % from round to round, so two separately taken bests
               pair a lucky round of one with any round of the other.)
    cached     a second list_images of the unchanged manifest context against the first. Goal: < 0.1x.

Times are wall seconds; ``--cpu`` times CPU seconds of this process instead (all its threads:
helm-python-sdk renders in Go), steadier when other work loads the machine.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import helm_python
import yaml
import yaml_rs

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from table import Row, show

from kubenb.discover import clear_memo, context_images
from kubenb.discover.documents import is_crd, split_documents
from kubenb.kubefile import plan_build
from tests.support.corpus import CORPUS

CHART_VALUES = {"apollo-portal": "apollo-portal.yaml", "apollo-service": "apollo-service.yaml"}
CLOCK = [time.perf_counter]


def timed(run: Callable[[], object]) -> float:
    started = CLOCK[0]()
    run()
    return CLOCK[0]() - started


def best_of(rounds: int, run: Callable[[], object], before: Callable[[], None] = lambda: None) -> float:
    times = []
    for _ in range(rounds):
        before()
        times.append(timed(run))
    return min(times)


def manifest_context(root: Path, copies: int, *, without_crds: bool = False) -> list[Path]:
    files = []
    for copy in range(copies):
        folder = root / "manifests" / f"copy{copy:02d}"
        folder.mkdir(parents=True)
        for source in sorted((CORPUS / "manifests").iterdir()):
            if not without_crds:
                files.append(Path(shutil.copy(source, folder / source.name)))
            elif kept := [d.text for d in split_documents(source.read_text(), source.name) if not is_crd(d.text)]:
                files.append(folder / source.name)
                files[-1].write_text("---\n".join(kept))
    return files


def chart_context(root: Path) -> None:
    (root / "charts").mkdir(parents=True)
    for chart in sorted((CORPUS / "charts").iterdir()):
        shutil.copytree(chart, root / "charts" / chart.name)
        if chart.name in CHART_VALUES:
            shutil.copy(CORPUS / "values" / CHART_VALUES[chart.name], root / "charts" / f"{chart.name}.values.yaml")


def pyyaml_floor(files: list[Path]) -> None:
    for path in files:
        list(yaml.load_all(path.read_text(), Loader=yaml.CSafeLoader))


def yaml_rs_floor(files: list[Path]) -> None:
    for path in files:
        yaml_rs.loads(path.read_text(), parse_datetime=False)


def sdk_floor(root: Path) -> None:
    for chart in sorted((root / "charts").iterdir()):
        if chart.is_dir():
            values_file = root / "charts" / f"{chart.name}.values.yaml"
            values = yaml.safe_load(values_file.read_text()) if values_file.exists() else None
            helm_python.Chart.load(chart).render(values, name="release", namespace="default")


def alternated(rounds: int, measured: Callable[[], object], baseline: Callable[[], object],
               before: Callable[[], None]) -> tuple[list[float], list[float]]:
    """Each round times ``baseline`` then ``measured`` (``measured`` first every other round)."""
    times: tuple[list[float], list[float]] = ([], [])
    for round_ in range(rounds):
        for side in ((0, 1) if round_ % 2 else (1, 0)):
            before()
            times[side].append(timed(measured if side == 0 else baseline))
    return times


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--copies", type=int, default=20)
    options.add_argument("--rounds", type=int, default=3)
    options.add_argument("--chart-rounds", type=int, default=9)
    options.add_argument("--json", action="store_true", help="print the rows as JSON (for bench/all.py)")
    options.add_argument("--cpu", action="store_true", help="CPU seconds of this process, not wall seconds")
    args = options.parse_args()
    if args.cpu:
        CLOCK[0] = time.process_time
    with tempfile.TemporaryDirectory() as tmp:
        manifests, charts = Path(tmp, "manifests-context"), Path(tmp, "charts-context")
        files = manifest_context(manifests, args.copies)
        chart_context(charts)
        size = sum(f.stat().st_size for f in files) / 1e6
        kubenb_manifests = best_of(args.rounds, lambda: context_images(plan_build(manifests)), clear_memo)
        rs = best_of(args.rounds, lambda: yaml_rs_floor(files))
        safe = timed(lambda: pyyaml_floor(files))
        workloads = Path(tmp, "workloads-context")
        workload_files = manifest_context(workloads, args.copies, without_crds=True)
        workload_size = sum(f.stat().st_size for f in workload_files) / 1e6
        kubenb_workloads = best_of(args.rounds, lambda: context_images(plan_build(workloads)), clear_memo)
        rs_workloads = best_of(args.rounds, lambda: yaml_rs_floor(workload_files))
        timed(lambda: sdk_floor(charts))  # the Go runtime's first start is neither side's
        kubenb_runs, sdk_runs = alternated(args.chart_rounds, lambda: context_images(plan_build(charts)),
                                           lambda: sdk_floor(charts), clear_memo)
        kubenb_charts, sdk = statistics.median(kubenb_runs), statistics.median(sdk_runs)
        paired = [k / b for k, b in zip(kubenb_runs, sdk_runs, strict=True)]
        clear_memo()
        first = timed(lambda: context_images(plan_build(manifests)))
        second = timed(lambda: context_images(plan_build(manifests)))
    title = (f"manifests: {len(files)} files, {size:.1f} MB; charts: {len(CHART_VALUES)} with values, "
             f"{sum(1 for _ in (CORPUS / 'charts').iterdir())} in all; best of {args.rounds}"
             f", charts: medians of {args.chart_rounds}"
             f"{', CPU seconds' if args.cpu else ''}")
    show([
        Row("discovery", f"manifests, {size:.0f} MB", kubenb_manifests, "yaml-rs loading the same files", rs,
            "<= 1.5x"),
        Row("discovery", f"manifests, {size:.0f} MB", kubenb_manifests, "PyYAML CSafeLoader loading them", safe),
        Row("discovery", f"manifests without CRDs, {workload_size:.1f} MB", kubenb_workloads,
            "yaml-rs loading the same files", rs_workloads),
        Row("discovery", "charts of the corpus", kubenb_charts, "bare helm-python-sdk render", sdk,
            f"<= 1.2x: {statistics.median(paired):.2f}x per round ({min(paired):.2f}x to {max(paired):.2f}x)"),
        Row("discovery", "cached second list_images", second, "the first list_images", first, "< 0.1x"),
    ], as_json=args.json, title=title)


if __name__ == "__main__":
    main()
