"""Hostile and odd images: crafted layers through the real CLI and through the one applier.

Each image here is made of real tar layers committed to a real store (and, for the attack path
of a downloaded image, saved and loaded back with ``kubenb load -i``). Sentinel files sit
beside the destination and in its parent: after every run they are still there, the
destination is as the user left it, and ``kubenb check`` is clean. Ordinary absolute symlinks
(``etc/localtime -> /usr/share/zoneinfo/UTC``) must keep working: export keeps them as links
and a build FROM such an image resolves them inside its rootfs.
"""

from __future__ import annotations

import io
import subprocess
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from kubenb.discover.rootfs import view_of_folder
from kubenb.errors import StoreError
from kubenb.oci import apply_layer, resolve_in_root
from kubenb.store import Layer, Store
from tests.support.oci import push, single_image, tar_member
from tests.support.registry import Registry
from tests.test_hostile import assert_one_clear_line, kubenb

Entry = tuple[tarfile.TarInfo, bytes]
BASE = {"manifests/imageList": b"", "etc/keep.conf": b"keep\n", "charts/app/old.yaml": b"old\n"}


def file(name: str, data: bytes = b"x\n") -> Entry:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), 0o644
    return info, data


def link(name: str, target: str) -> Entry:
    return tar_member(name, tarfile.SYMTYPE, target), b""


def special(name: str, kind: bytes, target: str = "") -> Entry:
    return tar_member(name, kind, target), b""


def write_tar(path: Path, entries: list[Entry]) -> Path:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return path


def commit(store: Store, name: str, *layers: list[Entry]) -> list[Layer]:
    """An image of these layers (lowest first) in ``store``; its layers, for their digests."""
    folder = store.root / "crafted"
    folder.mkdir(parents=True, exist_ok=True)
    added = [store.add_layer(write_tar(folder / f"{name}-{n}.tar", entries)) for n, entries in enumerate(layers)]
    store.commit(name, added, labels={}, annotations={})
    return added


@dataclass(frozen=True)
class Place:
    """OUTER/sentinel.txt, OUTER/parent/beside.txt and DEST = OUTER/parent/out; the store beside."""

    outer: Path

    @property
    def parent(self) -> Path:
        return self.outer / "parent"

    @property
    def dest(self) -> Path:
        return self.parent / "out"

    @property
    def root(self) -> Path:
        return self.parent / "store"

    def check_untouched(self, dest: str = "absent") -> None:
        """The sentinels are intact; DEST is "absent", "empty" (as the user made it) or "exported"."""
        assert (self.outer / "sentinel.txt").read_text() == "outer\n"
        assert (self.parent / "beside.txt").read_text() == "beside\n"
        assert (self.outer / "sentinel.txt").stat().st_nlink == 1
        expected = {"beside.txt", "store"} | ({"out"} if dest != "absent" else set())
        assert {p.name for p in self.parent.iterdir()} == expected  # no partial DEST, no temp folder
        assert {p.name for p in self.outer.iterdir()} == {"parent", "sentinel.txt"}
        if dest == "empty":
            assert self.dest.is_dir() and not any(self.dest.iterdir())
        checked = kubenb("--root", str(self.root), "check")
        assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.fixture
def place(tmp_path: Path) -> Place:
    spot = Place(tmp_path / "outer")
    spot.parent.mkdir(parents=True)
    (spot.outer / "sentinel.txt").write_text("outer\n")
    (spot.parent / "beside.txt").write_text("beside\n")
    return spot


def export(place: Place, name: str) -> subprocess.CompletedProcess[str]:
    return kubenb("--root", str(place.root), "export", name, "-o", str(place.dest))


def build(place: Place, kubefile: str, files: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``kubenb build -t built:1`` of a context (beside OUTER) holding ``kubefile`` and ``files``."""
    context = place.outer.parent / "context"
    context.mkdir(exist_ok=True)
    (context / "Kubefile").write_text(kubefile)
    for name, text in (files or {}).items():
        (context / name).write_text(text)
    return kubenb("--root", str(place.root), "build", "-t", "built:1", str(context))


def export_built(place: Place) -> Path:
    """The rootfs of built:1, exported beside OUTER."""
    out = place.outer.parent / "built"
    exported = kubenb("--root", str(place.root), "export", "built:1", "-o", str(out))
    assert exported.returncode == 0, exported.stderr
    return out


# -- hostile layers are refused whole, and nothing outside DEST changes ----------------------------

#: name -> the members that end the (otherwise harmless) top layer, the last one hostile
HOSTILE: dict[str, Callable[[Place], list[Entry]]] = {
    "whiteout-dot": lambda _: [special(".wh..", tarfile.REGTYPE)],
    "whiteout-dotdot": lambda _: [special(".wh...", tarfile.REGTYPE)],
    "whiteout-empty": lambda _: [special(".wh.", tarfile.REGTYPE)],
    "whiteout-dotdot-in-folder": lambda _: [special("etc/.wh...", tarfile.REGTYPE)],
    "whiteout-as-folder": lambda _: [file("etc/.wh.keep.conf/x")],
    "member-dotdot": lambda _: [file("../beside.txt", b"overwritten\n")],
    "hard-link-dotdot": lambda _: [special("etc/hard", tarfile.LNKTYPE, "../../sentinel.txt")],
    "hard-link-through-absolute-symlink": lambda place: [
        link("host", "/"), special("etc/hard", tarfile.LNKTYPE, f"host{place.outer}/sentinel.txt")],
}


@pytest.mark.parametrize("dest_made", [False, True], ids=["new-dest", "empty-dest"])
@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_export_of_a_hostile_layer_fails_with_one_line_and_changes_nothing(place: Place, case: str,
                                                                          dest_made: bool) -> None:
    entries = HOSTILE[case](place)
    hostile = entries[-1][0]
    store = Store(place.root)
    # the top layer first deletes and writes (harmless), then meets the hostile member
    top = [special("etc/.wh.keep.conf", tarfile.REGTYPE), file("etc/new.conf"), *entries]
    _, layer = commit(store, "hostile:1", [file(n, d) for n, d in BASE.items()], top)
    if dest_made:
        place.dest.mkdir()
    assert_one_clear_line(export(place, "hostile:1"), layer.digest, f"member {hostile.name!r}")
    place.check_untouched("empty" if dest_made else "absent")


def test_a_downloaded_hostile_image_cannot_delete_outside_on_export(place: Place) -> None:
    """The attack path: an archive from elsewhere, loaded, then exported next to the user's files."""
    maker = Store(place.outer.parent / "maker")
    _, layer = commit(maker, "hostile:1", [file("etc/a.conf")], [special(".wh...", tarfile.REGTYPE)])
    maker.save("hostile:1", place.outer.parent / "hostile.tar")
    loaded = kubenb("--root", str(place.root), "load", "-i", str(place.outer.parent / "hostile.tar"))
    assert loaded.returncode == 0, loaded.stderr
    assert_one_clear_line(export(place, "hostile:1"), layer.digest, "'.wh...'", "names no file")
    place.check_untouched()


def test_a_build_from_a_hostile_image_fails_with_one_line_and_writes_nothing(place: Place) -> None:
    store = Store(place.root)
    _, layer = commit(store, "hostile:1", [file(n, d) for n, d in BASE.items()],
                      [special(".wh...", tarfile.REGTYPE)])
    result = build(place, "FROM hostile:1\nLABEL a=b\n")
    assert_one_clear_line(result, layer.digest, "'.wh...'")
    assert [image.name for image in store.images()] == ["hostile:1"]
    assert not list((place.root / "tmp").glob("build-*"))
    place.check_untouched()


# -- symlinks resolve inside the rootfs (chroot semantics) -----------------------------------------

def test_symlinks_out_are_followed_inside_the_export_only(place: Place) -> None:
    """Absolute and relative links that lead out on the host lead into DEST when written through."""
    outer = str(place.outer)
    store = Store(place.root)
    commit(store, "links:1", [link("abs", outer), link("up", "../../.."), link("root", "/")],
           [file("abs/sentinel.txt", b"planted\n"), file("up/planted.txt", b"planted\n"),
            special("up/.wh.beside.txt", tarfile.REGTYPE), special("root/.wh.sentinel.txt", tarfile.REGTYPE),
            file("root/parent/beside.txt", b"planted\n")])
    exported = export(place, "links:1")
    assert exported.returncode == 0, exported.stderr
    inside = place.dest / place.outer.relative_to("/")
    assert (inside / "sentinel.txt").read_text() == "planted\n"
    assert (place.dest / "planted.txt").read_text() == "planted\n"
    assert (place.dest / "parent" / "beside.txt").read_text() == "planted\n"
    assert (place.dest / "abs").readlink() == place.outer and (place.dest / "up").readlink() == Path("../../..")
    place.check_untouched("exported")


def test_devices_and_fifos_are_skipped_by_export_and_build(place: Place) -> None:
    store = Store(place.root)
    commit(store, "devices:1", [file(n, d) for n, d in BASE.items()],
           [special("dev/null", tarfile.CHRTYPE), special("dev/sda", tarfile.BLKTYPE),
            special("run/pipe", tarfile.FIFOTYPE), file("etc/after.conf")])
    exported = export(place, "devices:1")
    assert exported.returncode == 0, exported.stderr
    assert not (place.dest / "dev" / "null").exists() and not (place.dest / "run" / "pipe").exists()
    assert (place.dest / "etc" / "after.conf").is_file()
    built = build(place, "FROM devices:1\nLABEL a=b\n")
    assert built.returncode == 0, built.stderr


def test_opaque_whiteouts_hide_the_lower_layers_in_export_and_build(place: Place) -> None:
    store = Store(place.root)
    commit(store, "opaque:1",
           [file("charts/app/old.yaml"), file("manifests/pod.yaml", b"kind: Pod\nspec:\n  containers:\n"
                                                                 b"  - image: nginx:1.25\n")],
           [file("charts/app/new.yaml"), special("charts/app/.wh..wh..opq", tarfile.REGTYPE),
            special("manifests/.wh..wh..opq", tarfile.REGTYPE)])
    exported = export(place, "opaque:1")
    assert exported.returncode == 0, exported.stderr
    assert sorted(p.name for p in (place.dest / "charts" / "app").iterdir()) == ["new.yaml"]
    assert not list(place.dest.rglob(".wh.*"))
    built = build(place, "FROM opaque:1\n")
    assert built.returncode == 0, built.stderr
    assert "Caching 0 images" in built.stderr  # the hidden pod's nginx is not needed


def test_ordinary_absolute_symlinks_work_for_export_build_and_copy(place: Place, tmp_path: Path) -> None:
    """A base image with etc/localtime -> /usr/share/zoneinfo/UTC, and etc itself a link to an
    absolute folder that also exists on the host: the build succeeds and COPY writes into the
    rootfs's copy of that folder, never the host's."""
    host_etc = tmp_path / "host-etc"
    host_etc.mkdir()
    store = Store(place.root)
    commit(store, "base:1", [file("manifests/imageList", b""), file("usr/share/zoneinfo/UTC", b"TZif2"),
                             link("srv/etc/localtime", "/usr/share/zoneinfo/UTC"), link("etc", str(host_etc))])
    exported = export(place, "base:1")
    assert exported.returncode == 0, exported.stderr
    assert (place.dest / "srv" / "etc" / "localtime").readlink() == Path("/usr/share/zoneinfo/UTC")
    built = build(place, "FROM base:1\nCOPY app.conf etc/\nCOPY app.conf srv/etc/localtime\n", {"app.conf": "app\n"})
    assert built.returncode == 0, built.stderr
    assert not any(host_etc.iterdir())
    out = export_built(place)
    assert (out / host_etc.relative_to("/") / "app.conf").read_text() == "app\n"
    assert (out / "etc").readlink() == host_etc
    assert (out / "srv" / "etc" / "localtime").read_text() == "app\n"  # the link was replaced, not followed
    assert (out / "usr" / "share" / "zoneinfo" / "UTC").read_bytes() == b"TZif2"


def test_a_registry_symlink_in_the_base_image_keeps_the_pull_inside_the_rootfs(
        place: Place, tmp_path: Path, registry: Registry, repo_name: str) -> None:
    host_registry = tmp_path / "host-registry"
    host_registry.mkdir()
    push(registry, repo_name, "1", single_image("hostile-registry"))
    store = Store(place.root)
    commit(store, "base:1", [file("manifests/imageList", f"{registry.host}/{repo_name}:1\n".encode()),
                             link("registry", str(host_registry))])
    built = build(place, "FROM base:1\n")
    assert built.returncode == 0, built.stderr
    assert not any(host_registry.iterdir())
    inside = export_built(place) / host_registry.relative_to("/")
    assert (inside / "docker" / "registry" / "v2" / "repositories" / repo_name).is_dir()
    checked = kubenb("check", "--registry-folder", str(inside))
    assert checked.returncode == 0, checked.stdout + checked.stderr


# -- unit level: the resolver, the applier and the rootfs view -------------------------------------

@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    root = tmp_path / "rootfs"
    (root / "usr" / "share" / "zoneinfo").mkdir(parents=True)
    (root / "usr" / "share" / "zoneinfo" / "UTC").write_text("TZif2")
    (root / "etc").mkdir()
    (root / "etc" / "localtime").symlink_to("/usr/share/zoneinfo/UTC")
    (root / "up").symlink_to("../../../..")
    (root / "host").symlink_to(tmp_path)
    (root / "loop").symlink_to("loop")
    (root / "dangling").symlink_to("/nowhere/at/all")
    return root


@pytest.mark.parametrize(("relative", "expected"), [
    ("etc/localtime", "usr/share/zoneinfo/UTC"),
    ("/etc/localtime", "usr/share/zoneinfo/UTC"),
    ("up/etc", "etc"),
    ("../../etc/../..", ""),
    ("host/rootfs/etc/localtime", "PARENT/rootfs/etc/localtime"),  # the host's path, taken inside
    ("host/secret", "PARENT/secret"),
    ("dangling/x", "nowhere/at/all/x"),
])
def test_resolve_in_root_never_leaves_the_root(rootfs: Path, relative: str, expected: str) -> None:
    expected = expected.replace("PARENT", str(rootfs.parent.relative_to("/")))
    assert resolve_in_root(rootfs, relative) == rootfs.joinpath(*Path(expected).parts)


def test_resolve_in_root_keeps_the_last_link_when_asked_and_stops_loops(rootfs: Path) -> None:
    assert resolve_in_root(rootfs, "etc/localtime", follow_last=False) == rootfs / "etc" / "localtime"
    with pytest.raises(StoreError, match="too many levels of symbolic links"):
        resolve_in_root(rootfs, "loop/x")


def test_the_applier_streams_and_handles_opaque_whiteouts_like_the_build_needs(tmp_path: Path) -> None:
    """The build's cache hits use this applier: an opaque marker hides the lower layers, wherever it
    comes in the tar, and keeps what its own layer wrote (the build's old applier ignored it)."""
    root = tmp_path / "root"
    root.mkdir()
    with write_tar(tmp_path / "1.tar", [file("charts/app/old.yaml"), file("charts/app/sub/x.yaml")]).open("rb") as s:
        apply_layer(s, root, "sha256:one")
    opaque = special("charts/app/.wh..wh..opq", tarfile.REGTYPE)
    top = write_tar(tmp_path / "2.tar", [file("charts/app/new.yaml"), opaque, file("charts/app/later.yaml")])
    with top.open("rb") as stream:
        apply_layer(stream, root, "sha256:two")
    assert sorted(p.name for p in (root / "charts" / "app").iterdir()) == ["later.yaml", "new.yaml"]


def test_a_whiteout_skips_what_its_own_layer_wrote(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    with write_tar(tmp_path / "1.tar", [file("a"), special(".wh.a", tarfile.REGTYPE), file("b/c"),
                                        special(".wh.b", tarfile.REGTYPE)]).open("rb") as stream:
        apply_layer(stream, root, "sha256:one")
    assert (root / "a").is_file() and (root / "b" / "c").is_file()


def test_the_view_of_a_rootfs_resolves_links_inside_it_and_ignores_dangling_ones(rootfs: Path) -> None:
    """It used to fail every build FROM an image holding etc/localtime -> /usr/share/zoneinfo/UTC."""
    (rootfs / "manifests").mkdir()
    (rootfs / "manifests" / "pod.yaml").write_text("kind: Pod\n")
    (rootfs / "charts").symlink_to("/manifests")
    (rootfs / "loop").unlink()
    (rootfs / "self").symlink_to(".")
    files = view_of_folder(rootfs).files
    assert files["etc/localtime"] == rootfs / "usr" / "share" / "zoneinfo" / "UTC"
    assert files["charts/pod.yaml"] == rootfs / "manifests" / "pod.yaml"
    assert "dangling" not in files and not any(name.startswith("host/") for name in files)
    assert all(host.resolve().is_relative_to(rootfs) for host in files.values())
    (rootfs / "loop").symlink_to("loop")  # a link that resolves to nothing is named, not a crash
    with pytest.raises(StoreError, match=r"^loop: too many levels of symbolic links"):
        view_of_folder(rootfs)
