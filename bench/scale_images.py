"""The generated image set of ``bench/scale.py``, written once and kept between runs.

Image ``n`` of the set is always the same (seeded by its number), so the set of 50 is the
first 50 of the set of 500 and a run that needs more images only adds the missing ones. The
images go straight into a registry storage folder (the layout docker-registry serves, written
by kubenb's own ``RegistryFolder``), with no upload through HTTP: seeding 5 GB took 30 s on the
2-core machine. The folder is a cache under ``$TMPDIR/kubenb-bench-scale`` (or
``$KUBENB_SCALE_CACHE``); ``--clean-cache`` of bench/scale.py removes it.

The recipe, per image ``n`` (about 10 MB of unique layers an image, 5 GB for 500):
- five tags per repository: ``scale/svc-NNN:vK`` with ``NNN = n // 5`` and ``K = n % 5``;
- a shared base of two layers (24 MB and 8 MB), one of four amd64 bases (one of two arm64);
- own layers of 2 to 15.4 MB in all (seeded), in one to three layers;
- every tenth image (``n % 10 == 7``) is a multi-arch index, linux/amd64 + linux/arm64, each
  platform with its own layers.
Layers are random bytes labelled as gzip layers: registries and pulls never look inside.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy

from kubenb.oci.media_types import OCI_CONFIG, OCI_INDEX, OCI_LAYER_GZIP, OCI_MANIFEST
from kubenb.registry_folder import RegistryFolder

GENERATION = 1  # bump when the recipe changes: the cache then lives in a new folder
MB = 1_000_000
CHUNK = 1 << 20
BASES = {"amd64": 4, "arm64": 2}
BASE_LAYERS_MB = (24, 8)
OWN_MB = (2.0, 15.4)
MULTI_ARCH = 7  # image n is multi-arch when n % 10 == MULTI_ARCH
TAGS_PER_REPOSITORY = 5


@dataclass(frozen=True)
class Generated:
    """One image of the set: where it is, the manifests behind its tag (the tag's first), and
    every config and layer blob it names with its size."""

    repository: str
    tag: str
    manifests: list[str]
    blobs: dict[str, int]

    def reference(self, host: str) -> str:
        return f"{host}/{self.repository}:{self.tag}"


def cache_root() -> Path:
    base = os.environ.get("KUBENB_SCALE_CACHE") or Path(tempfile.gettempdir(), "kubenb-bench-scale")
    return Path(base) / f"generation-{GENERATION}"


class ImageSet:
    """The cached set: ``storage`` is the registry's root folder, ``images.json`` what is in it."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or cache_root()
        self.storage = self.root / "storage"
        self.state_file = self.root / "images.json"
        self.folder = RegistryFolder(self.storage, durable=False)
        self.bases: dict[str, list[list[Any]]] = {}
        self.images: list[Generated] = []
        if self.state_file.is_file():
            state = json.loads(self.state_file.read_text())
            self.bases = state["bases"]
            self.images = [Generated(**image) for image in state["images"]]

    def ensure(self, count: int, *, progress: bool = True) -> list[Generated]:
        """The first ``count`` images, generating those not in the cache yet."""
        for n in range(len(self.images), count):
            self.images.append(self._image(n))
            if progress and (n + 1) % 50 == 0:
                print(f"  generated {n + 1} of {count} images", flush=True, file=sys.stderr)
            if (n + 1) % 25 == 0:
                self._save()
        self._save()
        return self.images[:count]

    def _save(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        temp = self.state_file.with_suffix(".tmp")
        temp.write_text(json.dumps({"bases": self.bases, "images": [asdict(image) for image in self.images]}))
        temp.replace(self.state_file)

    def _image(self, n: int) -> Generated:
        rng = random.Random(f"scale-image-{n}")
        repository, tag = f"scale/svc-{n // TAGS_PER_REPOSITORY:03d}", f"v{n % TAGS_PER_REPOSITORY}"
        blobs: dict[str, int] = {}
        if n % 10 != MULTI_ARCH:
            digest, data = self._manifest(repository, n, "amd64", rng, blobs)
            self.folder.put_manifest(repository, data, digest, tag, replace=True)
            return Generated(repository, tag, [digest], blobs)
        children = [self._manifest(repository, n, architecture, rng, blobs) for architecture in ("amd64", "arm64")]
        index = _json({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": digest, "size": len(data),
             "platform": {"os": "linux", "architecture": architecture}}
            for (digest, data), architecture in zip(children, ("amd64", "arm64"), strict=True)]})
        for digest, data in children:
            self.folder.put_manifest(repository, data, digest)
        self.folder.put_manifest(repository, index, _digest(index), tag, replace=True)
        return Generated(repository, tag, [_digest(index), *(digest for digest, _ in children)], blobs)

    def _manifest(self, repository: str, n: int, architecture: str, rng: random.Random,
                  blobs: dict[str, int]) -> tuple[str, bytes]:
        """One platform's image: its base, its own layers, its config; returns the manifest."""
        layers = self._base(architecture, n % BASES[architecture])
        own = rng.uniform(*OWN_MB) * MB
        parts = rng.randint(1, 3)
        layers += [self._random_blob(f"{n}-{architecture}-{part}", int(own / parts)) for part in range(parts)]
        config = _json({"architecture": architecture, "os": "linux",
                        "config": {"Labels": {"bench": "scale", "n": str(n)}, "Cmd": ["/bin/true"]},
                        "rootfs": {"type": "layers", "diff_ids": [digest for digest, _ in layers]}})
        self.folder.put_blob_bytes(config, _digest(config))
        manifest = _json({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                          "config": {"mediaType": OCI_CONFIG, "digest": _digest(config), "size": len(config)},
                          "layers": [{"mediaType": OCI_LAYER_GZIP, "digest": digest, "size": size}
                                     for digest, size in layers]})
        blobs.update(layers)
        blobs[_digest(config)] = len(config)
        return _digest(manifest), manifest

    def _base(self, architecture: str, number: int) -> list[tuple[str, int]]:
        name = f"{architecture}-{number}"
        if name not in self.bases:
            self.bases[name] = [list(self._random_blob(f"base-{name}-{part}", mb * MB))
                                for part, mb in enumerate(BASE_LAYERS_MB)]
        return [(str(digest), int(size)) for digest, size in self.bases[name]]

    def _random_blob(self, seed: str, size: int) -> tuple[str, int]:
        """``size`` seeded random bytes as a blob, hashed as they are written (in 1 MiB chunks)."""
        generator = numpy.random.Generator(numpy.random.PCG64(int.from_bytes(hashlib.sha256(seed.encode()).digest())))
        temp, hashed, left = self.folder.new_blob_file(), hashlib.sha256(), size
        with temp.open("wb") as out:
            while left:
                chunk = generator.bytes(min(CHUNK, left))
                hashed.update(chunk)
                out.write(chunk)
                left -= len(chunk)
        digest = "sha256:" + hashed.hexdigest()
        self.folder.commit_blob(temp, digest, verified=True)
        return digest, size


def unique_blobs(images: list[Generated]) -> dict[str, tuple[str, int]]:
    """Every blob the images name, once: digest -> (a repository that serves it, its size)."""
    found: dict[str, tuple[str, int]] = {}
    for image in images:
        for digest, size in image.blobs.items():
            found.setdefault(digest, (image.repository, size))
    return found


def _json(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()
