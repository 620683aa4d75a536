"""Small OCI images written in pure Python, and a minimal OCI distribution client.

Tests need real images in a real registry without docker; everything here is
deterministic so the same seed always gives the same digests.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, Protocol
from urllib.parse import urljoin

import requests

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
# The registry answers 404 for an OCI manifest unless Accept lists the OCI types.
MANIFEST_ACCEPT = ", ".join([INDEX, MANIFEST, DOCKER_LIST, DOCKER_MANIFEST])
FIXED_MTIME = 1_600_000_000
PLATFORMS = (("linux", "amd64"), ("linux", "arm64"))
TIMEOUT = 30


def sha256_digest(data: bytes) -> str:
    """The OCI digest string of some bytes."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical_json(value: Any) -> bytes:
    """Stable JSON bytes, so equal content gives equal digests."""
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Blob:
    """Content-addressed bytes with their media type."""

    digest: str
    media_type: str
    data: bytes

    @classmethod
    def of(cls, media_type: str, data: bytes) -> Blob:
        return cls(sha256_digest(data), media_type, data)

    @property
    def size(self) -> int:
        return len(self.data)

    def descriptor(self) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size}


@dataclass(frozen=True)
class Layer(Blob):
    """A gzip tar layer; diff_id is the digest of the uncompressed tar."""

    diff_id: str


@dataclass(frozen=True)
class Image:
    """A single-platform image: the exact manifest bytes plus the blobs it names."""

    manifest: bytes
    config: Blob
    layers: tuple[Layer, ...]
    os: str = "linux"
    architecture: str = "amd64"
    media_type: str = MANIFEST

    @property
    def digest(self) -> str:
        return sha256_digest(self.manifest)

    @property
    def blobs(self) -> tuple[Blob, ...]:
        return (*self.layers, self.config)

    def descriptor(self) -> dict[str, Any]:
        return {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": len(self.manifest),
            "platform": {"architecture": self.architecture, "os": self.os},
        }


@dataclass(frozen=True)
class Index:
    """A multi-platform image index and its child images.

    ``nested`` holds child indexes it names (an index in an index); ``images`` then lists the
    image manifests of the whole tree, so blob counts stay simple.
    """

    manifest: bytes
    images: tuple[Image, ...]
    media_type: str = INDEX
    nested: tuple[Index, ...] = ()

    @property
    def digest(self) -> str:
        return sha256_digest(self.manifest)

    def descriptor(self) -> dict[str, Any]:
        """How a parent index names it: with no platform, as image tools write nested indexes."""
        return {"mediaType": self.media_type, "digest": self.digest, "size": len(self.manifest)}


def tar_bytes(files: Mapping[str, bytes]) -> bytes:
    """An uncompressed tar of files (and their parent dirs), sorted, fixed metadata."""
    dirs = {str(p) for name in files for p in PurePosixPath(name.lstrip("/")).parents}
    dirs.discard(".")
    entries = [(d, None) for d in dirs] + [(n.lstrip("/"), b) for n, b in files.items()]
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in sorted(entries, key=lambda e: (e[0], e[1] is not None)):
            info = tarfile.TarInfo(name)
            info.mtime = FIXED_MTIME
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def tar_member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    """An archive entry of any kind, for the hostile archives the load tests build."""
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info


def make_layer(files: Mapping[str, bytes]) -> Layer:
    """A deterministic gzip tar layer from {path: content}."""
    raw = tar_bytes(files)
    packed = gzip.compress(raw, compresslevel=6, mtime=0)
    return Layer(sha256_digest(packed), LAYER, packed, sha256_digest(raw))


def make_config(
    layers: Sequence[Layer], os: str = "linux", architecture: str = "amd64",
    labels: Mapping[str, str] | None = None,
) -> Blob:
    """An OCI image config whose rootfs.diff_ids match the layers."""
    config = {
        "architecture": architecture,
        "os": os,
        "config": {"Labels": dict(labels or {}), "Cmd": ["/bin/true"]},
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
    }
    return Blob.of(CONFIG, canonical_json(config))


def make_image(
    layers: Sequence[Layer], os: str = "linux", architecture: str = "amd64",
    labels: Mapping[str, str] | None = None,
) -> Image:
    """An OCI image manifest over the given layers."""
    config = make_config(layers, os, architecture, labels)
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": config.descriptor(),
        "layers": [layer.descriptor() for layer in layers],
    }
    return Image(canonical_json(manifest), config, tuple(layers), os, architecture)


def make_index(images: Iterable[Image]) -> Index:
    """An OCI image index naming each image with its platform."""
    children = tuple(images)
    index = {
        "schemaVersion": 2,
        "mediaType": INDEX,
        "manifests": [image.descriptor() for image in children],
    }
    return Index(canonical_json(index), children)


def nested_index(children: Iterable[Image | Index]) -> Index:
    """An OCI index naming images and other indexes (whose own children it lists as ``images``)."""
    named = tuple(children)
    index = {"schemaVersion": 2, "mediaType": INDEX, "manifests": [child.descriptor() for child in named]}
    images = tuple(image for child in named for image in (child.images if isinstance(child, Index) else (child,)))
    return Index(canonical_json(index), images, nested=tuple(c for c in named if isinstance(c, Index)))


def single_image(seed: str, architecture: str = "amd64") -> Image:
    """A one-layer image whose content (and so digest) depends on the seed."""
    layer = make_layer({f"etc/{seed}.txt": f"{seed} {architecture}\n".encode()})
    return make_image([layer], architecture=architecture, labels={"seed": seed})


def multi_arch_index(seed: str) -> Index:
    """A linux/amd64 + linux/arm64 index of seeded images."""
    return make_index(single_image(seed, arch) for _, arch in PLATFORMS)


def images_sharing_base(n: int, seed: str = "base") -> list[Image]:
    """n images on one shared base layer, each with its own top layer."""
    base = make_layer({"base/os-release": f"ID={seed}\n".encode()})
    return [
        make_image([base, make_layer({f"app/{i}": f"{seed} app {i}\n".encode()})],
                   labels={"seed": seed, "app": str(i)})
        for i in range(n)
    ]


class RegistryLike(Protocol):
    """What the client needs from a registry: its URL and optional credentials."""

    @property
    def url(self) -> str: ...

    @property
    def auth(self) -> tuple[str, str] | None: ...


Target = RegistryLike | str
Auth = tuple[str, str] | None


class RegistryError(RuntimeError):
    """A registry answered something the client did not expect."""


def _base_and_auth(registry: Target, auth: Auth) -> tuple[str, Auth]:
    """Base URL and credentials; auth defaults to the Registry's own credentials."""
    if isinstance(registry, str):
        base = registry if "://" in registry else f"http://{registry}"
        return base.rstrip("/"), auth
    return registry.url.rstrip("/"), auth if auth is not None else registry.auth


def _session(auth: Auth, verify: bool | str = True) -> requests.Session:
    """A session sending HTTP Basic credentials (what an htpasswd registry challenges for).

    ``verify`` is requests' own: a CA bundle path for a TLS registry with a private CA.
    """
    session = requests.Session()
    session.verify = verify
    # requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override a session's verify; not here
    session.trust_env = verify is True
    if auth is not None:
        session.auth = auth
    return session


def _check(response: requests.Response, expected: Iterable[int], what: str) -> None:
    if response.status_code in set(expected):
        return
    hint = ""
    if response.status_code == 401:
        hint = f" (challenge: {response.headers.get('WWW-Authenticate', 'none')})"
    raise RegistryError(
        f"{what}: HTTP {response.status_code}{hint}: {response.text[:500]}"
    )


def _push_blob(session: requests.Session, base: str, repository: str, blob: Blob) -> None:
    """Monolithic upload (POST then PUT ?digest=), skipped when HEAD finds the blob."""
    blob_url = f"{base}/v2/{repository}/blobs/{blob.digest}"
    if session.head(blob_url, timeout=TIMEOUT).status_code == 200:
        return
    start = session.post(f"{base}/v2/{repository}/blobs/uploads/", timeout=TIMEOUT)
    _check(start, [202], f"start upload of {blob.digest} to {repository}")
    location = urljoin(base + "/", start.headers["Location"])
    separator = "&" if "?" in location else "?"
    done = session.put(
        f"{location}{separator}digest={blob.digest}",
        data=blob.data,
        headers={"Content-Type": "application/octet-stream"},
        timeout=TIMEOUT,
    )
    _check(done, [201], f"upload of {blob.digest} to {repository}")


def _put_manifest(
    session: requests.Session, base: str, repository: str, reference: str,
    data: bytes, media_type: str,
) -> str:
    """PUT manifest bytes and return their digest, checked against the registry's."""
    response = session.put(
        f"{base}/v2/{repository}/manifests/{reference}",
        data=data,
        headers={"Content-Type": media_type},
        timeout=TIMEOUT,
    )
    _check(response, [201], f"put manifest {repository}:{reference}")
    digest = sha256_digest(data)
    answered = response.headers.get("Docker-Content-Digest", digest)
    if answered != digest:
        raise RegistryError(f"registry says {answered} for manifest {digest}")
    return digest


def _push_image(
    session: requests.Session, base: str, repository: str, reference: str, image: Image
) -> str:
    for blob in image.blobs:
        _push_blob(session, base, repository, blob)
    return _put_manifest(session, base, repository, reference, image.manifest,
                         image.media_type)


def push(
    registry: Target, repository: str, tag: str, artifact: Image | Index,
    auth: Auth = None, verify: bool | str = True,
) -> str:
    """Push an image or index (children first, by digest) under tag; return its digest.

    ``verify`` (a CA bundle path, or False) matters only for an ``https://`` registry URL.
    """
    base, credentials = _base_and_auth(registry, auth)
    with _session(credentials, verify) as session:
        return _push_artifact(session, base, repository, tag, artifact)


def _push_artifact(session: requests.Session, base: str, repository: str, tag: str, artifact: Image | Index) -> str:
    """Children first (by digest), nested indexes included, then the artifact under ``tag``."""
    if isinstance(artifact, Image):
        return _push_image(session, base, repository, tag, artifact)
    for nested in artifact.nested:
        _push_artifact(session, base, repository, nested.digest, nested)
    for image in artifact.images:
        _push_image(session, base, repository, image.digest, image)
    return _put_manifest(session, base, repository, tag, artifact.manifest, artifact.media_type)


def fetch_manifest(
    registry: Target, repository: str, reference: str, auth: Auth = None
) -> tuple[bytes, str]:
    """GET a manifest with OCI and Docker Accept types; return (bytes, content type)."""
    base, credentials = _base_and_auth(registry, auth)
    with _session(credentials) as session:
        response = session.get(
            f"{base}/v2/{repository}/manifests/{reference}",
            headers={"Accept": MANIFEST_ACCEPT},
            timeout=TIMEOUT,
        )
    _check(response, [200], f"get manifest {repository}:{reference}")
    return response.content, response.headers.get("Content-Type", "")


def blob_exists(registry: Target, repository: str, digest: str, auth: Auth = None) -> bool:
    """Whether HEAD finds the blob in that repository."""
    base, credentials = _base_and_auth(registry, auth)
    with _session(credentials) as session:
        response = session.head(f"{base}/v2/{repository}/blobs/{digest}", timeout=TIMEOUT)
    if response.status_code == 404:
        return False
    _check(response, [200], f"head blob {repository}@{digest}")
    return True
