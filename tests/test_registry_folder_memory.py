"""A registry folder kept in memory over one on disk (``MemoryFiles``: a build's work folder,
issue 17 "write once").

The same writes go to a copy of a folder on disk and to the memory folder over the original:
the memory folder must hold exactly what the disk copy changed (files with their bytes, the
folders made and those that gained an entry, its temp folder included), read back and check
the same way, and leave the folder under it untouched. Images are made in memory
(tests/support/oci.py).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from kubenb.builders.layers import changes, snapshot
from kubenb.errors import StoreError
from kubenb.registry_folder import RegistryFolder
from kubenb.registry_folder.files import TEMP_DIR, MemoryFiles
from tests.support.oci import multi_arch_index, single_image
from tests.test_registry_folder import write_image, write_index


def both(tmp_path: Path) -> tuple[RegistryFolder, MemoryFiles, RegistryFolder]:
    """(the memory folder over ``base/registry``, its files, a disk folder on a copy of it):
    the base holds library/a:1 as a previous build's registry/ would."""
    base = tmp_path / "base" / "registry"
    write_image(RegistryFolder(base, durable=False), "library/a", single_image("a"), "1")
    shutil.copytree(tmp_path / "base", tmp_path / "disk", symlinks=True)
    files = MemoryFiles(base / TEMP_DIR, spill=tmp_path / "spill")
    return (RegistryFolder(base, durable=False, files=files), files,
            RegistryFolder(tmp_path / "disk" / "registry", durable=False))


def test_the_memory_folder_holds_what_the_same_writes_change_on_disk_and_writes_nothing(tmp_path: Path) -> None:
    memory, files, disk = both(tmp_path)
    before_base, before_disk = snapshot(tmp_path / "base"), snapshot(tmp_path / "disk")
    for folder in (memory, disk):
        write_image(folder, "library/a", single_image("a"), "1")  # already whole: no file changes
        write_image(folder, "library/a", single_image("a2"), "2")  # a new tag in a repository on disk
        write_index(folder, "team/b", multi_arch_index("b"), "1")  # a new repository
    assert snapshot(tmp_path / "base") == before_base, "the memory folder wrote on disk"
    changed, deleted = changes(before_disk, snapshot(tmp_path / "disk"))
    base = tmp_path / "base"

    def relative(paths: set[str]) -> set[str]:
        return {Path(path).relative_to(base).as_posix() for path in paths}

    assert deleted == []
    assert relative({*files.files, *files.folders, *files.touched}) == set(changed)
    assert f"registry/{TEMP_DIR}" in relative(files.touched)  # temp files came and went in it
    for path in map(Path, files.files):
        assert files.read(path) == (tmp_path / "disk" / path.relative_to(base)).read_bytes()
    assert memory.repositories() == disk.repositories() == ["library/a", "team/b"]
    assert memory.check() == [] and disk.check() == []
    for repository, tag in (("library/a", "1"), ("library/a", "2"), ("team/b", "1")):
        assert memory.tag_digest(repository, tag) == disk.tag_digest(repository, tag)
        assert memory.image_problems(repository, tag, None) == []


def test_the_memory_folder_refuses_what_the_disk_folder_refuses(tmp_path: Path) -> None:
    """A tag of the base on another digest, and a blob that does not hash to its name."""
    memory, files, _ = both(tmp_path)
    other = single_image("other")
    with pytest.raises(StoreError, match="refusing to replace"):
        write_image(memory, "library/a", other, "1")
    temp = memory.new_blob_file()
    temp.write_bytes(b"not what the digest says")
    with pytest.raises(StoreError, match="hashes to"):
        memory.commit_blob(temp, other.digest)
    assert not temp.exists() and memory.tag_digest("library/a", "1") == single_image("a").digest
    assert files.read(memory.blob_path(other.digest)) is None
