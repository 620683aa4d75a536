"""``make demo``: a lite build of examples/lite against a local registry it starts and seeds.

No internet is needed: the images the example names are seeded as tiny images into a local
docker-registry on 127.0.0.1, and the build pulls them through --registry-mirror.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import kubenb
from kubenb.demo import DemoRegistry

EXAMPLE = Path(__file__).resolve().parent / "lite"


def kubenb_cli(*args: str) -> None:
    print(f"$ kubenb {' '.join(args)}", flush=True)
    subprocess.run([sys.executable, "-m", "kubenb", *args], check=True)


def main() -> None:
    images = [str(found.image) for found in kubenb.list_images(EXAMPLE).images]
    with DemoRegistry(images) as registry, tempfile.TemporaryDirectory() as root:
        print(f"local registry on {registry.host}, seeded with {len(images)} images\n", flush=True)
        mirrors = [f"--registry-mirror={domain}={host}" for domain, host in registry.mirrors().items()]
        kubenb_cli("list-images", str(EXAMPLE))
        kubenb_cli("--root", root, "build", "-t", "example/cluster:v1", *mirrors, str(EXAMPLE))
        kubenb_cli("--root", root, "images")
        kubenb_cli("--root", root, "inspect", "example/cluster:v1")
    print(json.dumps({"ok": True}))


if __name__ == "__main__":
    main()
