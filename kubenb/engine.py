"""The engine: one call per user action, shared by the CLI, the magics and the widgets.

Front ends turn their options into these calls and render the events; everything a second
front end would otherwise have to repeat (reading an image list, normalising references,
choosing registries) happens here.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from kubenb.discover import context_images, discovery_options
from kubenb.discover.documents import read_input_file
from kubenb.discover.imagelist import read_image_list
from kubenb.errors import InvalidReferenceError, KubenbError, StoreError
from kubenb.events import CancelToken, EventSink, ignore
from kubenb.kubefile import BuildPlan, plan_build
from kubenb.model import FoundImage, ImageList, ImageRef, Location
from kubenb.oci.platforms import parse_platform
from kubenb.reference import parse_reference
from kubenb.registry import Registries
from kubenb.registry_folder import RegistryFolder, SaveResult
from kubenb.registry_folder import save_images as save_into_folder
from kubenb.store import ClusterImage, Store
from kubenb.store.space import translating_disk_full

__all__ = ["CheckResult", "check", "image_refs", "list_images", "list_plan_images", "pull_image", "push_image",
           "save_images", "with_base_images"]


def image_refs(images: Sequence[str] = (), list_file: str | Path | None = None) -> list[ImageRef]:
    """References from the command line and from an imageList file, normalised and deduplicated.

    An invalid one is an error naming where it was written: an offline delivery must not
    silently lack an image.
    """
    refs: list[ImageRef] = []
    if list_file is not None:
        for hit in read_image_list(read_input_file(Path(list_file), str(list_file)), str(list_file)):
            refs.append(_parse(hit.written, f"{hit.location.file}:{hit.location.line}"))
    refs += [_parse(image, "the command line") for image in images]
    if not refs:
        raise KubenbError("no images to save", hint="name images or give an image list with -f")
    return list(dict.fromkeys(refs))


def save_images(
    output: str | Path,
    images: Sequence[str] = (),
    *,
    list_file: str | Path | None = None,
    platforms: Collection[str] | None = None,
    skip_missing_platform: bool = False,
    mirrors: Mapping[str, str] | None = None,
    insecure: Collection[str] = (),
    ca_files: Sequence[str | Path] = (),
    events: EventSink = ignore,
    cancel: CancelToken | None = None,
) -> SaveResult:
    """Pull ``images`` (and those of ``list_file``) into the registry folder ``output``.

    An image lacking a requested platform is an error, unless ``skip_missing_platform``:
    then it is a warning event, and an image lacking them all is left out (``left_out``).
    Setting ``cancel`` stops it with ``Cancelled``; the folder keeps what was saved whole.
    """
    refs = image_refs(images, list_file)
    wanted = [parse_platform(p) for p in platforms] if platforms is not None else None
    with Registries(mirrors=mirrors, insecure=insecure, ca_files=ca_files, events=events,
                    cancel=cancel) as registries, translating_disk_full(Path(output), f"the images into {output}"):
        return save_into_folder(refs, Path(output), registries=registries, platforms=wanted,
                                skip_missing_platform=skip_missing_platform, events=events, cancel=cancel)


@dataclass(frozen=True)
class CheckResult:
    """What ``check`` looked at and every problem it found, one line each (empty: all sound)."""

    problems: tuple[str, ...]
    store_blobs: int
    store_images: int
    folder_blobs: int | None = None
    folder_repositories: int | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        text = f"store: {self.store_images} images, {self.store_blobs} blobs verified"
        if self.folder_blobs is not None:
            text += f"; registry folder: {self.folder_repositories} repositories, {self.folder_blobs} blobs verified"
        return text


def check(root: str | Path | None = None, registry_folder: str | Path | None = None) -> CheckResult:
    """Verify the store at ``root`` (every blob hashed, every image's blobs present, the index)
    and, if given, the registry folder (every blob hashed, every link, every manifest's blobs).

    Problems are returned, not raised: ``kubenb check`` lists them all.
    """
    if root is not None and not Path(root).exists():  # the default store may not exist yet; a named one must
        raise StoreError(f"no store at {root}: the folder does not exist", hint="give an existing store with --root")
    store = Store(Path(root) if root is not None else None)
    problems = [f"store {store.root}: {problem}" for problem in store.check()]
    result = CheckResult(problems=(), store_blobs=len(store.blobs.digests()),
                         store_images=len(_index_entries(store)))
    if registry_folder is None:
        return replace(result, problems=tuple(problems))
    folder = RegistryFolder(Path(registry_folder))
    if not (folder.root / "docker" / "registry" / "v2").is_dir():
        problems.append(f"registry folder {folder.root}: no docker/registry/v2 inside: not a registry folder")
        return replace(result, problems=tuple(problems), folder_blobs=0, folder_repositories=0)
    problems += [f"registry folder {folder.root}: {problem}" for problem in folder.check()]
    blobs = sum(1 for _ in (folder.root / "docker" / "registry" / "v2" / "blobs").glob("*/*/*/data"))
    return replace(result, problems=tuple(problems), folder_blobs=blobs,
                   folder_repositories=len(folder.repositories()))


def _index_entries(store: Store) -> list[str]:
    try:
        return [image.name for image in store.images()]
    except (KubenbError, KeyError, TypeError, ValueError):  # check() reports what is wrong
        return []


def push_image(
    name: str,
    destination: str | None = None,
    *,
    root: str | Path | None = None,
    mirrors: Mapping[str, str] | None = None,
    insecure: Collection[str] = (),
    ca_files: Sequence[str | Path] = (),
    events: EventSink = ignore,
    cancel: CancelToken | None = None,
) -> str:
    """Push the stored image ``name`` to ``destination`` (default: ``name``); return the manifest digest.

    A cluster image is an ordinary OCI image in a registry, so any registry (and any OCI
    client) takes it; its ID is unchanged because the stored manifest bytes are sent as they are.
    """
    ref = _parse(destination if destination is not None else name, "the push destination")
    if ref.digest is not None:
        raise InvalidReferenceError(f"{ref.written}: a push destination takes a tag, not a digest",
                                    hint="the registry computes the digest; use NAME:TAG")
    store = Store(Path(root) if root is not None else None)
    with Registries(mirrors=mirrors, insecure=insecure, ca_files=ca_files, events=events,
                    cancel=cancel) as registries:
        return store.push(name, registries.client_for(ref), ref.path, ref.tag or "latest", cancel=cancel)


def pull_image(
    reference: str,
    *,
    root: str | Path | None = None,
    name: str | None = None,
    platform: str | None = None,
    mirrors: Mapping[str, str] | None = None,
    insecure: Collection[str] = (),
    ca_files: Sequence[str | Path] = (),
    events: EventSink = ignore,
    cancel: CancelToken | None = None,
) -> ClusterImage:
    """Pull the cluster image ``reference`` into the store, named ``name`` (default: as written);
    from a multi-platform index, the child of ``platform`` (default: this host's)."""
    ref = _parse(reference, "the pull reference")
    store = Store(Path(root) if root is not None else None)
    with Registries(mirrors=mirrors, insecure=insecure, ca_files=ca_files, events=events,
                    cancel=cancel) as registries:
        return store.pull(ref, registries.client_for(ref), name=name, platform=platform, cancel=cancel)


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

    Discovery sees only what the Kubefile adds; a base cluster image from the store brings its
    own registry, whose images a build keeps (source ``base``). A base that is not in the
    store yet is a warning: a build would pull it.
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
    return with_base_images(found, base, list(image.carried_images))


def with_base_images(found: ImageList, base: str, images: Sequence[str]) -> ImageList:
    """``found`` plus ``images`` of the base image ``base``, merged by normalised reference."""
    locations: dict[ImageRef, list[Location]] = {f.image: list(f.locations) for f in found.images}
    for written in images:
        ref = parse_reference(written)
        locations.setdefault(ref, []).insert(0, Location("base", base, written=written))
    merged = tuple(FoundImage(ref, tuple(locs)) for ref, locs in sorted(locations.items(), key=lambda i: str(i[0])))
    return replace(found, images=merged)


def _parse(text: str, where: str) -> ImageRef:
    try:
        return parse_reference(text)
    except InvalidReferenceError as error:
        raise InvalidReferenceError(f"{where}: {error.message}", hint=error.hint) from None
