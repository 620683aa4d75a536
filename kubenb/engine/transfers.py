"""Moving images over the network: into a registry folder, and cluster images to and from registries.

Each call opens one ``Registries`` (one client per host, mirrors, insecure hosts and CA files
applied) for its whole duration, so every image and thread of the call shares connections
and tokens.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

from kubenb.discover.documents import read_input_file
from kubenb.discover.imagelist import read_image_list
from kubenb.errors import InvalidReferenceError, KubenbError
from kubenb.events import CancelToken, EventSink, ignore
from kubenb.model import ClusterImage, ImageRef
from kubenb.oci.platforms import parse_platform
from kubenb.reference import parse_reference
from kubenb.registry import Registries
from kubenb.registry_folder import SaveResult
from kubenb.registry_folder import save_images as save_into_folder
from kubenb.store import Store
from kubenb.store.space import translating_disk_full

__all__ = ["image_refs", "pull_image", "push_image", "save_images"]


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


def _parse(text: str, where: str) -> ImageRef:
    try:
        return parse_reference(text)
    except InvalidReferenceError as error:
        raise InvalidReferenceError(f"{where}: {error.message}", hint=error.hint) from None
