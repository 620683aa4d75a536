"""How fast a ``%%kubefile`` preview appears: ``python bench/preview.py``.

The context holds the whole corpus: every manifest of ``tests/corpus/manifests`` and every
chart of ``tests/corpus/charts`` (with the values files the corpus gives), copied in by
the Kubefile's COPY lines. Each round starts a fresh Python process with a real IPython shell
and ``%load_ext kubenb`` (not timed), then times, in that process:

    first   the first preview cell: Kubefile written, parsed, every manifest and chart
            discovered (the Helm engine loads on first use). Goal: < 2 s.
    again   the same cell run again with nothing changed. Goal: < 0.3 s.
Baseline: ``kubenb.discover.context_images`` of the same context in its own fresh process, timed
after its import as the cell is timed after ``%load_ext``: the ratio is what the magic adds.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from table import Row, show  # noqa: E402

from tests.support.corpus import CORPUS  # noqa: E402

CHART_VALUES = {"apollo-portal": "apollo-portal.yaml", "apollo-service": "apollo-service.yaml"}
KUBEFILE = "FROM scratch\nCOPY manifests/* manifests/\nCOPY charts/* charts/\n"

SHELL = """
import json, sys, time
from IPython.core.interactiveshell import InteractiveShell
shell = InteractiveShell.instance()
shell.run_line_magic("load_ext", "kubenb")
cell = "%%kubefile --context {context} --root {store} --out plan\\n" + {kubefile!r}
times = []
for _ in range(2):
    started = time.perf_counter()
    outcome = shell.run_cell(cell)
    times.append(time.perf_counter() - started)
    if not outcome.success:
        sys.exit(f"the preview failed: {{outcome.error_in_exec or outcome.error_before_exec}}")
print(json.dumps({{"times": times, "images": len(shell.user_ns["plan"].image_list.images)}}))
"""

DISCOVERY = """
import json, time
from kubenb.discover import context_images
from kubenb.kubefile import plan_build
started = time.perf_counter()
found = context_images(plan_build({context!r}))
print(json.dumps({{"seconds": time.perf_counter() - started, "images": len(found.images)}}))
"""


def corpus_context(folder: Path) -> Path:
    shutil.copytree(CORPUS / "manifests", folder / "manifests")
    (folder / "charts").mkdir()
    for chart in sorted((CORPUS / "charts").iterdir()):
        shutil.copytree(chart, folder / "charts" / chart.name)
        if chart.name in CHART_VALUES:
            shutil.copy(CORPUS / "values" / CHART_VALUES[chart.name], folder / "charts" / f"{chart.name}.values.yaml")
    (folder / "Kubefile").write_text(KUBEFILE)
    return folder


def in_fresh_process(code: str) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(done.stderr.strip() or done.stdout.strip())
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--rounds", type=int, default=3)
    options.add_argument("--json", action="store_true", help="print the rows as JSON (for bench/all.py)")
    args = options.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        context = corpus_context(Path(tmp, "context"))
        firsts, agains, baselines = [], [], []
        for _ in range(args.rounds):
            shell = in_fresh_process(SHELL.format(context=context, store=Path(tmp, "store"), kubefile=KUBEFILE))
            first, again = shell["times"]  # type: ignore[misc]
            firsts.append(float(first))
            agains.append(float(again))
            baselines.append(float(in_fresh_process(DISCOVERY.format(context=str(context)))["seconds"]))  # type: ignore[arg-type]
    first_s, again_s, base_s = min(firsts), min(agains), min(baselines)
    show([
        Row("preview", "%%kubefile preview, first", first_s, "discovery alone, fresh process", base_s, "< 2 s"),
        Row("preview", "%%kubefile preview, unchanged", again_s, "the first preview", first_s, "< 0.3 s"),
    ], as_json=args.json, title=f"corpus context: {sum(1 for _ in (CORPUS / 'manifests').iterdir())} manifests, "
                                f"{sum(1 for _ in (CORPUS / 'charts').iterdir())} charts, {shell['images']} images; "
                                f"best of {args.rounds}")


if __name__ == "__main__":
    main()
