"""Records of the local store: a cluster image, one of its layers, and how images are named.

A cluster image is an ordinary single-platform OCI image, so these records only name the
parts of it the rest of kubenb needs (id, digests, labels, annotations) without making
anybody parse OCI JSON. They live here rather than in ``model`` because only the store makes
them and everything that uses them already depends on the store.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from kubenb.errors import InvalidReferenceError, StoreError
from kubenb.reference import DEFAULT_TAG, parse_reference

__all__ = ["IMAGES_ANNOTATION", "ClusterImage", "Layer", "normalize_name"]

#: The manifest annotation listing the images a cluster image carries: JSON ``{reference: digest}``.
IMAGES_ANNOTATION = "io.kubenb.images"



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

    @property
    def carried_images(self) -> dict[str, str]:
        """The images the cluster image carries (reference -> digest), read from its manifest's
        annotation here only. An image from elsewhere may hold anything there: what is not a
        JSON object of strings counts as nothing carried."""
        try:
            carried = json.loads(self.annotations.get(IMAGES_ANNOTATION, "{}"))
        except (ValueError, RecursionError):
            return {}
        if not isinstance(carried, dict):
            return {}
        return {str(ref): str(digest) for ref, digest in carried.items()}

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
