"""Records of the local store: a cluster image, one of its layers, and how images are named.

A cluster image is an ordinary single-platform OCI image, so these records only name the
parts of it the rest of kubenb needs (id, digests, labels, annotations) without making
anybody parse OCI JSON. They live here rather than in ``model`` because only the store makes
them and everything that uses them already depends on the store.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from kubenb.errors import InvalidReferenceError, StoreError
from kubenb.reference import DEFAULT_TAG, is_content_digest, parse_reference

__all__ = ["ClusterImage", "Layer", "is_digest", "normalize_name"]

def is_digest(text: str) -> bool:
    """Whether ``text`` is a sha256 digest: the only algorithm the store writes and trusts."""
    return text.startswith("sha256:") and is_content_digest(text)


def _frozen(mapping: Mapping[str, str]) -> Mapping[str, str]:
    """A read-only copy, so a frozen record cannot be changed through its mappings."""
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True)
class Layer:
    """One layer blob: ``digest`` of the gzip blob, ``diff_id`` of the plain tar, ``size`` of
    the blob. The two digests differ because registries move the compressed form while the
    config (and so the image id) records the uncompressed one."""

    digest: str
    diff_id: str
    size: int

    def to_dict(self) -> dict[str, Any]:
        return {"digest": self.digest, "diff_id": self.diff_id, "size": self.size}


@dataclass(frozen=True)
class ClusterImage:
    """A named image in the store; ``id`` is the config digest, as docker's image ID is."""

    name: str
    id: str
    manifest_digest: str
    created: str
    size: int
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    platform: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", _frozen(self.labels))
        object.__setattr__(self, "annotations", _frozen(self.annotations))

    @property
    def short_id(self) -> str:
        """The 12 hex digits ``kubenb images`` shows, enough to name the image again."""
        return self.id.removeprefix("sha256:")[:12]

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of ``kubenb images -o json`` (a stable contract)."""
        return {
            "name": self.name,
            "id": self.id,
            "manifest_digest": self.manifest_digest,
            "created": self.created,
            "size": self.size,
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "platform": self.platform,
        }


def normalize_name(name: str) -> str:
    """``NAME:TAG`` as the user wrote it, with ``:latest`` added to a bare name.

    The name is kept as written (no ``docker.io/library/``): a cluster image is named by its
    user, and ``kubenb images`` should show that same name. It must still be a valid image
    reference so that ``push`` can send it somewhere, and digests are refused because a
    name in the store points at whatever was committed last.
    """
    if "@" in name:
        raise StoreError(f"{name!r}: a cluster image name takes a tag, not a digest",
                         hint="use NAME:TAG, e.g. my-cluster:v1.19.9")
    try:
        parse_reference(name)
    except InvalidReferenceError as error:
        raise StoreError(f"{name!r} is not a valid image name: {error.reason}",
                         hint="use lower-case NAME:TAG, e.g. my-cluster:v1.19.9") from error
    repository, _, tag = name.rpartition(":")
    if not repository or "/" in tag:
        repository, tag = name, DEFAULT_TAG
    if repository != repository.lower():
        raise StoreError(f"{name!r} is not a valid image name: it has upper-case letters",
                         hint="use lower-case NAME:TAG, e.g. my-cluster:v1.19.9")
    return f"{repository}:{tag}"
