"""``kubenb check``: verify a store and, if named, a registry folder, listing every problem."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from kubenb.errors import KubenbError, StoreError
from kubenb.registry_folder import RegistryFolder
from kubenb.store import Store

__all__ = ["CheckResult", "check"]


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
