"""Pulling into a registry folder against skopeo and the network floor: ``python bench/cache.py``.

30 images of one repository (one tag each) share a base layer and each adds its own layers:
over 300 MB of unique blobs in a local docker-registry on 127.0.0.1. Measured in one run:

    kubenb     ``kubenb save-images -o DIR`` of the 30 images (a fresh process; its peak RSS)
    skopeo     ``skopeo sync --all --src docker --dest dir`` of the same repository
    floor      one plain HTTP GET per unique blob over loopback, streamed to files
    warm       kubenb again into the same folder (everything complete: nothing fetched)

Goals: kubenb/skopeo <= 1.0, kubenb/floor <= 1.5, peak memory < 150 MB, warm rerun < 1 s.
Layers are random bytes labelled as layers: a registry and these clients never look inside.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from table import Row, show  # noqa: E402

from tests.support.oci import LAYER, Image, Layer, make_image, push  # noqa: E402
from tests.support.registry import Registry  # noqa: E402

REPOSITORY = "bench/app"
MEASURE = (
    "import resource, sys\nfrom kubenb.cli import main\ncode = main(sys.argv[1:])\n"
    "print('maxrss_kb', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\nsys.exit(code)\n"
)


def random_layer(size: int) -> Layer:
    data = os.urandom(size)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    return Layer(digest=digest, media_type=LAYER, data=data, diff_id=digest)


def seed(registry: Registry, count: int, base_mb: int, own_mb: int) -> tuple[list[str], dict[str, int]]:
    base = random_layer(base_mb * 1_000_000)
    references, blobs = [], {base.digest: base.size}
    for n in range(count):
        own = [random_layer(own_mb * 1_000_000 // 2), random_layer(own_mb * 1_000_000 // 2)]
        image: Image = make_image([base, *own], labels={"n": str(n)})
        push(registry, REPOSITORY, f"v{n}", image)
        references.append(f"{registry.host}/{REPOSITORY}:v{n}")
        blobs.update({blob.digest: blob.size for blob in image.blobs})
    return references, blobs


def timed(command: list[str], env: dict[str, str] | None = None) -> tuple[float, str]:
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{command[0]} failed: {result.stderr[-2000:]}")
    return elapsed, result.stderr


def kubenb(references: list[str], output: Path) -> tuple[float, int]:
    seconds, stderr = timed([sys.executable, "-c", MEASURE, "save-images", "-o", str(output), *references])
    rss = int(stderr.rsplit("maxrss_kb", 1)[1].split()[0])
    return seconds, rss * 1024


def floor(registry: Registry, blobs: dict[str, int], output: Path) -> float:
    output.mkdir()
    started = time.perf_counter()
    with requests.Session() as session:
        for digest in blobs:
            with session.get(f"{registry.url}/v2/{REPOSITORY}/blobs/{digest}", stream=True, timeout=60) as response:
                response.raise_for_status()
                with (output / digest.replace(":", "_")).open("wb") as file:
                    for chunk in response.iter_content(1 << 20):
                        file.write(chunk)
    return time.perf_counter() - started


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--images", type=int, default=30)
    options.add_argument("--base-mb", type=int, default=20)
    options.add_argument("--own-mb", type=int, default=10)
    options.add_argument("--json", action="store_true", help="print the rows as JSON (for bench/all.py)")
    args = options.parse_args()
    with tempfile.TemporaryDirectory() as tmp, Registry(Path(tmp, "source")) as registry:
        references, blobs = seed(registry, args.images, args.base_mb, args.own_mb)
        unique_mb = sum(blobs.values()) / 1e6
        kubenb_s, rss = kubenb(references, Path(tmp, "kubenb"))
        skopeo_s, _ = timed(["skopeo", "sync", "--all", "--src", "docker", "--dest", "dir", "--src-tls-verify=false",
                             f"{registry.host}/{REPOSITORY}", str(Path(tmp, "skopeo"))])
        floor_s = floor(registry, blobs, Path(tmp, "floor"))
        warm_s, _ = kubenb(references, Path(tmp, "kubenb"))
        shutil.rmtree(Path(tmp, "skopeo"), ignore_errors=True)
    show([
        Row("cache", f"save-images, {args.images} images", kubenb_s, "skopeo sync --all (dir)", skopeo_s, "<= 1.0x"),
        Row("cache", f"save-images, {args.images} images", kubenb_s, "floor: one GET per blob", floor_s, "<= 1.5x"),
        Row("cache", "warm rerun (all complete)", warm_s, goal="< 1 s"),
    ], as_json=args.json, title=f"{args.images} images, {len(blobs)} unique blobs, {unique_mb:.0f} MB unique; "
                                 f"one run; kubenb peak memory {rss / 1e6:.0f} MB (goal < 150 MB)")


if __name__ == "__main__":
    main()
