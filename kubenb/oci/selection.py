"""Which manifests of an image a platform request keeps, walking nested indexes.

One walk serves four readers: the saver (children come from the registry), a base image's
pull into the store (the first image manifest of the platform asked for), the folder's
completeness test and its checks (children come from the folder, and may be absent). It
answers what to keep (children before their index, so a registry never stores an index before
what it names), what the image offers, and which requested platforms it lacks: an image that
lacks a requested platform must be an error or a listed skip, never an empty image.

An index's child may itself be an index; it is followed like the top one, to ``MAX_INDEX_DEPTH``
levels. A child without a platform is kept under any request (as before), but offers nothing.
An image that offers no platform at all (an artifact such as a chart) is platform-independent:
it lacks nothing. A plain image manifest offers the platform its config declares, so
``--platform linux/s390x`` over an amd64-only image is a missing platform too: docker would pull
it anyway, but a delivery for s390x would then fail at deploy time with "exec format error".
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from kubenb.errors import StoreError
from kubenb.oci.manifests import MAX_INDEX_DEPTH, Descriptor, ManifestLike, References, parse_references
from kubenb.oci.platforms import platform_matches

__all__ = ["MAX_MANIFESTS", "Selection", "select"]

#: Real indexes name tens of children; a tree of thousands would only make a build crawl.
MAX_MANIFESTS = 1000

#: A child's manifest, or None when the reader does not have it (the folder; a registry raises).
ChildReader = Callable[[Descriptor], "ManifestLike | None"]
#: The platform a plain image manifest's config declares (None: none, or not an image config).
RootPlatform = Callable[[References], "str | None"]


@dataclass(frozen=True)
class Selection:
    """What a platform request keeps of one image."""

    manifests: tuple[ManifestLike, ...]  # children before the index naming them; the image's own last
    absent: tuple[Descriptor, ...]  # kept children the reader did not have
    offered: tuple[str, ...]  # every platform the image offers, sorted
    missing: tuple[str, ...]  # requested platforms it lacks
    found: tuple[str, ...]  # requested platforms it has
    images: int  # image manifests kept (not indexes)
    empty_indexes: tuple[str, ...]  # digests of indexes reached with no image manifest kept below them
    matched: tuple[ManifestLike, ...] = ()  # image manifests whose index entry names a platform asked for


@dataclass
class _Walk:
    platforms: Collection[str] | None
    read: ChildReader
    where: str
    kept: dict[str, ManifestLike] = field(default_factory=dict)
    absent: list[Descriptor] = field(default_factory=list)
    offered: set[str] = field(default_factory=set)
    found: set[str] = field(default_factory=set)
    empty: list[str] = field(default_factory=list)
    matched: list[ManifestLike] = field(default_factory=list)
    visited: int = 0

    def visit(self, manifest: ManifestLike, references: References, depth: int) -> int:
        """Keep ``manifest`` and what the request keeps below it; the image manifests kept."""
        self.visited += 1
        if self.visited > MAX_MANIFESTS:
            raise StoreError(f"{self.where} names more than {MAX_MANIFESTS} manifests",
                             hint="this is no ordinary image; check where it comes from")
        images = self.children(references, depth) if references.is_index else 1
        if references.is_index and images == 0:
            self.empty.append(manifest.digest)
        self.kept.setdefault(manifest.digest, manifest)
        return images

    def children(self, index: References, depth: int) -> int:
        if depth >= MAX_INDEX_DEPTH:
            raise StoreError(f"{self.where} nests indexes more than {MAX_INDEX_DEPTH} deep",
                             hint="this is no ordinary image; check where it comes from")
        images = 0
        for child in index.manifests:
            if child.platform is not None and "unknown" not in child.platform.split("/")[:2]:
                self.offered.add(child.platform)
            if not child.matches(self.platforms):
                continue
            manifest = self.read(child)
            if manifest is None:
                self.absent.append(child)
                continue
            references = parse_references(manifest.data, manifest.media_type)
            if not references.is_index and child.platform is not None:
                found = [p for p in self.platforms or () if platform_matches(child.platform, p)]
                self.found.update(found)
                self.matched += [manifest] if found else []
            images += self.visit(manifest, references, depth + 1)
        return images


def select(root: ManifestLike, platforms: Collection[str] | None, read: ChildReader, *,
           root_platform: RootPlatform, where: str) -> Selection:
    """Walk ``root`` (an index or an image manifest) keeping what ``platforms`` asks for (all:
    None); ``where`` names the image in errors. ``root_platform`` is asked only when
    platforms were requested and ``root`` is a plain image manifest."""
    walk = _Walk(platforms, read, where)
    references = parse_references(root.data, root.media_type)
    if platforms and not references.is_index and (platform := root_platform(references)) is not None:
        walk.offered.add(platform)
        walk.found.update(p for p in platforms if platform_matches(platform, p))
    images = walk.visit(root, references, 0)
    missing = tuple(p for p in platforms or () if p not in walk.found) if walk.offered else ()
    return Selection(tuple(walk.kept.values()), tuple(walk.absent), tuple(sorted(walk.offered)), missing,
                     tuple(p for p in platforms or () if p in walk.found), images, tuple(walk.empty),
                     tuple(walk.matched))

