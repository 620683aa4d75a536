"""The registry folder: a storage root in the CNCF distribution layout, written with no registry.

A stock ``registry`` must serve the folder as it is (docs/registry-folder.md), so this
writes exactly what distribution's storage reads (``registry/storage/paths.go``), under
``docker/registry/v2/``: ``blobs/<alg>/<hex[:2]>/<hex>/data`` for every blob, stored once;
per repository, ``_layers/<alg>/<hex>/link`` for its configs and layers,
``_manifests/revisions/<alg>/<hex>/link`` for its manifests and indexes, and
``_manifests/tags/<tag>/{current/link,index/<alg>/<hex>/link}``. The registry serves a
repository's blob or manifest only through that repository's link.

Every file appears whole by ``os.replace`` (or ``os.link``, which never overwrites) of a temp
file in ``.kubenb-tmp/`` beside ``docker/``: the same filesystem, so the rename is atomic, and a
place the registry never reads. So neither a crash nor a second process filling the folder
leaves a half-written file. A build's work folder keeps what it writes in memory instead
(``files.MemoryFiles``): its registry layer is all that is kept of it. No network here: the
client fetches, this keeps what hashes right.
Hashing, verified renames and the temp sweep are ``kubenb.oci.digests``'s, shared with the
store; the index walk is ``kubenb.oci.selection``'s.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

from kubenb.errors import StoreError, is_disk_full
from kubenb.oci.digests import (
    compute_digest,
    is_content_digest,
    remove_stale,
    split_digest,
)
from kubenb.oci.manifests import MAX_MANIFEST_BYTES, Descriptor, References, parse_references
from kubenb.oci.platforms import config_platform
from kubenb.oci.selection import Selection, select
from kubenb.reference import is_repository_path, is_tag
from kubenb.registry_folder import problems
from kubenb.registry_folder.files import TEMP_DIR, DiskFiles
from kubenb.registry_folder.problems import read_link

__all__ = ["RegistryFolder", "validate_repository"]

STALE_SECONDS = 24 * 3600.0  # a download refreshes its temp file's mtime as it writes


def _hash_bytes(data: bytes, digest: str) -> str:
    return compute_digest(data, split_digest(digest)[0])


def validate_repository(name: str) -> str:
    """``name`` if it can name a repository folder (``library/nginx``): no absolute path, no
    empty, ``..`` or ``_layers`` component, lower case: the reference grammar of paths."""
    if not is_repository_path(name):
        raise StoreError(f"{name!r} is not a repository name for a registry folder",
                         hint="use the image path without its domain, e.g. library/nginx")
    return name


class RegistryFolder:
    """Writes and checks one registry folder; threads and processes may share it.

    ``durable`` fsyncs each file before its rename, so a power cut leaves no empty blob under a
    valid name; turn it off for throwaway folders. ``elsewhere`` names blobs the folder serves
    whose bytes are kept outside it, each verified when it landed (digest: size): a build's
    work folder, whose blobs go straight into the registry layer it is making. ``files`` is
    where the folder's files are read and written: on disk (the default), or in memory over
    the folder on disk (``files.MemoryFiles``, made with ``root / TEMP_DIR``).
    """

    def __init__(self, root: Path, *, durable: bool = True, elsewhere: Mapping[str, int] | None = None,
                 files: DiskFiles | None = None) -> None:
        self.root = Path(root)
        self.durable = durable
        self.elsewhere: Mapping[str, int] = elsewhere if elsewhere is not None else {}
        self._v2 = self.root / "docker" / "registry" / "v2"
        self._temp = self.root / TEMP_DIR
        self.files = files if files is not None else DiskFiles(self._temp, durable=durable)

    def blob_path(self, digest: str) -> Path:
        algorithm, hex_ = split_digest(digest)
        return self._v2 / "blobs" / algorithm / hex_[:2] / hex_ / "data"

    def has_blob(self, digest: str) -> bool:
        return digest in self.elsewhere or self.files.size(self.blob_path(digest)) is not None

    def blob_bytes(self, digest: str) -> bytes:
        """The bytes of a (small) blob kept in the folder: a config, a manifest."""
        data = self.files.read(self.blob_path(digest))
        if data is None:
            raise StoreError(f"blob {digest} is not in {self.root}")
        return data

    def new_blob_file(self) -> Path:
        """An empty temp file in the folder for the client to stream a download into."""
        fd, path = self._mkstemp("blob-")
        os.close(fd)
        return path

    def commit_blob(self, temp: Path, digest: str, *, verified: bool = False) -> None:
        """Keep ``temp`` as blob ``digest`` only if it hashes to it (read in chunks); ``temp`` is
        gone afterwards either way. An identical blob already kept wins: no second rename.

        ``verified`` says the caller hashed the bytes as it wrote them (the registry client
        does, while streaming): reading the file again would only cost a second pass.
        """
        try:
            self.files.keep(temp, self.blob_path(digest), digest, verified=verified)
        except OSError as error:
            if is_disk_full(error):
                raise  # the caller names the disk and what it was writing
            raise StoreError(f"cannot store blob {digest} from {temp}: {error.strerror}") from error

    def put_blob_bytes(self, data: bytes, digest: str) -> None:
        """Keep small in-memory content (manifests, configs) as blob ``digest``."""
        self._verify(data, digest)
        if self.files.size(self.blob_path(digest)) != len(data):
            self._write(self.blob_path(digest), data)

    def link_layer(self, repository: str, digest: str) -> None:
        """Let ``repository`` serve blob ``digest``: a layer or config, committed first."""
        if not self.has_blob(digest):
            raise StoreError(f"cannot link {digest} into {repository}: the blob is not in {self.root}")
        self._write_link(self.link_path(repository, "_layers", digest), digest)

    def put_manifest(self, repository: str, data: bytes, digest: str, tag: str | None = None,
                     *, replace: bool = False) -> None:
        """Store a manifest or index as a revision of ``repository`` and point ``tag`` at it.

        Like a registry, this refuses a manifest whose config or layers are missing (and links
        them); an index's children are not required, since ``--platform`` may leave some out.
        A tag on another digest is refused unless ``replace``: two images landing on one name
        would otherwise silently lose one.
        """
        self._verify(data, digest)
        blobs = parse_references(data).blobs
        if tag is not None:
            self._refuse_conflict(repository, tag, digest, replace)
        if missing := [blob.digest for blob in blobs if not self.has_blob(blob.digest)]:
            raise StoreError(f"{repository}@{digest} names blobs not in the folder: {', '.join(missing)}",
                             hint="commit a manifest's config and layers before the manifest")
        for blob in blobs:
            self.link_layer(repository, blob.digest)
        self.put_blob_bytes(data, digest)
        self._write_link(self.link_path(repository, "_manifests/revisions", digest), digest)
        if tag is not None:
            self._point_tag(repository, tag, digest, replace)

    def tag_digest(self, repository: str, tag: str) -> str | None:
        """The digest ``tag`` points at now, None when there is no such tag."""
        link = self._tag_dir(repository, tag) / "current" / "link"
        content = read_link(link, self.files)
        if content is not None and not is_content_digest(content):
            raise StoreError(f"{link} holds {content[:80]!r}, not a digest")
        return content

    def is_complete(self, repository: str, digest: str, platforms: Collection[str] | None = None) -> bool:
        """Whether the image is all here and linked, so a build skips it without fetching.

        An index is complete when every child ``platforms`` keeps is (nested indexes too), it
        keeps at least one image, and no requested platform is lacking (so a rerun reports a
        lacking platform again instead of skipping in silence). Manifests are read and hashed
        (they are small); blobs are only stat'ed against their descriptor's size.
        """
        try:
            selection = self.selection(repository, digest, platforms)
        except StoreError:
            return False
        if selection is None or selection.absent or selection.missing or not selection.images:
            return False
        return not any(self.blob_problem(repository, blob) for blob in problems.manifest_blobs(selection))

    def selection(self, repository: str, digest: str, platforms: Collection[str] | None) -> Selection | None:
        """What ``platforms`` keeps of the stored image ``digest``; None when it is not stored.
        A child is present when ``repository`` links it as a revision and its bytes hash right."""
        root = self._stored(repository, digest)
        if root is None:
            return None
        return select(root, platforms, lambda child: self._stored(repository, child.digest),
                      root_platform=self._config_platform, where=f"{repository}@{digest}")

    def image_problems(self, repository: str, reference: str, platforms: Collection[str] | None) -> list[str]:
        """Why the image ``reference`` (a tag or a digest) is not whole here: its manifest, each
        manifest ``platforms`` keeps, and every blob they name. Empty when it is whole."""
        return problems.image_problems(self, repository, reference, platforms)

    def repositories(self) -> list[str]:
        """Names of the repositories in the folder, sorted."""
        top, found = self._v2 / "repositories", []
        for folder, subfolders in self.files.walk(top):
            if "_manifests" in subfolders or "_layers" in subfolders:
                found.append(folder.relative_to(top).as_posix())
            subfolders[:] = [name for name in subfolders if not name.startswith("_")]
        return sorted(found)

    def check(self, *, hash_blobs: bool = True) -> list[str]:
        """Every inconsistency a registry serving the folder would trip on, one line each.

        Hashes every blob unless ``hash_blobs`` is off (a build's own check: it hashed them as
        they arrived). Some absent children of an index are no problem (``--platform`` chose
        that), but an index with none of its images here is an image saved empty.
        """
        return problems.folder_problems(self, hash_blobs=hash_blobs)

    def clean_temp(self, max_age: float = STALE_SECONDS) -> int:
        """Delete temp files untouched for ``max_age`` seconds (younger ones may be another
        process's live download); return how many went."""
        return remove_stale(self._temp, max_age)

    @property
    def blobs_dir(self) -> Path:
        """``docker/registry/v2/blobs``: every blob of every repository, stored once."""
        return self._v2 / "blobs"

    def repository_dir(self, repository: str) -> Path:
        """The folder of ``repository`` (its ``_layers`` and ``_manifests``), name checked first."""
        return self._v2 / "repositories" / validate_repository(repository)

    def link_path(self, repository: str, kind: str, digest: str) -> Path:
        """The ``link`` file through which ``repository`` serves ``digest`` (``kind``: ``_layers``
        or ``_manifests/revisions``)."""
        algorithm, hex_ = split_digest(digest)
        return self.repository_dir(repository) / kind / algorithm / hex_ / "link"

    def blob_problem(self, repository: str, blob: Descriptor) -> str | None:
        """Why the registry could not serve ``blob`` from ``repository``, None when it can."""
        size = self.elsewhere.get(blob.digest)
        if size is None and (size := self.files.size(self.blob_path(blob.digest))) is None:
            return "a missing blob"
        if size != blob.size:
            return f"stored with {size} bytes, not {blob.size}"
        if read_link(self.link_path(repository, "_layers", blob.digest), self.files) != blob.digest:
            return f"not linked in {repository}"
        return None

    def stored_references(self, digest: str) -> References | None:
        """A stored manifest's references, None unless it is stored whole and parses."""
        try:
            data = self._manifest_bytes(digest)
            return parse_references(data) if data is not None else None
        except StoreError:
            return None

    def _tag_dir(self, repository: str, tag: str) -> Path:
        if not is_tag(tag):
            raise StoreError(f"{tag!r} is not a tag (letters, digits, _ . -; at most 128)")
        return self.repository_dir(repository) / "_manifests/tags" / tag

    def _refuse_conflict(self, repository: str, tag: str, digest: str, replace: bool) -> None:
        current = self.tag_digest(repository, tag)
        if current is not None and current != digest and not replace:
            raise StoreError(f"{repository}:{tag} already holds {current}; refusing to replace it with {digest}",
                             hint="two different images land on the same name: rename one of them")

    def _point_tag(self, repository: str, tag: str, digest: str, replace: bool) -> None:
        """Index entry, then ``current``: by ``os.link`` unless replacing, so that of two processes
        pointing one tag at two digests, one fails rather than both silently succeeding."""
        tag_dir = self._tag_dir(repository, tag)
        self._write_link(tag_dir / "index" / Path(*split_digest(digest)) / "link", digest)
        if not self._write(tag_dir / "current" / "link", digest.encode(), exclusive=not replace):
            self._refuse_conflict(repository, tag, digest, replace)

    def _verify(self, data: bytes, digest: str) -> None:
        if (actual := _hash_bytes(data, digest)) != digest:
            raise StoreError(f"content given as {digest} hashes to {actual}; nothing was stored")

    def _mkstemp(self, prefix: str) -> tuple[int, Path]:
        try:
            return self.files.new_temp(prefix)
        except OSError as error:
            if is_disk_full(error):
                raise  # the caller names the disk and what it was writing
            raise StoreError(f"cannot write in {self._temp}: {error.strerror}") from error

    def _write(self, path: Path, data: bytes, *, exclusive: bool = False) -> bool:
        """Write ``path`` whole via a temp file; with ``exclusive``, False if it already exists
        (``os.link`` never overwrites)."""
        try:
            return self.files.write(path, data, exclusive=exclusive)
        except OSError as error:
            if is_disk_full(error):
                raise  # the caller names the disk and what it was writing
            raise StoreError(f"cannot write {path}: {error.strerror}") from error

    def _write_link(self, path: Path, digest: str) -> None:
        """A link holds the bare digest, no newline; an identical one is left alone."""
        if read_link(path, self.files) != digest:
            self._write(path, digest.encode())

    def _manifest_bytes(self, digest: str) -> bytes | None:
        """A stored manifest's bytes, None unless present, small and hashing to ``digest``."""
        path = self.blob_path(digest)
        size = self.files.size(path)
        if size is None:
            return None
        data = (self.files.read(path) or b"") if size <= MAX_MANIFEST_BYTES else b""
        return data if _hash_bytes(data, digest) == digest else None

    def _stored(self, repository: str, digest: str) -> _Stored | None:
        """The manifest ``digest`` as ``repository`` serves it: linked, present and hashing right."""
        if read_link(self.link_path(repository, "_manifests/revisions", digest), self.files) != digest:
            return None
        data = self._manifest_bytes(digest)
        return _Stored(data, "", digest) if data is not None else None

    def _config_platform(self, references: References) -> str | None:
        config = references.config  # a config kept elsewhere is not read: none is (see save.py)
        if config is None or config.size > MAX_MANIFEST_BYTES:
            return None
        data = self.files.read(self.blob_path(config.digest))
        return None if data is None else config_platform(data, config.media_type)


@dataclass(frozen=True)
class _Stored:
    """A manifest read back from the folder (its media type comes from its own bytes)."""

    data: bytes
    media_type: str
    digest: str

