"""How the local store names images and digests; its records live in ``model``.

``ClusterImage`` and ``Layer`` are defined in ``kubenb.model`` (the front ends show them and
import only the engine and the model) and re-exported here, where the store makes them.
"""

from __future__ import annotations

from kubenb.errors import InvalidReferenceError, StoreError
from kubenb.model import IMAGES_ANNOTATION, ClusterImage, Layer
from kubenb.reference import DEFAULT_TAG, parse_reference

__all__ = ["IMAGES_ANNOTATION", "ClusterImage", "Layer", "normalize_name"]


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
