"""Reliability: `kubenb check`, and builds through a registry that fails in every way it can.

The registry is the real `docker-registry`; `FaultyProxy` (tests/support/faulty.py) stands in
front of it and, with `Chaos`, faults a seeded random share of the requests with 5xx, 429,
connection resets, truncated bodies, slow trickles, wrong Content-Lengths, flipped bytes and
HTML pages. The build must still produce a cluster image whose registry folder holds every
image, each with the source registry's digest, and `kubenb check` must find it sound.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubenb.builders import BuildOptions, build
from kubenb.demo import DemoRegistry
from kubenb.errors import Cancelled, KubenbError
from kubenb.events import Event, Retrying
from kubenb.registry import transport
from kubenb.registry_folder import RegistryFolder
from kubenb.store import Store
from tests.support.cancelling import cancelled_when
from tests.support.faulty import Chaos, Corrupt, Fault, FaultyProxy, Hold
from tests.support.oci import Image, make_image, make_layer, push, single_image
from tests.support.registry import Registry

FAULT_RATE = 0.15
IMAGE_COUNT = 20


def kubenb(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kubenb", *args], capture_output=True, text=True,
                          timeout=120, check=False)


@pytest.fixture
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Backoff of tens of milliseconds instead of seconds: the retries are the same, only shorter.

    Production keeps its delays (transport.BACKOFF_BASE); the test process only shortens them.
    """
    monkeypatch.setattr(transport, "BACKOFF_BASE", 0.02)


def context_with(tmp_path: Path, image_list: str) -> Path:
    context = tmp_path / "context"
    context.mkdir()
    (context / "Kubefile").write_text("FROM scratch\nCOPY imageList manifests\n")
    (context / "imageList").write_text(image_list)
    return context


# -- kubenb check ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def built_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store holding c:1 (two images cached) and that image's exported rootfs; copied per test."""
    top = tmp_path_factory.mktemp("check-template")
    context = context_with(top, "busybox:1.36\nalpine:3.20\n")
    with DemoRegistry(["busybox:1.36", "alpine:3.20"]) as source:
        build(BuildOptions(tag="c:1", context=context, kubefile=context / "Kubefile", mirrors=source.mirrors()),
              store=Store(top / "store"))
    Store(top / "store").export("c:1", top / "export")
    return top


@pytest.fixture
def built(built_template: Path, tmp_path: Path) -> Path:
    for name in ("store", "export"):
        shutil.copytree(built_template / name, tmp_path / name, symlinks=True)
    return tmp_path


def check(root: Path, folder: Path | None = None) -> subprocess.CompletedProcess[str]:
    return kubenb("--root", str(root), "check", *(["--registry-folder", str(folder)] if folder else []))


def flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def largest_blob(folder: Path, pattern: str) -> Path:
    return max(folder.glob(pattern), key=lambda p: p.stat().st_size)


def test_check_passes_a_sound_store_and_registry_folder(built: Path) -> None:
    result = check(built / "store", built / "export" / "registry")
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(r"OK: store: 1 images, \d+ blobs verified; registry folder: 2 repositories, "
                        r"\d+ blobs verified\n", result.stdout), result.stdout


def test_check_of_an_empty_store_is_ok(tmp_path: Path) -> None:
    (tmp_path / "nothing").mkdir()  # a store folder that does not exist is an error (test_one_line.py)
    result = check(tmp_path / "nothing")
    assert result.returncode == 0 and result.stdout == "OK: store: 0 images, 0 blobs verified\n"


def test_check_names_a_store_blob_with_a_flipped_byte(built: Path) -> None:
    blob = largest_blob(built / "store" / "blobs" / "sha256", "*")
    flip_a_byte(blob)
    result = check(built / "store")
    assert result.returncode == 1
    assert f"blob sha256:{blob.name} does not hash to its name (sha256:" in result.stderr
    assert "1 problem(s) found" in result.stderr


def test_check_names_a_missing_store_blob_and_the_image_needing_it(built: Path) -> None:
    blob = largest_blob(built / "store" / "blobs" / "sha256", "*")
    blob.unlink()
    result = check(built / "store")
    assert result.returncode == 1
    assert f"c:1: blob sha256:{blob.name} is missing" in result.stderr


def test_check_names_a_registry_folder_blob_with_a_flipped_byte(built: Path) -> None:
    folder = built / "export" / "registry"
    data = largest_blob(folder / "docker/registry/v2/blobs/sha256", "*/*/data")
    flip_a_byte(data)
    result = check(built / "store", folder)
    assert result.returncode == 1
    assert f"blob sha256:{data.parent.name}: data hashes to sha256:" in result.stderr
    assert str(data) in result.stderr


def test_check_names_a_missing_registry_folder_layer_and_the_image_using_it(built: Path) -> None:
    folder = RegistryFolder(built / "export" / "registry")
    manifest_digest = folder.tag_digest("library/alpine", "3.20")
    assert manifest_digest is not None
    layer = json.loads(folder.blob_path(manifest_digest).read_bytes())["layers"][0]["digest"]
    folder.blob_path(layer).unlink()
    result = check(built / "store", folder.root)
    assert result.returncode == 1
    assert f"library/alpine: _layers link {layer} points at a missing blob" in result.stderr
    assert f"library/alpine@{manifest_digest} references application/vnd.oci.image.layer.v1.tar+gzip " \
           f"{layer}, a missing blob" in result.stderr


def test_check_names_a_missing_registry_folder_manifest(built: Path) -> None:
    folder = RegistryFolder(built / "export" / "registry")
    manifest_digest = folder.tag_digest("library/busybox", "1.36")
    assert manifest_digest is not None
    folder.blob_path(manifest_digest).unlink()
    result = check(built / "store", folder.root)
    assert result.returncode == 1
    assert f"library/busybox: _manifests/revisions link {manifest_digest} points at a missing blob" in result.stderr


def test_check_names_a_dangling_link(built: Path) -> None:
    folder = built / "export" / "registry"
    absent = "sha256:" + "ab" * 32
    link = folder / "docker/registry/v2/repositories/library/alpine/_layers/sha256" / absent[7:] / "link"
    link.parent.mkdir(parents=True)
    link.write_text(absent)
    result = check(built / "store", folder)
    assert result.returncode == 1
    assert f"library/alpine: _layers link {absent} points at a missing blob" in result.stderr
    assert "1 problem(s) found" in result.stderr


def test_check_names_a_tag_pointing_nowhere(built: Path) -> None:
    folder = built / "export" / "registry"
    current = folder / "docker/registry/v2/repositories/library/busybox/_manifests/tags/1.36/current/link"
    current.write_text("sha256:" + "cd" * 32)
    result = check(built / "store", folder)
    assert result.returncode == 1
    assert "library/busybox:1.36 points at sha256:" + "cd" * 32 + ", not a revision" in result.stderr


def test_check_refuses_a_folder_that_is_no_registry_folder(built: Path) -> None:
    result = check(built / "store", built / "export" / "manifests")
    assert result.returncode == 1 and "not a registry folder" in result.stderr


# -- builds through a faulty registry ----------------------------------------------------------


def twenty_images(seed: str) -> list[Image]:
    """Small distinct images; every fourth has a second, 600 kB layer, so bodies span chunks."""
    images = []
    for number in range(IMAGE_COUNT):
        image = single_image(f"{seed}-{number}")
        if number % 4 == 0:
            extra = make_layer({f"data/{number}": os.urandom(600_000)})
            image = make_image([*image.layers, extra], labels={"seed": f"{seed}-{number}"})
        images.append(image)
    return images


@pytest.fixture
def pushed(registry: Registry) -> Iterator[tuple[str, list[Image]]]:
    """Twenty images pushed to the real registry under a fresh namespace."""
    namespace = f"rel-{secrets.token_hex(3)}"
    images = twenty_images(namespace)
    for number, image in enumerate(images):
        push(registry, f"{namespace}/app-{number:02d}", "1.0", image)
    yield namespace, images


@pytest.mark.parametrize("seed", [11, 2026])
def test_a_build_through_a_faulty_registry_carries_every_image_verified(
    seed: int, registry: Registry, pushed: tuple[str, list[Image]], tmp_path: Path, fast_backoff: None,
) -> None:
    namespace, images = pushed
    events: list[Event] = []
    with FaultyProxy(registry.url) as proxy:
        proxy.chaos = Chaos(rate=FAULT_RATE, seed=seed)
        context = context_with(tmp_path, "".join(f"{proxy.host}/{namespace}/app-{n:02d}:1.0\n"
                                                 for n in range(IMAGE_COUNT)))
        started = time.monotonic()
        image = build(BuildOptions(tag="faulty:1", context=context, kubefile=context / "Kubefile"),
                      store=Store(tmp_path / "store"), events=events.append)
        elapsed = time.monotonic() - started
        chaos = proxy.chaos
    retries = [e for e in events if isinstance(e, Retrying)]
    print(f"\nseed {seed}: {len(chaos.faulted)} of {chaos.total} requests faulted "
          f"({len(chaos.faulted) / chaos.total:.0%}), {chaos.counts()}, {len(retries)} retries, "
          f"build {elapsed:.1f} s")
    assert len(chaos.faulted) >= 5, "too few faults to mean anything"
    assert retries, "faults were injected but nothing was retried"
    Store(tmp_path / "store").export(image.name, tmp_path / "export")
    folder = tmp_path / "export" / "registry"
    checked = check(tmp_path / "store", folder)
    assert checked.returncode == 0, checked.stderr
    assert f"registry folder: {IMAGE_COUNT} repositories" in checked.stdout
    stored = RegistryFolder(folder)
    assert [stored.tag_digest(f"{namespace}/app-{n:02d}", "1.0") for n in range(IMAGE_COUNT)] == \
        [i.digest for i in images]
    for source in images:  # every blob, byte for byte, as pushed
        for blob in source.blobs:
            assert stored.blob_path(blob.digest).read_bytes() == blob.data


def test_a_blob_corrupt_on_every_try_fails_the_build_naming_image_and_blob(
    registry: Registry, pushed: tuple[str, list[Image]], tmp_path: Path, fast_backoff: None,
) -> None:
    namespace, images = pushed
    bad = images[4].layers[-1].digest
    root = tmp_path / "store"
    with FaultyProxy(registry.url) as proxy:
        proxy.add(Fault(re.escape(f"/blobs/{bad}"), Corrupt(), times=10_000))
        context = context_with(tmp_path, "".join(f"{proxy.host}/{namespace}/app-{n:02d}:1.0\n"
                                                 for n in range(IMAGE_COUNT)))
        with pytest.raises(KubenbError) as raised:
            build(BuildOptions(tag="corrupt:1", context=context, kubefile=context / "Kubefile"),
                  store=Store(root))
        attempts = len(proxy.requests_to(re.escape(bad)))
    message = str(raised.value)
    assert f"{proxy.host}/{namespace}/app-04:1.0" in message
    assert bad in message and "1 of 20 images could not be saved" in message
    assert attempts == 1 + 5, "the default budget is one try and five retries"
    assert Store(root).images() == []
    assert Store(root).check() == []
    assert check(root).returncode == 0
    assert not list((root / "tmp").glob("build-*"))
    assert not [p for p in (root / "blobs" / "sha256").iterdir() if p.name == bad[7:]]


def test_cancelling_a_build_while_it_pulls_raises_cancelled_itself_and_names_nothing(
    registry: Registry, pushed: tuple[str, list[Image]], tmp_path: Path,
) -> None:
    """Issue 14: a cancel came back as "StoreError: N of M images could not be saved: ...
    cancelled". One layer is held on every try, so only the cancel can end this build."""
    namespace, images = pushed
    held = images[4].layers[-1].digest
    root = tmp_path / "store"
    hold = Hold()
    with FaultyProxy(registry.url) as proxy:
        proxy.add(Fault(re.escape(f"/blobs/{held}"), hold, times=10_000))
        context = context_with(tmp_path, "".join(f"{proxy.host}/{namespace}/app-{n:02d}:1.0\n"
                                                 for n in range(IMAGE_COUNT)))
        outcome = cancelled_when([hold.held], lambda cancel: build(
            BuildOptions(tag="cancelled:1", context=context, kubefile=context / "Kubefile"),
            store=Store(root), cancel=cancel))
        hold.release.set()
    assert type(outcome) is Cancelled, outcome
    assert Store(root).images() == []
    assert check(root).returncode == 0
    assert not list((root / "tmp").glob("build-*"))


def test_two_save_images_into_one_folder_at_once_both_succeed_and_the_folder_checks(
    registry: Registry, pushed: tuple[str, list[Image]], tmp_path: Path,
) -> None:
    """Overlapping image sets, so both processes race for the same blobs, links and tags."""
    namespace, images = pushed
    names = [f"{registry.host}/{namespace}/app-{n:02d}:1.0" for n in range(IMAGE_COUNT)]
    folder = tmp_path / "folder"
    processes = [subprocess.Popen([sys.executable, "-m", "kubenb", "save-images", "-o", str(folder), *chosen],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for chosen in (names[:14], names[6:])]
    outcomes = [process.communicate(timeout=120) for process in processes]
    assert [process.returncode for process in processes] == [0, 0], outcomes
    (tmp_path / "store").mkdir()  # an empty store: check refuses one that does not exist
    checked = check(tmp_path / "store", folder)
    assert checked.returncode == 0, checked.stderr
    stored = RegistryFolder(folder)
    assert [stored.tag_digest(f"{namespace}/app-{n:02d}", "1.0") for n in range(IMAGE_COUNT)] == \
        [i.digest for i in images]
    assert not list((folder / ".kubenb-tmp").glob("*")), "temp files left behind"
