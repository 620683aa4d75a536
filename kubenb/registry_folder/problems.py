"""What a registry serving a registry folder would trip on, one line per problem.

``RegistryFolder`` writes; this reads the folder back the way distribution would: every blob
where its digest says and hashing to it, every link holding the digest its path names and
pointing at a blob that is there, every tag pointing at a revision of its repository, every
manifest's config and layers present and linked, and no index saved with none of its images.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from kubenb.errors import StoreError
from kubenb.oci.digests import is_content_digest, split_digest
from kubenb.oci.manifests import Descriptor, parse_references
from kubenb.oci.selection import Selection

if TYPE_CHECKING:
    from kubenb.registry_folder.files import DiskFiles
    from kubenb.registry_folder.folder import RegistryFolder

__all__ = ["folder_problems", "image_problems", "manifest_blobs", "read_link"]


def folder_problems(folder: RegistryFolder, *, hash_blobs: bool = True) -> list[str]:
    """Every inconsistency of ``folder`` (see ``RegistryFolder.check``)."""
    problems = _check_blobs(folder) if hash_blobs else []
    for repository in folder.repositories():
        try:
            problems += _check_links(folder, repository) + _check_tags(folder, repository)
            problems += _check_indexes(folder, repository)
        except StoreError as error:
            problems.append(str(error))
    return problems


def image_problems(folder: RegistryFolder, repository: str, reference: str,
                   platforms: Collection[str] | None) -> list[str]:
    """Why one image is not whole in ``folder`` (see ``RegistryFolder.image_problems``)."""
    digest = reference if is_content_digest(reference) else folder.tag_digest(repository, reference)
    if digest is None:
        return [f"no tag {reference} in {repository}"]
    try:
        selection = folder.selection(repository, digest, platforms)
    except StoreError as error:
        return [str(error)]
    if selection is None:
        return [f"its manifest {digest} is missing"]
    problems = [f"its {child.platform or 'child'} manifest {child.digest} is missing"
                for child in selection.absent]
    problems += [f"{blob.media_type} {blob.digest} is {why}" for blob in manifest_blobs(selection)
                 if (why := folder.blob_problem(repository, blob))]
    if not problems and not selection.images:
        problems.append("it is an index with none of its images in the folder")
    return problems


def manifest_blobs(selection: Selection) -> list[Descriptor]:
    """Config and layers of every manifest in ``selection``."""
    return [blob for manifest in selection.manifests for blob in parse_references(manifest.data).blobs]


def read_link(path: Path, files: DiskFiles | None = None) -> str | None:
    """A link's exact content: the registry parses it as is, so a stray newline is a problem.
    ``files``: where the folder's files are (on disk when not given)."""
    try:
        data = files.read(path) if files is not None else path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return None
    return None if data is None else data.decode("ascii", errors="replace")


def _links(registry: RegistryFolder, folder: Path) -> Iterator[tuple[str, str | None]]:
    """(digest named by the path, content) of each ``<alg>/<hex>/link`` under ``folder``."""
    for link in registry.files.glob(folder, "*/*/link"):
        yield f"{link.parts[-3]}:{link.parts[-2]}", read_link(link, registry.files)


def _check_blobs(folder: RegistryFolder) -> list[str]:
    problems = []
    for data in folder.files.glob(folder.blobs_dir, "*/*/*/data"):
        digest, prefix = f"{data.parts[-4]}:{data.parts[-2]}", data.parts[-3]
        if not is_content_digest(digest) or prefix != data.parts[-2][:2]:
            problems.append(f"blob file {data} is not where its digest belongs")
        elif (actual := folder.files.digest(data, split_digest(digest)[0])) != digest:
            problems.append(f"blob {digest}: data hashes to {actual} ({data})")
    return problems


def _check_links(folder: RegistryFolder, repository: str) -> list[str]:
    problems = []
    for kind in ("_layers", "_manifests/revisions"):
        for named, held in _links(folder, folder.repository_dir(repository) / kind):
            if held != named or not is_content_digest(named):
                problems.append(f"{repository}: {kind} link {named} holds {held!r}")
            elif not folder.has_blob(named):
                problems.append(f"{repository}: {kind} link {named} points at a missing blob")
            elif kind != "_layers" and (references := folder.stored_references(named)) is not None:
                problems += [f"{repository}@{named} references {blob.media_type} {blob.digest}, {why}"
                             for blob in references.blobs if (why := folder.blob_problem(repository, blob))]
    return problems


def _check_tags(folder: RegistryFolder, repository: str) -> list[str]:
    problems = []
    for tag_dir in folder.files.glob(folder.repository_dir(repository) / "_manifests/tags", "*"):
        current = read_link(tag_dir / "current" / "link", folder.files)
        valid = current is not None and is_content_digest(current)
        revision = folder.link_path(repository, "_manifests/revisions", str(current)) if valid else None
        if revision is None or read_link(revision, folder.files) != current:
            problems.append(f"{repository}:{tag_dir.name} points at {current}, not a revision of {repository}")
    return problems


def _check_indexes(folder: RegistryFolder, repository: str) -> list[str]:
    """Each index revision with none of its images here (today's --platform cannot do that)."""
    tags: dict[str, list[str]] = {}
    for tag_dir in folder.files.glob(folder.repository_dir(repository) / "_manifests/tags", "*"):
        tags.setdefault(read_link(tag_dir / "current" / "link", folder.files) or "", []).append(tag_dir.name)
    problems = []
    for digest, _ in _links(folder, folder.repository_dir(repository) / "_manifests/revisions"):
        selection = folder.selection(repository, digest, None) if is_content_digest(digest) else None
        if selection is None or selection.images:  # an image manifest counts itself
            continue
        names = ", ".join(f"{repository}:{tag}" for tag in tags.get(digest, [])) or f"{repository}@{digest}"
        unlinked = [c.digest for c in selection.absent if folder.has_blob(c.digest)]
        problems.append(f"{names} is an index with none of its images in the folder ({len(selection.absent)} "
                        "manifest(s) missing): an image saved empty"
                        + (f"; {', '.join(unlinked)} present but not linked" if unlinked else ""))
    return problems
