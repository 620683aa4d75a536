"""Hostile input at the command line: each case fails with one clear line and writes nothing.

These run the real `python -m kubenb` and then assert that nothing was half-written: no image
named, `kubenb check` clean, no build folder or partial output left. The same defences are
tested at unit level too (cited in docs/reliability.md): tests/test_store.py
(`test_load_refuses_hostile_archives`, `test_export_refuses_members_escaping_the_rootfs`),
tests/test_documents.py (alias and merge-key bombs, deep nesting, huge lines, binary files),
tests/test_discovery.py, tests/test_kubefile.py and tests/test_registry_client.py (schema 1,
4 MiB manifests).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubenb.store import Store
from tests.support.cputime import cpu_clock
from tests.support.faulty import Fault, FaultyProxy, Respond
from tests.support.oci import push, single_image, tar_member
from tests.support.registry import Registry

BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + n)}: &{chr(98 + n)} [{', '.join([f'*{chr(97 + n)}'] * 10)}]\n" for n in range(8))
SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+prettyjws"


def kubenb(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kubenb", *args], capture_output=True, text=True,
                          timeout=120, check=False, cwd=cwd)


def assert_one_clear_line(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("kubenb: "), result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[-1], (fragment, lines[-1])


def assert_nothing_written(root: Path) -> None:
    if not root.exists():
        return  # not even the store folder was made
    assert Store(root).images() == []
    checked = kubenb("--root", str(root), "check")
    assert checked.returncode == 0, checked.stderr
    assert not list((root / "tmp").glob("build-*")) if (root / "tmp").exists() else True


@pytest.fixture
def context(tmp_path: Path) -> Path:
    folder = tmp_path / "context"
    (folder / "manifests").mkdir(parents=True)
    return folder


def build(context: Path, root: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return kubenb("--root", str(root), "build", "-t", "hostile:1", *extra, str(context))


# -- COPY escaping the context -----------------------------------------------------------------


@pytest.mark.parametrize(("source", "fragment"), [
    ("../secret.txt", "outside the build context"),
    ("/etc/passwd", "outside the build context"),
    ("link-out", "outside the build context"),
    ("sub/../../secret.txt", "outside the build context"),
], ids=["dotdot", "absolute", "symlink-out", "dotdot-nested"])
def test_copy_escaping_the_context_fails_and_names_the_line(context: Path, tmp_path: Path, source: str,
                                                            fragment: str) -> None:
    (tmp_path / "secret.txt").write_text("top secret\n")
    (context / "sub").mkdir()
    (context / "link-out").symlink_to(tmp_path / "secret.txt")
    (context / "Kubefile").write_text(f"FROM scratch\nLABEL a=b\nCOPY {source} manifests\n")
    result = build(context, tmp_path / "store")
    assert_one_clear_line(result, "Kubefile:3", fragment)
    assert "top secret" not in result.stderr + result.stdout
    assert_nothing_written(tmp_path / "store")


# -- hostile archives for kubenb load ------------------------------------------------------------


@pytest.fixture(scope="module")
def saved_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    top = tmp_path_factory.mktemp("archive")
    (top / "Kubefile").write_text("FROM scratch\nRUN echo hi > etc/hello\n")
    assert kubenb("--root", str(top / "store"), "build", "-t", "good:1", str(top)).returncode == 0
    assert kubenb("--root", str(top / "store"), "save", "-o", str(top / "good.tar"), "good:1").returncode == 0
    return top / "good.tar"


@pytest.mark.parametrize("member", [
    tar_member("../evil"),
    tar_member("/tmp/kubenb-hostile-evil"),
    tar_member("blobs/sha256/" + "a" * 64, tarfile.SYMTYPE, "/etc/passwd"),
    tar_member("blobs/sha256/" + "b" * 64, tarfile.LNKTYPE, "../../../etc/passwd"),
    tar_member("blobs/sha256/" + "c" * 64, tarfile.SYMTYPE, "../../../outside"),
], ids=["dotdot", "absolute", "symlink-absolute", "hardlink-out", "symlink-out"])
def test_load_of_a_hostile_archive_fails_and_adds_nothing(saved_archive: Path, tmp_path: Path,
                                                          member: tarfile.TarInfo) -> None:
    archive = tmp_path / "hostile.tar"
    archive.write_bytes(saved_archive.read_bytes())
    with tarfile.open(archive, "a") as tar:
        member.size = 4 if member.isfile() else 0
        tar.addfile(member, io.BytesIO(b"evil") if member.isfile() else None)
    root = tmp_path / "store"
    result = kubenb("--root", str(root), "load", "-i", str(archive))
    assert_one_clear_line(result, "refusing archive")
    assert_nothing_written(root)
    assert not (tmp_path / "evil").exists() and not Path("/tmp/kubenb-hostile-evil").exists()
    blobs = root / "blobs" / "sha256"
    assert not blobs.exists() or not any(blobs.iterdir())


def test_load_of_garbage_fails_and_adds_nothing(tmp_path: Path) -> None:
    archive = tmp_path / "garbage.tar"
    archive.write_bytes(os.urandom(10_000))
    result = kubenb("--root", str(tmp_path / "store"), "load", "-i", str(archive))
    assert_one_clear_line(result)
    assert_nothing_written(tmp_path / "store")


# -- hostile manifests -------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "data", "fragment"), [
    ("bomb.yaml", BOMB.encode(), "too many YAML aliases"),
    ("huge.yaml", b"a: " + b"x" * 5_000_000 + b"\n", "line is longer than"),
    ("binary.yaml", b"kind: Pod\n\x00\x01\x02\x03" + os.urandom(2000), "binary file"),
    ("latin1.yaml", b"kind: Pod\nmetadata: {name: caf\xe9}\n", "not valid UTF-8"),
], ids=["alias-bomb", "huge-line", "binary", "not-utf8"])
def test_a_hostile_manifest_fails_the_build_quickly_naming_the_file(context: Path, tmp_path: Path, name: str,
                                                                     data: bytes, fragment: str) -> None:
    (context / "manifests" / name).write_bytes(data)
    (context / "Kubefile").write_text("FROM scratch\nCOPY manifests .\n")
    spent = cpu_clock()
    result = build(context, tmp_path / "store")
    assert spent() < 30
    assert_one_clear_line(result, name, fragment)
    assert_nothing_written(tmp_path / "store")
    listed = kubenb("list-images", str(context))
    assert_one_clear_line(listed, name, fragment)


def test_an_invalid_reference_stops_the_build_naming_file_and_line(context: Path, tmp_path: Path) -> None:
    (context / "imageList").write_text("# images\nbusybox:1.36\nNot A/Valid:Ref!!\n")
    (context / "Kubefile").write_text("FROM scratch\nCOPY imageList manifests\n")
    result = build(context, tmp_path / "store")
    assert_one_clear_line(result, "invalid image reference", "'Not A/Valid:Ref!!'", "imageList:3", "--skip-invalid")
    assert_nothing_written(tmp_path / "store")


def test_invalid_references_on_the_command_line_write_no_folder(tmp_path: Path) -> None:
    output = tmp_path / "out"
    result = kubenb("save-images", "-o", str(output), "nginx:1.25", "UPPER/Case:1")
    assert_one_clear_line(result, "UPPER/Case:1")
    assert not output.exists()


# -- Kubefile size -----------------------------------------------------------------------------


def test_a_one_megabyte_kubefile_parses(tmp_path: Path) -> None:
    lines = ["FROM scratch"] + [f"LABEL label{n}={'v' * 80}" for n in range(11_000)]
    kubefile = tmp_path / "Kubefile"
    kubefile.write_text("\n".join(lines) + "\n")
    assert kubefile.stat().st_size > 1_000_000
    spent = cpu_clock()
    result = kubenb("parse", "-f", str(kubefile), "-o", "json")
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)) == len(lines)
    assert spent() < 30


def test_a_kubefile_over_the_limit_is_refused(tmp_path: Path) -> None:
    kubefile = tmp_path / "Kubefile"
    kubefile.write_text("FROM scratch\n" + "# padding\n" * 500_000)
    result = kubenb("parse", "-f", str(kubefile))
    assert_one_clear_line(result, "larger than 4 MiB")
    result = build(tmp_path, tmp_path / "store")
    assert_one_clear_line(result, "larger than 4 MiB")
    assert_nothing_written(tmp_path / "store")


# -- hostile registries ------------------------------------------------------------------------


@pytest.fixture
def hostile_registry(registry: Registry, repo_name: str) -> Iterator[tuple[FaultyProxy, str]]:
    push(registry, repo_name, "1.0", single_image("hostile"))
    with FaultyProxy(registry.url) as proxy:
        yield proxy, f"{proxy.host}/{repo_name}:1.0"


SCHEMA1_BODY = json.dumps({"schemaVersion": 1, "name": "x", "tag": "1.0", "architecture": "amd64",
                           "fsLayers": [], "history": [], "signatures": []}).encode()


@pytest.mark.parametrize(("answer", "fragment"), [
    (Respond(200, {"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
             b'{"schemaVersion": 2, "layers": [], "pad": "' + b"x" * (4 * 1024 * 1024) + b'"}'),
     "larger than 4 MiB"),
    (Respond(200, {"Content-Type": SCHEMA1}, SCHEMA1_BODY), "schema 1"),
], ids=["manifest-over-4MiB", "schema-1"])
def test_a_hostile_registry_answer_fails_the_build_naming_the_image(
    hostile_registry: tuple[FaultyProxy, str], context: Path, tmp_path: Path, answer: Respond, fragment: str,
) -> None:
    proxy, image = hostile_registry
    proxy.add(Fault("/manifests/", answer, times=100))
    (context / "imageList").write_text(f"{image}\n")
    (context / "Kubefile").write_text("FROM scratch\nCOPY imageList manifests\n")
    result = build(context, tmp_path / "store")
    assert_one_clear_line(result, image, fragment)
    assert len(proxy.requests_to("/manifests/")) == 1, "a refusal is final: not retried"
    assert_nothing_written(tmp_path / "store")


# -- COPY never writes outside the rootfs (two bugs found here: fixed in discover/rootfs.py, build/lite.py)


def test_copy_of_a_folder_to_the_rootfs_itself_stays_in_the_rootfs(context: Path, tmp_path: Path) -> None:
    """`COPY manifests .` once resolved to "/<file>", and the build wrote to the host's root folder."""
    marker = f"kubenb-hostile-{os.getpid()}.yaml"
    (context / "manifests" / marker).write_text("kind: Pod\nspec:\n  containers:\n  - image: nginx:1.25\n")
    (context / "Kubefile").write_text("FROM scratch\nCOPY manifests .\nCOPY manifests/ /\n")
    listed = kubenb("list-images", "-o", "json", str(context))
    assert listed.returncode == 0, listed.stderr
    assert [image["image"] for image in json.loads(listed.stdout)["images"]] == ["docker.io/library/nginx:1.25"]
    assert not Path("/", marker).exists()


def test_a_symlink_out_of_the_rootfs_is_never_written_through(context: Path, tmp_path: Path) -> None:
    """The link resolves inside the rootfs (chroot semantics), and COPY replaces it, never follows it."""
    victim = tmp_path / "victim.txt"
    victim.write_text("untouched\n")
    (context / "data.txt").write_text("payload\n")
    (context / "Kubefile").write_text(f"FROM scratch\nRUN ln -s {victim} etc/data.txt\nCOPY data.txt etc/data.txt\n")
    root = tmp_path / "store"
    result = build(context, root)
    assert result.returncode == 0, result.stderr
    assert victim.read_text() == "untouched\n"
    assert kubenb("--root", str(root), "export", "hostile:1", "-o", str(tmp_path / "out")).returncode == 0
    assert (tmp_path / "out" / "etc" / "data.txt").read_text() == "payload\n"
    assert not (tmp_path / "out" / "etc" / "data.txt").is_symlink()
