"""kubenb at scale: ``python bench/scale.py`` (``--images N``, ``--growth 50,100,200,500``).

The generated image set of ``bench/scale_images.py`` (500 images by default, about 5 GB of
unique blobs: shared base layers, every tenth image a linux/amd64 + linux/arm64 index) served
by a local docker-registry from its cached storage folder. Each kubenb command runs in a fresh
process (``kubenb.cli.main``, as ``python -m kubenb`` runs it) that reports its peak RSS (VmHWM).

    save-images  ``kubenb save-images -o DIR`` of every image, against the floor: one plain
                 HTTP GET per manifest (the tag, then an index's children) and per unique
                 blob, one after the other, streamed to files, with no checks at all.
                 Goals: <= 1.2x the floor, peak RSS <= 150 MB. Alternating rounds, medians.
    build        ``kubenb build`` of a context whose imageList names every image (a Kubefile
                 of ``FROM scratch`` and ``COPY imageList manifests``), into a fresh store;
                 shown against the save-images of the same round. Goal: peak RSS <= 200 MB.
    discovery    ``list_images`` of 1,000 manifest files (the corpus manifests copied 50 times,
                 as bench/discovery.py does with 20), against yaml-rs loading the same files.
                 Goal: <= 1.5x. Best of the rounds, in this process.
    preview      a ``%%kubefile`` cell over a 1,000-image imageList in a fresh IPython shell,
                 then its ``plan.images`` DataFrame; against discovery alone in a fresh
                 process. Goal: < 2 s. (The review widget of 1,000 images is bench/preview.py's.)

``--growth`` runs save-images, the floor and the build once for each size (the set of 50 is
the first 50 of the set of 500) and prints how time and peak RSS grow. Every output folder and
store is removed as soon as it is measured: the cache (5 GB at 500 images) is all that stays,
and a run needs about twice the set's size of free disk besides (the build's registry folder
and its layer). ``os.sync()`` runs before each timed command, so none pays for another's
writes, and the set's blobs are read once first, so all read them from the page cache.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from discovery import best_of, manifest_context, yaml_rs_floor  # noqa: E402
from scale_images import Generated, ImageSet, cache_root, unique_blobs  # noqa: E402
from table import Row, show  # noqa: E402

from kubenb.discover import clear_memo, context_images  # noqa: E402
from kubenb.kubefile import plan_build  # noqa: E402
from tests.support.oci import MANIFEST_ACCEPT  # noqa: E402
from tests.support.registry import Registry  # noqa: E402

MANIFEST_COPIES = 50  # 20 corpus manifests x 50 = 1,000 files
PREVIEW_IMAGES = 1000
SAVE_RSS_MB, BUILD_RSS_MB = 150, 200
KUBEFILE = "FROM scratch\nCOPY imageList manifests\n"

PREVIEW = """
import json, time
from IPython.core.interactiveshell import InteractiveShell
shell = InteractiveShell.instance()
shell.run_line_magic("load_ext", "kubenb")
started = time.perf_counter()
outcome = shell.run_cell("%%kubefile --context {context} --root {store} --out plan\\n" + {kubefile!r})
cell = time.perf_counter() - started
if not outcome.success:
    raise SystemExit(f"the preview failed: {{outcome.error_in_exec or outcome.error_before_exec}}")
started = time.perf_counter()
frame = shell.user_ns["plan"].images
print(json.dumps({{"cell": cell, "frame": time.perf_counter() - started, "rows": len(frame)}}))
"""
DISCOVERY = """
import json, time
from kubenb.discover import context_images
from kubenb.kubefile import plan_build
started = time.perf_counter()
found = context_images(plan_build({context!r}))
print(json.dumps({{"seconds": time.perf_counter() - started, "images": len(found.images)}}))
"""


#: ``python -m kubenb`` that writes its own peak RSS (VmHWM) last. Not ``wait4``'s ``ru_maxrss``:
#: Linux carries the parent's peak over into a child at exec, so a child of this process (which
#: holds pandas, numpy and helm_python) would report this process's size, about 110 MB.
MEASURED = """
import sys
from kubenb.cli import main
try:
    code = main(sys.argv[1:])
finally:
    with open("/proc/self/status") as status:
        peak = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
    print("kubenb-peak-rss-kb", peak, file=sys.stderr)
sys.exit(code)
"""


class Runner:
    """Runs kubenb commands in fresh processes (this checkout's kubenb) in a scratch folder."""

    def __init__(self, scratch: Path) -> None:
        self.scratch = scratch
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), "KUBENB_ROOT": str(scratch / "default-store")}

    def kubenb(self, *arguments: str) -> tuple[float, int]:
        """Wall seconds and peak RSS (bytes, the process's VmHWM) of one kubenb process."""
        os.sync()
        log = self.scratch / "kubenb.log"
        with log.open("wb") as output:
            started = time.perf_counter()
            done = subprocess.run([sys.executable, "-c", MEASURED, *arguments], env=self.env, cwd=self.scratch,
                                  stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT, check=False)
            seconds = time.perf_counter() - started
        text = log.read_text(errors="replace")
        if done.returncode != 0:
            raise SystemExit(f"kubenb {arguments[0]} failed:\n{text[-3000:]}")
        return seconds, int(text.rsplit("kubenb-peak-rss-kb", 1)[1].split()[0]) * 1024

    def fresh(self, name: str) -> Path:
        path = self.scratch / name
        shutil.rmtree(path, ignore_errors=True)
        return path


def floor(registry: Registry, images: Sequence[Generated], output: Path) -> float:
    """One plain GET per manifest and per unique blob, streamed to files: what any pull must do."""
    os.sync()
    output.mkdir()
    started = time.perf_counter()
    with requests.Session() as session:
        for image in images:
            for number, reference in enumerate([image.tag, *image.manifests[1:]]):
                answer = session.get(f"{registry.url}/v2/{image.repository}/manifests/{reference}",
                                     headers={"Accept": MANIFEST_ACCEPT}, timeout=60)
                answer.raise_for_status()
                (output / f"{image.repository.replace('/', '_')}-{image.tag}-{number}").write_bytes(answer.content)
        for digest, (repository, _) in unique_blobs(list(images)).items():
            with session.get(f"{registry.url}/v2/{repository}/blobs/{digest}", stream=True, timeout=60) as answer:
                answer.raise_for_status()
                with (output / digest.replace(":", "_")).open("wb") as file:
                    for chunk in answer.iter_content(1 << 20):
                        file.write(chunk)
    return time.perf_counter() - started


def warm(image_set: ImageSet, images: Sequence[Generated]) -> None:
    """Read every blob once, so that the first timed command does not pay for the disk."""
    for digest in unique_blobs(list(images)):
        with image_set.folder.blob_path(digest).open("rb") as blob:
            while blob.read(1 << 22):
                pass


def save_and_floor(runner: Runner, registry: Registry, references: list[str], images: Sequence[Generated]
                   ) -> tuple[float, int, float]:
    """One round: kubenb save-images, then the floor, each into a fresh folder removed after."""
    folder = runner.fresh("saved")
    seconds, rss = runner.kubenb("save-images", "-o", str(folder), *references)
    shutil.rmtree(folder)
    floor_folder = runner.fresh("floor")
    floor_s = floor(registry, images, floor_folder)
    shutil.rmtree(floor_folder)
    return seconds, rss, floor_s


def build(runner: Runner, references: list[str]) -> tuple[float, int]:
    context, store = runner.fresh("context"), runner.fresh("store")
    context.mkdir()
    (context / "Kubefile").write_text(KUBEFILE)
    (context / "imageList").write_text("".join(f"{reference}\n" for reference in references))
    try:
        return runner.kubenb("--root", str(store), "build", "-t", "scale:1", str(context))
    finally:
        shutil.rmtree(store, ignore_errors=True)
        shutil.rmtree(context, ignore_errors=True)


def spread(values: Sequence[float], unit: str = "x") -> str:
    return f"{min(values):.2f}{unit} to {max(values):.2f}{unit}"


def image_rows(runner: Runner, registry: Registry, images: list[Generated], rounds: int) -> list[Row]:
    references = [image.reference(registry.host) for image in images]
    saves, rss, floors, builds, build_rss = [], [], [], [], []
    for _ in range(rounds):
        seconds, peak, floor_s = save_and_floor(runner, registry, references, images)
        saves.append(seconds)
        rss.append(peak)
        floors.append(floor_s)
        seconds, peak = build(runner, references)
        builds.append(seconds)
        build_rss.append(peak)
    ratios = [save / floor_s for save, floor_s in zip(saves, floors, strict=True)]
    save_mb, build_mb = max(rss) / 1e6, max(build_rss) / 1e6
    count = len(images)
    return [
        Row("scale", f"save-images, {count} images", statistics.median(saves), "floor: one GET per manifest, blob",
            statistics.median(floors), f"<= 1.2x ({spread(ratios)}, {rounds} rounds); "
            f"peak RSS {save_mb:.0f} MB <= {SAVE_RSS_MB} MB, {_met(save_mb <= SAVE_RSS_MB)}"),
        Row("scale", f"lite build, {count} images", statistics.median(builds), "save-images of the same images",
            statistics.median(saves), f"peak RSS {build_mb:.0f} MB <= {BUILD_RSS_MB} MB, "
            f"{_met(build_mb <= BUILD_RSS_MB)}"),
    ]


def discovery_rows(scratch: Path, rounds: int) -> list[Row]:
    context = scratch / "manifests-context"
    files = manifest_context(context, MANIFEST_COPIES)
    size = sum(file.stat().st_size for file in files) / 1e6
    kubenb_s = best_of(rounds, lambda: context_images(plan_build(context)), clear_memo)
    floor_s = best_of(rounds, lambda: yaml_rs_floor(files))
    shutil.rmtree(context)
    return [Row("scale", f"discovery, {len(files):,} manifests, {size:.0f} MB", kubenb_s,
                "yaml-rs loading the same files", floor_s, "<= 1.5x")]


def preview_rows(scratch: Path, rounds: int) -> list[Row]:
    context = scratch / "preview-context"
    context.mkdir()
    (context / "Kubefile").write_text(KUBEFILE)
    (context / "imageList").write_text("".join(f"registry.example.com/team/service-{number}:1.{number % 7}\n"
                                               for number in range(PREVIEW_IMAGES)))
    code = PREVIEW.format(context=context, store=scratch / "preview-store", kubefile=KUBEFILE)
    previews = [_in_fresh_process(code) for _ in range(rounds)]
    alone = min(float(_in_fresh_process(DISCOVERY.format(context=str(context)))["seconds"]) for _ in range(rounds))
    whole = min(float(run["cell"]) + float(run["frame"]) for run in previews)
    frame = min(float(run["frame"]) for run in previews)
    return [Row("scale", f"preview + DataFrame, {PREVIEW_IMAGES:,} images", whole, "discovery alone, fresh process",
                alone, f"< 2 s (the DataFrame alone: {frame:.3f} s)")]


def growth(runner: Runner, registry: Registry, image_set: ImageSet, sizes: list[int]) -> str:
    """Save-images, the floor and the build once per size: time and peak RSS as the set grows."""
    lines = [f"{'images':>6} {'unique':>8} {'blobs':>6} {'save-images':>12} {'floor':>8} {'ratio':>6} "
             f"{'save RSS':>9} {'build':>8} {'build RSS':>10}"]
    for size in sizes:
        images = image_set.ensure(size)
        references = [image.reference(registry.host) for image in images]
        blobs = unique_blobs(images)
        save_s, save_rss, floor_s = save_and_floor(runner, registry, references, images)
        build_s, build_rss = build(runner, references)
        lines.append(f"{size:>6} {sum(size for _, size in blobs.values()) / 1e9:>6.2f} GB {len(blobs):>6} "
                     f"{save_s:>10.2f} s {floor_s:>6.2f} s {save_s / floor_s:>5.2f}x {save_rss / 1e6:>6.0f} MB "
                     f"{build_s:>6.2f} s {build_rss / 1e6:>7.0f} MB")
        print(lines[-1], file=sys.stderr, flush=True)
    return "\n".join(lines)


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def _in_fresh_process(code: str) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    if done.returncode != 0:
        raise SystemExit(done.stderr.strip() or done.stdout.strip())
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--images", type=int, default=500, help="how many images of the set (default 500)")
    options.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    options.add_argument("--growth", default="", metavar="N,N,...",
                         help="also time save-images, its floor and the build once at each size, e.g. 50,100,200,500")
    options.add_argument("--only", choices=("images", "discovery", "preview"), action="append",
                         help="measure only these (repeatable; default all)")
    options.add_argument("--clean-cache", action="store_true", help="remove the generated set and exit")
    options.add_argument("--json", action="store_true", help="print the rows as JSON (for bench/all.py)")
    args = options.parse_args()
    if args.clean_cache:
        shutil.rmtree(cache_root().parent, ignore_errors=True)
        return
    parts = set(args.only or ("images", "discovery", "preview"))
    sizes = sorted({int(size) for size in args.growth.split(",") if size.strip()})
    image_set = ImageSet()
    images = image_set.ensure(max([args.images, *sizes]))[:args.images]
    rows: list[Row] = []
    table_text = ""
    with tempfile.TemporaryDirectory(prefix="kubenb-scale-") as tmp:
        scratch = Path(tmp)
        runner = Runner(scratch)
        if "images" in parts or sizes:
            with Registry(scratch / "registry", root=image_set.storage, read_only=True) as registry:
                warm(image_set, image_set.images)
                if "images" in parts:
                    rows += image_rows(runner, registry, images, args.rounds)
                if sizes:
                    table_text = growth(runner, registry, image_set, sizes)
        if "discovery" in parts:
            rows += discovery_rows(scratch, args.rounds)
        if "preview" in parts:
            rows += preview_rows(scratch, args.rounds)
    blobs = unique_blobs(images)
    title = (f"{len(images)} images ({sum(1 for image in images if len(image.manifests) > 1)} multi-arch), "
             f"{len(blobs)} unique blobs, {sum(size for _, size in blobs.values()) / 1e9:.2f} GB; medians of "
             f"{args.rounds} alternating rounds (discovery and preview: best of them); load {_load()}")
    show(rows, as_json=args.json, title=title)
    if table_text:
        print(f"\ngrowth (one round per size):\n{table_text}", file=sys.stderr if args.json else sys.stdout)


def _load() -> str:
    return ", ".join(f"{value:.1f}" for value in os.getloadavg())


if __name__ == "__main__":
    main()
