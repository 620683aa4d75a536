"""Odd inputs at the edges: each fails with one clear line, exit status 1, and the store as it was.

Each case here was a traceback, a hang or a false "OK" before (issue 12, item 4). They run the
real ``python -m kubenb``; full disks are real tmpfs mounts of 2 MB made by the test.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.faulty import Fault, FaultyProxy, Respond
from tests.support.oci import make_image, make_layer, push, single_image
from tests.support.registry import Registry
from tests.test_hostile import assert_nothing_written, assert_one_clear_line, kubenb

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def build(context: Path, root: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return kubenb("--root", str(root), "build", "-t", "odd:1", *extra, str(context))


@pytest.fixture
def context(tmp_path: Path) -> Path:
    folder = tmp_path / "context"
    (folder / "manifests").mkdir(parents=True)
    return folder


# -- RUN -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("kubefile", "fragments"), [
    ('FROM scratch\nRUN ["/nonexistent/bin"]\n', ("Kubefile:2", "'/nonexistent/bin' is not a program")),
    ('FROM scratch\nRUN ["no-such-program-kubenb"]\n', ("Kubefile:2", "is not a program")),
    ('FROM scratch\nRUN ["sh", "-c", "echo a\\u0000b"]\n', ("Kubefile:2", "NUL character")),
    ("FROM scratch\nRUN echo a\0b\n", ("Kubefile:2", "NUL character")),
    ("FROM scratch\nENV A=a\0b\nRUN true\n", ("Kubefile:2", "NUL character")),
    ("FROM scratch\nARG BIG=" + "x" * 200_000 + "\nRUN true\n", ("Kubefile:3", "an ARG/ENV value is too long")),
], ids=["absent-path", "absent-program", "nul-json", "nul-run", "nul-env", "value-over-128k"])
def test_a_run_that_cannot_start_is_one_line(context: Path, tmp_path: Path, kubefile: str,
                                             fragments: tuple[str, ...]) -> None:
    (context / "Kubefile").write_text(kubefile)
    assert_one_clear_line(build(context, tmp_path / "store"), *fragments)
    assert_nothing_written(tmp_path / "store")


# -- symlink loops -------------------------------------------------------------------------------


@pytest.mark.parametrize("folder", ["manifests", "charts"])
def test_a_symlink_loop_is_one_line(context: Path, tmp_path: Path, folder: str) -> None:
    (context / folder).mkdir(exist_ok=True)
    (context / folder / "a").symlink_to("b")
    (context / folder / "b").symlink_to("a")
    (context / "Kubefile").write_text(f"FROM scratch\nCOPY {folder} {folder}\n")
    assert_one_clear_line(build(context, tmp_path / "store"), "symlink loop")
    assert_nothing_written(tmp_path / "store")
    (context / "Kubefile").unlink()
    assert_one_clear_line(kubenb("list-images", str(context)), "symlink loop")


def test_a_symlink_loop_a_run_made_is_one_line(context: Path, tmp_path: Path) -> None:
    (context / "Kubefile").write_text("FROM scratch\nRUN ln -s loop manifests/loop\n")
    assert_one_clear_line(build(context, tmp_path / "store"), "manifests/loop", "symlink loop")
    assert_nothing_written(tmp_path / "store")


# -- FIFOs, sockets and devices -------------------------------------------------------------------


def _fifo(path: Path) -> None:
    os.mkfifo(path)


def _socket(path: Path) -> None:
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))


def _device(path: Path) -> None:
    os.mknod(path, 0o666 | 0o020000, os.makedev(1, 5))  # a character device: /dev/zero's numbers


SPECIALS: dict[str, tuple[Callable[[Path], None], str]] = {
    "fifo": (_fifo, "a FIFO"), "socket": (_socket, "a socket"), "device": (_device, "a character device"),
}


@pytest.mark.parametrize("kind", sorted(SPECIALS))
def test_a_special_file_as_the_kubefile_is_refused_without_blocking(context: Path, tmp_path: Path,
                                                                    kind: str) -> None:
    make, words = SPECIALS[kind]
    special = tmp_path / "Kubefile.special"
    make(special)
    result = kubenb("--root", str(tmp_path / "store"), "build", "-t", "odd:1", "-f", str(special), str(context))
    assert_one_clear_line(result, f"the Kubefile is {words}, not a regular file")
    assert_one_clear_line(kubenb("parse", "-f", str(special)), words)
    assert_nothing_written(tmp_path / "store")


def test_dev_zero_as_the_kubefile_is_refused(tmp_path: Path) -> None:
    assert_one_clear_line(kubenb("parse", "-f", "/dev/zero"), "/dev/zero", "a character device")
    result = kubenb("--root", str(tmp_path / "store"), "build", "-t", "odd:1", "-f", "/dev/zero", str(tmp_path))
    assert_one_clear_line(result, "a character device")
    assert_nothing_written(tmp_path / "store")


@pytest.mark.parametrize("kind", sorted(SPECIALS))
def test_a_special_file_as_a_copy_source_is_refused(context: Path, tmp_path: Path, kind: str) -> None:
    make, words = SPECIALS[kind]
    make(context / "special.yaml")
    (context / "Kubefile").write_text("FROM scratch\nCOPY special.yaml manifests\n")
    assert_one_clear_line(build(context, tmp_path / "store"), "Kubefile:2", f"is {words}, not a regular file")
    assert_nothing_written(tmp_path / "store")


@pytest.mark.parametrize("kind", sorted(SPECIALS))
def test_a_special_file_as_a_manifest_is_refused(context: Path, tmp_path: Path, kind: str) -> None:
    make, words = SPECIALS[kind]
    make(context / "manifests" / "special.yaml")
    (context / "Kubefile").write_text("FROM scratch\nCOPY manifests manifests\n")
    assert_one_clear_line(build(context, tmp_path / "store"), "special.yaml", f"is {words}")
    assert_nothing_written(tmp_path / "store")
    (context / "Kubefile").unlink()
    assert_one_clear_line(kubenb("list-images", str(context)), "special.yaml", words)


def test_a_fifo_a_run_made_under_manifests_is_refused(context: Path, tmp_path: Path) -> None:
    (context / "Kubefile").write_text("FROM scratch\nRUN mkfifo manifests/pipe.yaml\n")
    result = build(context, tmp_path / "store")
    assert_one_clear_line(result, "manifests/pipe.yaml")
    assert_nothing_written(tmp_path / "store")


# -- the store root and check ------------------------------------------------------------------------


def test_a_root_that_is_a_file_is_one_line(tmp_path: Path, context: Path) -> None:
    root = tmp_path / "a-file"
    root.write_text("not a store\n")
    (context / "Kubefile").write_text("FROM scratch\n")
    for args in (["images"], ["check"], ["build", "-t", "odd:1", str(context)], ["rmi", "x:1"]):
        assert_one_clear_line(kubenb("--root", str(root), *args), f"the store {root} is a file, not a folder")
    assert root.read_text() == "not a store\n"


def test_check_of_a_missing_store_fails(tmp_path: Path) -> None:
    missing = tmp_path / "nonexistent"
    assert_one_clear_line(kubenb("check", "--root", str(missing)), f"no store at {missing}")
    assert not missing.exists()


def test_login_to_an_empty_registry_name_is_one_line() -> None:
    assert_one_clear_line(kubenb("login", "", "-u", "user", "-p", "secret"), "the registry name is empty")


# -- a registry manifest nested 100k deep ------------------------------------------------------------


@pytest.fixture
def deep_registry(registry: Registry, repo_name: str) -> Iterator[tuple[FaultyProxy, str]]:
    push(registry, repo_name, "1.0", single_image("deep"))
    with FaultyProxy(registry.url) as proxy:
        yield proxy, f"{proxy.host}/{repo_name}:1.0"


@pytest.mark.parametrize("body", [b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 100_000 + b"1" + b"}" * 100_000],
                         ids=["lists", "objects"])
def test_a_manifest_nested_100k_deep_is_one_line(deep_registry: tuple[FaultyProxy, str], context: Path,
                                                 tmp_path: Path, body: bytes) -> None:
    proxy, image = deep_registry
    proxy.add(Fault("/manifests/", Respond(200, {"Content-Type": OCI_MANIFEST}, body), times=100))
    (context / "imageList").write_text(f"{image}\n")
    (context / "Kubefile").write_text("FROM scratch\nCOPY imageList manifests\n")
    result = build(context, tmp_path / "store")
    assert_one_clear_line(result, "nested too deeply")
    assert_nothing_written(tmp_path / "store")
    pulled = kubenb("--root", str(tmp_path / "store"), "pull", image)
    assert_one_clear_line(pulled, "nested too deeply")
    assert_nothing_written(tmp_path / "store")


# -- a full disk ---------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 2 MB tmpfs, mounted for the test and unmounted after it."""
    folder = tmp_path / "small"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(folder)], capture_output=True,
                             text=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN): {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def assert_no_space(result: subprocess.CompletedProcess[str], small_disk: Path, what: str) -> None:
    assert_one_clear_line(result, f"no space left on tmpfs (mounted at {small_disk}) while writing {what}",
                          "MB there")
    assert "may be damaged" not in result.stderr and "not a readable OCI archive" not in result.stderr


def random_file(path: Path, size: int) -> None:
    path.write_bytes(os.urandom(size))


@pytest.mark.parametrize(("size", "what"), [
    (1_200_000, "the layer of line 2 (COPY) into the store"),  # the copy fits; its layer does not
    (3_000_000, "the layer of line 2 (COPY)"),  # the copy itself does not fit
], ids=["layer", "copy"])
def test_a_full_disk_during_a_build_says_so(context: Path, small_disk: Path, size: int, what: str) -> None:
    random_file(context / "big.bin", size)
    (context / "Kubefile").write_text("FROM scratch\nCOPY big.bin etc/\n")
    root = small_disk / "store"
    assert_no_space(build(context, root), small_disk, what)
    assert_nothing_written(root)
    assert not list((root / "tmp").iterdir())


def test_a_full_disk_while_caching_images_says_so(context: Path, small_disk: Path, registry: Registry,
                                                 repo_name: str) -> None:
    """The registry layer is where a real delivery fills a disk: several GB of images."""
    image = make_image([make_layer({"big.bin": os.urandom(3_000_000)})])
    push(registry, f"{repo_name}/big", "1", image)
    (context / "imageList").write_text(f"{registry.host}/{repo_name}/big:1\n")
    (context / "Kubefile").write_text("FROM scratch\nCOPY imageList manifests\n")
    root = small_disk / "store"
    assert_no_space(build(context, root), small_disk, "the images into registry/")
    assert_nothing_written(root)
    assert not list((root / "tmp").iterdir())
    shutil.rmtree(root)
    output = small_disk / "out"
    assert_no_space(kubenb("save-images", "-o", str(output), f"{registry.host}/{repo_name}/big:1"), small_disk,
                    f"the images into {output}")
    assert not [path for path in output.rglob("*") if path.name.endswith(".tmp")]  # no partial blob kept


def test_a_full_disk_during_export_save_and_load_says_so(context: Path, tmp_path: Path, small_disk: Path) -> None:
    random_file(context / "big.bin", 3_000_000)
    (context / "Kubefile").write_text("FROM scratch\nCOPY big.bin etc/\n")
    big = tmp_path / "store"
    assert build(context, big).returncode == 0
    exported = small_disk / "out"
    assert_no_space(kubenb("--root", str(big), "export", "odd:1", "-o", str(exported)), small_disk,
                    f"the rootfs of odd:1 into {exported}")
    assert not exported.exists()
    archive = small_disk / "odd.tar"
    assert_no_space(kubenb("--root", str(big), "save", "odd:1", "-o", str(archive)), small_disk, str(archive))
    assert not list(small_disk.iterdir())
    assert kubenb("--root", str(big), "save", "odd:1", "-o", str(tmp_path / "odd.tar")).returncode == 0
    root = small_disk / "store"
    assert_no_space(kubenb("--root", str(root), "load", "-i", str(tmp_path / "odd.tar")), small_disk,
                    f"the images of {tmp_path / 'odd.tar'} into the store")
    assert_nothing_written(root)
    assert not list((root / "tmp").iterdir())
    assert kubenb("--root", str(big), "check").returncode == 0


def test_an_error_body_nested_deep_is_still_one_line(deep_registry: tuple[FaultyProxy, str], context: Path,
                                                     tmp_path: Path) -> None:
    """A 404 whose small JSON body is 30k lists deep: the error code reader must not crash."""
    proxy, image = deep_registry
    body = b"[" * 30_000 + b"]" * 30_000
    proxy.add(Fault("/manifests/", Respond(404, {"Content-Type": "application/json"}, body), times=100))
    (context / "imageList").write_text(f"{image}\n")
    (context / "Kubefile").write_text("FROM scratch\nCOPY imageList manifests\n")
    assert_one_clear_line(build(context, tmp_path / "store"), image)
    assert_nothing_written(tmp_path / "store")
