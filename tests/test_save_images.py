"""save-images, login and logout end to end with real parts: docker-registry, skopeo, the CLI."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from kubenb.engine import save_images
from kubenb.errors import Cancelled, StoreError
from kubenb.events import Event, ImageDone
from kubenb.registry_folder import RegistryFolder
from tests.support.cancelling import cancelled_when
from tests.support.faulty import Fault, FaultyProxy, Hold
from tests.support.oci import Image, Index, images_sharing_base, multi_arch_index, push, single_image


def kubenb_cli(*args: str, env: dict[str, str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kubenb", *args], input=stdin, capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=300, check=False)


@pytest.fixture
def auth_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "docker" / "config.json"
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(path))
    return path


def unique_blob_bytes(*images: Image | Index) -> int:
    blobs = {}
    for item in images:
        for image in item.images if isinstance(item, Index) else (item,):
            blobs.update({blob.digest: blob.size for blob in image.blobs})
    return sum(blobs.values())


def seed(registry, repo_name: str) -> dict[str, tuple[str, Image | Index]]:  # type: ignore[no-untyped-def]
    """Push a single image, a multi-arch index and three images sharing a base; name -> (digest, image)."""
    pushed: dict[str, tuple[str, Image | Index]] = {}
    items: list[tuple[str, Image | Index]] = [("single:1", single_image(repo_name)),
                                             ("multi:1", multi_arch_index(repo_name))]
    items += [(f"shared{n}:1", image) for n, image in enumerate(images_sharing_base(3, seed=repo_name))]
    for name, item in items:
        repository, tag = name.split(":")
        digest = push(registry, f"{repo_name}/{repository}", tag, item)
        pushed[f"{registry.host}/{repo_name}/{name}"] = (digest, item)
    return pushed


def test_login_then_save_images_serves_every_image_with_its_digest(
    auth_registry, registry_factory, skopeo, repo_name, auth_file, tmp_path
) -> None:
    pushed = seed(auth_registry, repo_name)
    env = {"REGISTRY_AUTH_FILE": str(auth_file)}
    login = kubenb_cli("login", auth_registry.host, "-u", auth_registry.username, "--password-stdin",
                       env=env, stdin=auth_registry.password + "\n")
    assert login.returncode == 0, login.stderr
    assert auth_file.stat().st_mode & 0o777 == 0o600
    output = tmp_path / "registry"
    saved = kubenb_cli("save-images", "-o", str(output), *pushed, env=env)
    assert saved.returncode == 0, saved.stderr
    assert f"saved {len(pushed)} images" in saved.stdout
    assert f"[1/{len(pushed)}]" in saved.stderr and " fetched)" in saved.stderr  # plain progress lines off a TTY
    for text in (login.stdout, login.stderr, saved.stdout, saved.stderr, auth_file.read_text()):
        assert auth_registry.password not in text
    served = registry_factory(root=output, read_only=True)
    for reference, (digest, _) in pushed.items():
        repository, tag = reference.split("/", 1)[1].rsplit(":", 1)
        raw = skopeo.inspect_raw(served, repository, tag)
        assert "sha256:" + hashlib.sha256(raw).hexdigest() == digest
    multi = next(r for r in pushed if "/multi:" in r).split("/", 1)[1]
    skopeo.copy(f"docker://{served.host}/{multi}", f"dir:{tmp_path / 'copy'}", "--all", "--src-tls-verify=false")
    assert (tmp_path / "copy" / "manifest.json").exists()


def test_wrong_password_fails_clearly_and_writes_nothing(auth_registry, auth_file) -> None:
    result = kubenb_cli("login", auth_registry.host, "-u", auth_registry.username, "--password-stdin",
                        env={"REGISTRY_AUTH_FILE": str(auth_file)}, stdin="not-the-password\n")
    assert result.returncode == 1
    assert len(result.stderr.splitlines()) == 1
    assert auth_registry.host in result.stderr
    assert "not-the-password" not in result.stderr + result.stdout
    assert not auth_file.exists()


def test_pull_without_credentials_names_the_registry_and_how_to_log_in(
    auth_registry, repo_name, auth_file, tmp_path
) -> None:
    reference = next(iter(seed(auth_registry, repo_name)))
    with pytest.raises(StoreError) as caught:
        save_images(tmp_path / "out", [reference])
    assert auth_registry.host in str(caught.value)
    assert "kubenb login" in str(caught.value)
    assert not list((tmp_path / "out").rglob("data"))


def test_blobs_are_fetched_once_and_a_second_run_fetches_nothing(registry, repo_name, tmp_path) -> None:
    pushed = seed(registry, repo_name)
    output = tmp_path / "registry"
    first = save_images(output, list(pushed))
    assert first.fetched_bytes == unique_blob_bytes(*(item for _, item in pushed.values()))
    assert {saved.digest for saved in first.images} == {digest for digest, _ in pushed.values()}
    second = save_images(output, list(pushed))
    assert second.fetched_bytes == 0
    assert all(saved.skipped for saved in second.images)


def test_cancelling_a_save_raises_cancelled_leaves_a_sound_folder_and_a_rerun_completes(
        registry, repo_name, tmp_path) -> None:
    """One layer is held by the proxy for as long as the test may take (every try of it), so
    only the cancel, cutting the held request, can end the save."""
    pushed = seed(registry, repo_name)
    held = next(item for name, (_, item) in pushed.items() if "/single:" in name)
    assert isinstance(held, Image)
    output = tmp_path / "registry"
    hold = Hold()
    with FaultyProxy(registry.url) as proxy:
        proxy.add(Fault(re.escape(f"/blobs/{held.layers[-1].digest}"), hold, times=10_000))
        names = [name.replace(registry.host, proxy.host) for name in pushed]
        saved_one = threading.Event()  # an image saved whole before the cancel: the rerun skips it

        def sink(event: Event) -> None:
            if isinstance(event, ImageDone):
                saved_one.set()

        outcome = cancelled_when([hold.held, saved_one],
                                 lambda cancel: save_images(output, names, events=sink, cancel=cancel))
        hold.release.set()
    assert type(outcome) is Cancelled, outcome  # itself, never inside "N of M images could not be saved"
    assert not list((output / ".kubenb-tmp").glob("*")), "a partial blob was left behind"
    (tmp_path / "store").mkdir()
    checked = kubenb_cli("--root", str(tmp_path / "store"), "check", "--registry-folder", str(output), env={})
    assert checked.returncode == 0, checked.stderr
    assert not (RegistryFolder(output).blob_path(held.layers[-1].digest)).exists()
    rerun = save_images(output, list(pushed))
    assert {saved.digest for saved in rerun.images} == {digest for digest, _ in pushed.values()}
    assert any(saved.skipped for saved in rerun.images)
    assert 0 < rerun.fetched_bytes < unique_blob_bytes(*(item for _, item in pushed.values()))
    checked = kubenb_cli("--root", str(tmp_path / "store"), "check", "--registry-folder", str(output), env={})
    assert checked.returncode == 0, checked.stderr


def test_platform_limits_the_children_pulled(registry, registry_factory, skopeo, repo_name, tmp_path) -> None:
    index = multi_arch_index(repo_name)
    digest = push(registry, f"{repo_name}/multi", "1", index)
    output = tmp_path / "registry"
    result = save_images(output, [f"{registry.host}/{repo_name}/multi:1"], platforms=["linux/arm64"])
    arm64 = next(image for image in index.images if image.architecture == "arm64")
    assert result.fetched_bytes == unique_blob_bytes(arm64)
    served = registry_factory(root=output, read_only=True)
    raw = skopeo.inspect_raw(served, f"{repo_name}/multi", "1")
    assert [m["platform"]["architecture"] for m in json.loads(raw)["manifests"]] == ["amd64", "arm64"]
    assert digest == result.images[0].digest


def test_two_images_on_one_name_are_an_error_naming_both(registry, tmp_path) -> None:
    with pytest.raises(StoreError) as caught:
        save_images(tmp_path / "out", ["quay.io/library/nginx:1", "nginx:1"])
    assert "quay.io/library/nginx:1" in str(caught.value) and "docker.io/library/nginx:1" in str(caught.value)


def test_image_list_file_and_invalid_entries(registry, repo_name, tmp_path) -> None:
    reference = next(iter(seed(registry, repo_name)))
    good = tmp_path / "imageList"
    good.write_text(f"# images\n{reference}  # the one\n")
    assert len(save_images(tmp_path / "out", list_file=good).images) == 1
    bad = tmp_path / "badList"
    bad.write_text(f"{reference}\nfoo/-bar\n")
    result = kubenb_cli("save-images", "-o", str(tmp_path / "out2"), "-f", str(bad), env={})
    assert result.returncode == 1
    assert f"{bad}:2" in result.stderr and "foo/-bar" in result.stderr
    assert not (tmp_path / "out2").exists()


def test_logout_forgets_the_credentials(auth_registry, auth_file) -> None:
    env = {"REGISTRY_AUTH_FILE": str(auth_file)}
    kubenb_cli("login", auth_registry.host, "-u", auth_registry.username, "--password-stdin", env=env,
               stdin=auth_registry.password + "\n")
    assert auth_registry.host in json.loads(auth_file.read_text())["auths"]
    assert kubenb_cli("logout", auth_registry.host, env=env).returncode == 0
    assert auth_registry.host not in json.loads(auth_file.read_text()).get("auths", {})
    again = kubenb_cli("logout", auth_registry.host, env=env)
    assert again.returncode == 1 and "no credentials saved" in again.stderr


def test_registry_mirror_pulls_from_another_registry_under_the_original_name(
    registry, registry_factory, skopeo, tmp_path
) -> None:
    image = single_image("mirror-test")
    digest = push(registry, "library/mirrored", "1.0", image)
    output = tmp_path / "registry"
    result = kubenb_cli("save-images", "-o", str(output), "mirrored:1.0",
                        "--registry-mirror", f"docker.io={registry.host}", env={})
    assert result.returncode == 0, result.stderr
    served = registry_factory(root=output, read_only=True)
    raw = skopeo.inspect_raw(served, "library/mirrored", "1.0")
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == digest
