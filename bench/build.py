"""Packaging overhead of a lite build: ``python bench/build.py``.

The example of examples/lite with its imageList grown to 20 images, each with a few MB of
layer, served by a local docker-registry. Measured in one run, each a fresh process into a
fresh store or folder, the two alternating, --rounds times; the figures are medians, because
on a shared 2-core machine single runs of either move by 20-30 %:

    build        kubenb build -t bench:1 of the example (discovery, layers, caching, commit)
    save-images  kubenb save-images of the same 20 images alone
    rebuild      the same build again into the same store, nothing changed (a fresh process)
The goal column adds the median and range of each round's ratio (build / save-images,
rebuild / build). Goals (issue 17): build / save-images <= 1.1; rebuild / build <= 0.1.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from table import Row, show  # noqa: E402

from kubenb import list_images  # noqa: E402
from kubenb.demo import DemoRegistry  # noqa: E402

EXTRA = [f"docker.io/bench/app{n}:1.0" for n in range(14)]


def timed(args: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "kubenb", *args], check=True, capture_output=True)
    return time.perf_counter() - started


def _spread(measured: list[float], baseline: list[float]) -> str:
    """The lowest and highest ratio of the rounds: a shared machine moves single runs a lot."""
    ratios = [m / b for m, b in zip(measured, baseline, strict=True)]
    return f"{min(ratios):.2f}x to {max(ratios):.2f}x"


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--rounds", type=int, default=7)
    options.add_argument("--mb", type=float, default=4.0, help="MB of random layer per image")
    options.add_argument("--json", action="store_true", help="print the rows as JSON (for bench/all.py)")
    args = options.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        context = Path(tmp, "context")
        shutil.copytree(ROOT / "examples" / "lite", context)
        with (context / "imageList").open("a") as image_list:
            image_list.writelines(f"{image}\n" for image in EXTRA)
        images = [str(found.image) for found in list_images(context).images]
        with DemoRegistry(images, padding=int(args.mb * 1e6)) as registry:
            mirrors = [f"--registry-mirror={d}={h}" for d, h in registry.mirrors().items()]
            builds, saves, rebuilds = [], [], []
            for n in range(args.rounds):
                build = ["--root", f"{tmp}/store{n}", "build", "-t", "bench:1", *mirrors, str(context)]
                builds.append(timed(build))
                saves.append(timed(["save-images", "-o", f"{tmp}/folder{n}", *images, *mirrors]))
                rebuilds.append(timed(build))
    build_s, save_s, rebuild_s = statistics.median(builds), statistics.median(saves), statistics.median(rebuilds)
    # each round's build over the save next to it: what a load that comes and goes moves less
    paired = [b / s for b, s in zip(builds, saves, strict=True)]
    per_round = f"{statistics.median(paired):.2f}x per round ({min(paired):.2f}x to {max(paired):.2f}x)"
    show([Row("build", f"lite build, {len(images)} images of {args.mb:.0f} MB", build_s,
              "save-images of the same images", save_s, f"<= 1.1x: {per_round}"),
          Row("rebuild", "the same build again, unchanged", rebuild_s,
              "the first build", build_s, f"<= 0.1x: {_spread(rebuilds, builds)} per round")],
         as_json=args.json, title=f"{len(images)} images, {args.mb:.0f} MB each; medians of {args.rounds} rounds")


if __name__ == "__main__":
    main()
