"""Platforms never make an image silently empty (issue 12, item 3), with real parts.

Images are pushed to the real docker-registry; kubenb runs as a subprocess, as a user runs it;
what lands in a registry folder is served by a read-only docker-registry and read by skopeo.
A requested platform that an image lacks is one clear error (or, with --skip-missing-platform,
a warning naming the image), nested indexes are followed, and a build checks its registry
layer, so a registry folder never holds an index without its images.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from kubenb.engine import save_images
from kubenb.errors import StoreError
from kubenb.model import ImageRef
from kubenb.reference import parse_reference
from kubenb.registry_folder import RegistryFolder, saved_problems
from kubenb.store import Store
from tests.support.oci import (
    INDEX,
    Image,
    Index,
    fetch_manifest,
    multi_arch_index,
    nested_index,
    push,
    sha256_digest,
    single_image,
)
from tests.support.registry import Registry, RegistryFactory
from tests.support.skopeo import Skopeo

LACKS = "has no linux/s390x image (it offers linux/amd64, linux/arm64)"


def kubenb(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kubenb", *args], capture_output=True, text=True, timeout=300,
                          check=False, cwd=cwd, env={**os.environ, "KUBENB_ROOT": "/nonexistent-root-unused"})


def assert_one_clear_line(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("kubenb: ") and "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in lines[-1], (fragment, lines[-1])


def assert_store_unchanged(root: Path) -> None:
    assert Store(root).images() == []
    checked = kubenb("--root", str(root), "check")
    assert checked.returncode == 0, checked.stderr


def blob_names(folder: Path) -> set[str]:
    return {f"sha256:{p.parent.name}" for p in (folder / "docker/registry/v2/blobs").glob("*/*/*/data")}


def digests(*images: Image) -> set[str]:
    """Every blob of ``images``: configs and layers."""
    return {blob.digest for image in images for blob in image.blobs}


def two_level(seed: str) -> Index:
    """An index whose only child is another index (amd64 + arm64): what some tools push."""
    return nested_index([multi_arch_index(seed)])


def cluster_context(tmp_path: Path, kubefile: str, images: str) -> Path:
    context = tmp_path / "context"
    context.mkdir(exist_ok=True)
    (context / "Kubefile").write_text(kubefile)
    (context / "imageList").write_text(images)
    return context


# -- save-images -----------------------------------------------------------------------------------


def test_save_images_of_a_platform_the_index_lacks_is_one_clear_error(
        registry: Registry, repo_name: str, tmp_path: Path) -> None:
    push(registry, f"{repo_name}/multi", "1", multi_arch_index(repo_name))
    image = f"{registry.host}/{repo_name}/multi:1"
    output = tmp_path / "out"
    result = kubenb("save-images", "-o", str(output), "--platform", "linux/s390x", image)
    assert_one_clear_line(result, f"kubenb: {image} {LACKS}; save without --platform, pick one it offers, "
                                  "or pass --skip-missing-platform")
    assert not blob_names(output)  # refused before a layer was fetched


def test_skip_missing_platform_lists_each_image_and_saves_the_rest(
        registry: Registry, registry_factory: RegistryFactory, skopeo: Skopeo, repo_name: str,
        tmp_path: Path) -> None:
    index, amd64_only = multi_arch_index(repo_name), single_image(repo_name)  # plain manifest, amd64 config
    push(registry, f"{repo_name}/multi", "1", index)
    push(registry, f"{repo_name}/single", "1", amd64_only)
    multi, single = f"{registry.host}/{repo_name}/multi:1", f"{registry.host}/{repo_name}/single:1"
    output = tmp_path / "out"
    refused = kubenb("save-images", "-o", str(output), "--platform", "linux/arm64", multi, single)
    assert_one_clear_line(refused, f"{single} has no linux/arm64 image (it offers linux/amd64)")

    result = kubenb("save-images", "-o", str(output), "--platform", "linux/arm64", "--skip-missing-platform",
                    multi, single)
    assert result.returncode == 0, result.stderr
    assert (f"warning: {single} has no linux/arm64 image (it offers linux/amd64): left out "
            "(--skip-missing-platform)") in result.stderr, repr(result.stderr)
    assert "saved 1 images" in result.stdout and "1 left out" in result.stdout
    arm64 = index.images[1]
    assert blob_names(output) >= digests(arm64)
    assert not blob_names(output) & {layer.digest for layer in amd64_only.layers}  # only its config was read
    (tmp_path / "root").mkdir()  # check wants a named store to exist
    assert kubenb("check", "--root", str(tmp_path / "root"), "--registry-folder", str(output)).returncode == 0
    served = registry_factory(root=output, read_only=True)
    skopeo.copy(f"docker://{served.host}/{repo_name}/multi:1", f"dir:{tmp_path / 'copy'}", "--override-arch",
                "arm64", "--src-tls-verify=false")
    assert sha256_digest((tmp_path / "copy" / "manifest.json").read_bytes()) == arm64.digest


def test_a_second_run_reports_the_lacking_platform_again(registry: Registry, repo_name: str, tmp_path: Path) -> None:
    """A folder whose index lacks the platform is no complete image: the rerun does not skip it silently."""
    push(registry, f"{repo_name}/multi", "1", multi_arch_index(repo_name))
    image = f"{registry.host}/{repo_name}/multi:1"
    save_images(tmp_path / "out", [image], platforms=["linux/amd64"])
    with pytest.raises(StoreError, match="has no linux/s390x image"):
        save_images(tmp_path / "out", [image], platforms=["linux/amd64", "linux/s390x"])
    again = save_images(tmp_path / "out", [image], platforms=["linux/amd64", "linux/s390x"],
                        skip_missing_platform=True)
    assert again.images[0].missing_platforms == ("linux/s390x",) and not again.images[0].left_out


@pytest.mark.parametrize("platforms", [None, ["linux/arm64"]])
def test_a_nested_index_is_followed_and_served_whole(
        registry: Registry, registry_factory: RegistryFactory, skopeo: Skopeo, repo_name: str, tmp_path: Path,
        platforms: list[str] | None) -> None:
    index = two_level(repo_name)
    digest = push(registry, f"{repo_name}/nested", "1", index)
    output = tmp_path / "out"
    result = save_images(output, [f"{registry.host}/{repo_name}/nested:1"], platforms=platforms)
    wanted = index.images if platforms is None else index.images[1:]
    assert result.images[0].digest == digest
    assert result.fetched_bytes == sum(blob.size for image in wanted for blob in image.blobs)
    assert blob_names(output) >= digests(*wanted)
    assert RegistryFolder(output).check() == []
    served = registry_factory(root=output, read_only=True)
    for image in wanted:
        skopeo.copy(f"docker://{served.host}/{repo_name}/nested@{image.digest}", f"dir:{tmp_path / image.digest}",
                    "--src-tls-verify=false")
        assert json.loads((tmp_path / image.digest / "manifest.json").read_bytes())["layers"]
    assert sha256_digest(skopeo.inspect_raw(served, f"{repo_name}/nested", "1")) == digest
    if platforms is None:  # this skopeo copies no nested index with --all; the inner one it does
        inner = index.nested[0].digest
        skopeo.copy(f"docker://{served.host}/{repo_name}/nested@{inner}", f"oci:{tmp_path / 'all'}", "--all",
                    "--src-tls-verify=false")
    with pytest.raises(StoreError, match=LACKS.replace("(", r"\(").replace(")", r"\)")):
        save_images(tmp_path / "other", [f"{registry.host}/{repo_name}/nested:1"], platforms=["linux/s390x"])


# -- build -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["--platform", "FROM --platform"])
def test_a_build_for_a_platform_an_image_lacks_fails_and_names_it(
        registry: Registry, repo_name: str, tmp_path: Path, how: str) -> None:
    push(registry, f"{repo_name}/multi", "1", multi_arch_index(repo_name))
    image = f"{registry.host}/{repo_name}/multi:1"
    from_line = "FROM --platform=linux/s390x scratch" if how == "FROM --platform" else "FROM scratch"
    context = cluster_context(tmp_path, f"{from_line}\nCOPY imageList manifests\n", f"{image}\n")
    root = tmp_path / "root"
    option = ["--platform", "linux/s390x"] if how == "--platform" else []
    result = kubenb("--root", str(root), "build", "-t", "c:1", *option, str(context))
    assert_one_clear_line(result, f"kubenb: {image} {LACKS}; build without --platform, pick one it offers, "
                                  "or pass --skip-missing-platform")
    assert_store_unchanged(root)


def test_a_build_with_skip_missing_platform_warns_and_carries_the_rest(
        registry: Registry, repo_name: str, tmp_path: Path) -> None:
    push(registry, f"{repo_name}/multi", "1", multi_arch_index(repo_name))
    push(registry, f"{repo_name}/nested", "1", two_level(repo_name + "-n"))
    push(registry, f"{repo_name}/s390x", "1", single_image(repo_name, architecture="s390x"))
    multi, nested, s390x = (f"{registry.host}/{repo_name}/{name}:1" for name in ("multi", "nested", "s390x"))
    context = cluster_context(tmp_path, "FROM scratch\nCOPY imageList manifests\n", f"{multi}\n{nested}\n{s390x}\n")
    root = tmp_path / "root"
    built = kubenb("--root", str(root), "build", "-t", "c:1", "--platform", "linux/s390x",
                   "--skip-missing-platform", str(context))
    assert built.returncode == 0, built.stderr
    for image in (multi, nested):
        assert f"warning: {image} {LACKS}: left out (--skip-missing-platform)" in built.stderr
    inspected = json.loads(kubenb("--root", str(root), "inspect", "c:1").stdout)
    assert list(json.loads(inspected["manifest"]["annotations"]["io.kubenb.images"])) == [s390x]
    exported = tmp_path / "rootfs"
    assert kubenb("--root", str(root), "export", "c:1", "-o", str(exported)).returncode == 0
    checked = kubenb("--root", str(root), "check", "--registry-folder", str(exported / "registry"))
    assert checked.returncode == 0, checked.stderr
    rebuilt = kubenb("--root", str(root), "build", "-t", "c:2", "--platform", "linux/s390x",
                     "--skip-missing-platform", str(context))  # the registry layer comes from the build cache
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert f"warning: {multi} lacks every requested platform: left out" in rebuilt.stderr


def test_a_build_of_a_nested_index_carries_its_images(registry: Registry, repo_name: str, tmp_path: Path) -> None:
    index = two_level(repo_name)
    push(registry, f"{repo_name}/nested", "1", index)
    image = f"{registry.host}/{repo_name}/nested:1"
    context = cluster_context(tmp_path, "FROM --platform=linux/arm64 scratch\nCOPY imageList manifests\n",
                              f"{image}\n")
    root = tmp_path / "root"
    built = kubenb("--root", str(root), "build", "-t", "c:1", str(context))
    assert built.returncode == 0, built.stderr
    exported = tmp_path / "rootfs"
    assert kubenb("--root", str(root), "export", "c:1", "-o", str(exported)).returncode == 0
    assert blob_names(exported / "registry") >= digests(index.images[1])
    assert not blob_names(exported / "registry") & digests(index.images[0])


def empty_image_folder(root: Path, repository: str, index: Index) -> None:
    """What kubenb save-images --platform linux/s390x wrote before: the index, none of its images."""
    RegistryFolder(root, durable=False).put_manifest(repository, index.manifest, index.digest, "1")


def test_the_post_build_check_fails_a_registry_layer_holding_an_empty_image(repo_name: str, tmp_path: Path) -> None:
    """A registry folder copied in (or carried by a base image) made by an older kubenb: the
    build's own check of its registry layer refuses it, and nothing is named in the store."""
    index = multi_arch_index(repo_name)
    context = cluster_context(tmp_path, "FROM scratch\nCOPY docker registry\n", "")
    empty_image_folder(tmp_path / "saved", f"{repo_name}/old", index)
    (tmp_path / "saved" / "docker").rename(context / "docker")
    root = tmp_path / "root"
    result = kubenb("--root", str(root), "build", "-t", "c:1", str(context))
    assert_one_clear_line(result, "the registry layer is not whole:",
                          f"{repo_name}/old:1 is an index with none of its images in the folder (2 manifest(s) "
                          "missing)")
    assert_store_unchanged(root)


def test_saved_problems_name_the_image_and_the_missing_blob(tmp_path: Path) -> None:
    index = multi_arch_index("post-build")
    folder = RegistryFolder(tmp_path / "registry", durable=False)
    for image in index.images:
        for blob in image.blobs:
            folder.put_blob_bytes(blob.data, blob.digest)
        folder.put_manifest("library/multi", image.manifest, image.digest)
    folder.put_manifest("library/multi", index.manifest, index.digest, "1")
    ref: ImageRef = parse_reference("example.com/library/multi:1")
    assert saved_problems(folder.root, [ref], None) == []
    layer = index.images[1].layers[0]
    folder.blob_path(layer.digest).unlink()
    problems = saved_problems(folder.root, [ref], None)
    assert problems[0] == f"{ref}: {layer.media_type} {layer.digest} is a missing blob"
    assert f"library/multi: _layers link {layer.digest} points at a missing blob" in problems  # the folder's check


# -- kubenb check ----------------------------------------------------------------------------------


def test_check_reports_an_index_without_any_of_its_images(tmp_path: Path) -> None:
    folder = tmp_path / "registry"
    empty_image_folder(folder, "library/empty", multi_arch_index("empty"))
    (tmp_path / "root").mkdir()
    result = kubenb("check", "--root", str(tmp_path / "root"), "--registry-folder", str(folder))
    assert result.returncode == 1
    assert ("library/empty:1 is an index with none of its images in the folder (2 manifest(s) missing): "
            "an image saved empty") in result.stderr
    assert "1 problem(s) found" in result.stderr


def test_check_reports_a_nested_index_without_its_images(tmp_path: Path) -> None:
    index = two_level("nested-check")
    inner = index.nested[0]
    folder = RegistryFolder(tmp_path / "registry", durable=False)
    folder.put_manifest("library/nested", inner.manifest, inner.digest)
    folder.put_manifest("library/nested", index.manifest, index.digest, "1")
    problems = folder.check()
    assert f"library/nested@{inner.digest} is an index with none of its images in the folder (2 manifest(s) " \
           "missing): an image saved empty" in problems
    assert "library/nested:1 is an index with none of its images in the folder (2 manifest(s) missing): an image " \
           "saved empty" in problems
    assert not folder.is_complete("library/nested", index.digest)


def test_from_platform_follows_a_nested_index_of_cluster_images(tmp_path: Path, registry: Registry) -> None:
    """A base cluster image published as an index inside an index: FROM --platform finds its child."""
    first = str(tmp_path / "first")
    children = []
    for arch in ("amd64", "arm64"):
        context = tmp_path / arch
        context.mkdir()
        (context / "Kubefile").write_text(f"FROM --platform=linux/{arch} scratch\nCOPY arch etc/\n")
        (context / "arch").write_text(arch)
        assert kubenb("--root", first, "build", "-t", f"base:{arch}", str(context)).returncode == 0
        pushed = kubenb("--root", first, "push", f"base:{arch}", f"{registry.host}/clusters/nested:{arch}")
        assert pushed.returncode == 0, pushed.stderr
        data, media_type = fetch_manifest(registry, "clusters/nested", arch)
        children.append({"mediaType": media_type, "digest": sha256_digest(data), "size": len(data),
                         "platform": {"os": "linux", "architecture": arch}})
    inner = json.dumps({"schemaVersion": 2, "mediaType": INDEX, "manifests": children}).encode()
    outer = json.dumps({"schemaVersion": 2, "mediaType": INDEX, "manifests": [
        {"mediaType": INDEX, "digest": sha256_digest(inner), "size": len(inner)}]}).encode()
    for reference, data in ((sha256_digest(inner), inner), ("1", outer)):
        put = requests.put(f"{registry.url}/v2/clusters/nested/manifests/{reference}", data=data,
                           headers={"Content-Type": INDEX}, timeout=30)
        assert put.status_code == 201, put.text
    base = f"{registry.host}/clusters/nested:1"
    (tmp_path / "derived").mkdir()
    (tmp_path / "derived" / "Kubefile").write_text(f"FROM --platform=linux/arm64 {base}\n")
    second = str(tmp_path / "second")
    built = kubenb("--root", second, "build", "-t", "derived:1", str(tmp_path / "derived"))
    assert built.returncode == 0, built.stderr
    assert kubenb("--root", second, "export", "derived:1", "-o", str(tmp_path / "rootfs")).returncode == 0
    assert (tmp_path / "rootfs" / "etc" / "arch").read_text() == "arm64"
    missing = kubenb("--root", second, "pull", "--platform", "linux/s390x", base)
    assert_one_clear_line(missing, f"{base} has no linux/s390x image (it offers linux/amd64, linux/arm64)")


def test_the_kubefile_magic_takes_skip_missing_platform(registry: Registry, repo_name: str, tmp_path: Path) -> None:
    """The magics share the CLI's options: the same error in a cell, the same way on."""
    push(registry, f"{repo_name}/multi", "1", multi_arch_index(repo_name))
    image = f"{registry.host}/{repo_name}/multi:1"
    context = cluster_context(tmp_path, "", f"{image}\n")
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "kubenb")
    shell.run_line_magic("config", "KubenbMagics.full_traceback = False")
    cell = f"%%kubefile --context {context} --root {tmp_path / 'root'} -t c:1 --build --progress text " \
           "--platform linux/s390x{}\nFROM scratch\nCOPY imageList manifests\n"
    refused = shell.run_cell(cell.format(""))
    assert isinstance(refused.error_in_exec, UsageError) and f"{image} {LACKS}" in str(refused.error_in_exec)
    built = shell.run_cell(cell.format(" --skip-missing-platform"))
    assert built.error_in_exec is None and json.loads(built.result.annotations["io.kubenb.images"]) == {}
