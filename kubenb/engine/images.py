"""The image list of a preview or build: discovery plus the images a base cluster image carries.

Discovery sees only what the Kubefile adds; a base cluster image from the store brings its own
registry folder, whose images a build keeps (source ``base``). Merging the two is the engine's
job because only the engine may read both the context (discovery) and the store.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from kubenb.discover import context_images, discovery_options
from kubenb.errors import StoreError
from kubenb.kubefile import BuildPlan, plan_build
from kubenb.model import FoundImage, ImageList, ImageRef, Location
from kubenb.reference import parse_reference
from kubenb.store import Store

__all__ = ["list_images", "list_plan_images", "with_base_images"]


def list_images(
    context: str | Path = ".",
    *,
    kubefile: str | Path | None = None,
    root: str | Path | None = None,
    build_args: Mapping[str, str] | None = None,
    **options: Any,
) -> ImageList:
    """The image list of a lite build of ``context`` (see ``list_plan_images``), its Kubefile
    read once; ``options`` are those of ``discover.discovery_options``."""
    return list_plan_images(plan_build(context, kubefile, build_args), root=root, **options)


def list_plan_images(plan: BuildPlan, *, root: str | Path | None = None, **options: Any) -> ImageList:
    """The image list of a lite build of ``plan``, including the images the FROM base image carries.

    A base that is not in the store yet is a warning: a build would pull it.
    """
    found = context_images(plan, discovery_options(**options))
    base = plan.base
    if base is None:
        return found
    try:
        image = Store(Path(root) if root else None).get(base)
    except StoreError:
        return replace(found, warnings=(*found.warnings, f"the base image {base} is not in the store: the "
                                        "images it carries are not listed (a build pulls it)"))
    return with_base_images(found, base, list(image.carried_images), cluster=image.cluster_images)


def with_base_images(found: ImageList, base: str, images: Sequence[str],
                     cluster: Mapping[str, Sequence[str]] | None = None) -> ImageList:
    """``found`` plus ``images`` of the base image ``base``, merged by normalised reference. An
    image the base's container or cloud build saw only in its cluster (``cluster``: reference ->
    pods) is also found with source ``cluster``, in each pod that ran it."""
    locations: dict[ImageRef, list[Location]] = {f.image: list(f.locations) for f in found.images}
    for written in images:
        ref = parse_reference(written)
        pods = [Location("cluster", pod, object=f"Pod/{pod.partition('/')[2] or pod}", written=written)
                for pod in (cluster or {}).get(written, ())]
        locations.setdefault(ref, [])[:0] = [Location("base", base, written=written), *pods]
    merged = tuple(FoundImage(ref, tuple(locs)) for ref, locs in sorted(locations.items(), key=lambda i: str(i[0])))
    return replace(found, images=merged)
