"""The lite build end to end, with real parts: docker-registry, skopeo, a loopback HTTP server."""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from kubenb.builders import BuildOptions, build
from kubenb.demo import DemoRegistry
from kubenb.events import BlobStarted, Event
from kubenb.store import Store, layout
from tests.support.faulty import Fault, FaultyProxy, Hold
from tests.support.oci import INDEX, fetch_manifest, multi_arch_index, push, sha256_digest, single_image

DESIGN_KUBEFILES = Path(__file__).parent / "data" / "kubefiles"
DASHBOARD = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: kubernetes-dashboard, namespace: kubernetes-dashboard}
spec:
  template:
    spec:
      containers:
      - name: kubernetes-dashboard
        image: kubernetesui/dashboard:v2.2.0
      - name: dashboard-metrics-scraper
        image: kubernetesui/metrics-scraper:v1.0.6
"""
APOLLO_POD = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: "{{ .Release.Name }}-apollo"}
spec:
  template:
    spec:
      containers:
      - name: portal
        image: "apolloconfig/apollo-portal:{{ .Values.tag }}"
"""


@pytest.fixture
def web(tmp_path: Path) -> Iterator[str]:
    """A loopback HTTP server standing in for raw.githubusercontent.com."""
    served = tmp_path / "web"
    (served / "kubernetes/dashboard/v2.2.0/aio/deploy").mkdir(parents=True)
    (served / "kubernetes/dashboard/v2.2.0/aio/deploy/recommended.yaml").write_text(DASHBOARD)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture
def design_context(tmp_path: Path, web: str) -> Path:
    """The third design Kubefile with its wget pointed at the loopback server, and its files."""
    context = tmp_path / "context"
    context.mkdir()
    kubefile = (DESIGN_KUBEFILES / "lite-build.Kubefile").read_text()
    (context / "Kubefile").write_text(kubefile.replace("https://raw.githubusercontent.com", web))
    (context / "imageList").write_text("busybox:1.36\nregistry.k8s.io/pause:3.9\n")
    (context / "recommended.yaml").write_text(DASHBOARD)
    chart = context / "apollo"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: apollo\nversion: 0.1.0\n")
    (chart / "values.yaml").write_text("tag: 2.1.0\n")
    (chart / "templates" / "portal.yaml").write_text(APOLLO_POD)
    return context


IMAGES = [
    "docker.io/library/busybox:1.36", "registry.k8s.io/pause:3.9", "docker.io/kubernetesui/dashboard:v2.2.0",
    "docker.io/kubernetesui/metrics-scraper:v1.0.6", "docker.io/apolloconfig/apollo-portal:2.1.0",
]


def test_the_design_kubefile_builds_in_lite_mode(design_context: Path, tmp_path: Path, registry_factory, skopeo):
    if shutil.which("wget") is None:
        pytest.fail("wget is missing: run make test, which installs it")
    store = Store(tmp_path / "store")
    events: list[Event] = []
    with DemoRegistry(IMAGES) as source:
        options = BuildOptions(tag="my-cluster:v1.19.9", context=design_context,
                               kubefile=design_context / "Kubefile", mirrors=source.mirrors())
        # FROM kubernetes:v1.19.9 must be in the store: make it from scratch first
        base = tmp_path / "base"
        base.mkdir()
        (base / "Kubefile").write_text("FROM scratch\nLABEL role=base\n")
        build(BuildOptions(tag="kubernetes:v1.19.9", context=base, kubefile=base / "Kubefile"), store=store)
        image = build(options, store=store, events=events.append)
        sources = {name: _digest_of(skopeo, source, name) for name in IMAGES}
    annotations = image.annotations
    commands = json.loads(annotations["io.kubenb.deploy-commands"])
    assert commands == ["RUN helm install charts/apollo", "RUN kubectl apply -f manifests/recommended.yaml"]
    assert set(json.loads(annotations["io.kubenb.images"])) == set(IMAGES)
    exported = tmp_path / "export"
    store.export(image.name, exported)
    assert (exported / "recommended.yaml").read_text() == DASHBOARD  # the download landed in the image
    assert (exported / "manifests" / "imageList").exists()
    assert (exported / "manifests" / "recommended.yaml").exists()
    assert (exported / "charts" / "apollo" / "Chart.yaml").exists()
    served = registry_factory(root=exported / "registry", read_only=True)
    for name, digest in sources.items():
        repository, tag = name.split("/", 1)[1].rsplit(":", 1)
        raw = skopeo.inspect_raw(served, repository, tag)
        assert "sha256:" + hashlib.sha256(raw).hexdigest() == digest
    assert any(isinstance(e, BlobStarted) for e in events)


def _digest_of(skopeo, registry: DemoRegistry, name: str) -> str:  # type: ignore[no-untyped-def]
    repository, tag = name.split("/", 1)[1].rsplit(":", 1)
    raw = skopeo.run("inspect", "--raw", "--tls-verify=false", f"docker://{registry.host}/{repository}:{tag}")
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def _busybox_context(tmp_path: Path, kubefile: str) -> tuple[Path, Store]:
    """A context whose imageList names busybox:1.36, and an empty store."""
    context = tmp_path / "context"
    (context / "manifests").mkdir(parents=True)
    (context / "Kubefile").write_text(kubefile)
    (context / "imageList").write_text("busybox:1.36\n")
    return context, Store(tmp_path / "store")


def test_a_second_build_reuses_every_layer_and_fetches_no_blob(tmp_path: Path) -> None:
    context, store = _busybox_context(tmp_path, "FROM scratch\nCOPY imageList manifests\nRUN echo built > etc/stamp\n")
    with DemoRegistry(["busybox:1.36"]) as source:
        options = BuildOptions(tag="c:1", context=context, kubefile=context / "Kubefile", mirrors=source.mirrors())
        first = build(options, store=store)
        events: list[Event] = []
        second = build(options, store=store, events=events.append)
    assert not [e for e in events if isinstance(e, BlobStarted)]
    assert second.id == first.id


def test_a_rebuild_after_the_clock_moved_keeps_the_image_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The timestamps come from the first build of the same inputs, never from the clock of a
    later one: two builds a second (or a day) apart give one image ID."""
    context, store = _busybox_context(tmp_path, "FROM scratch\nCOPY imageList manifests\n")
    with DemoRegistry(["busybox:1.36"]) as source:
        options = BuildOptions(tag="c:1", context=context, kubefile=context / "Kubefile", mirrors=source.mirrors())
        monkeypatch.setattr(layout, "now", lambda: "2030-01-01T00:00:00Z")
        first = build(options, store=store)
        monkeypatch.setattr(layout, "now", lambda: "2030-01-02T00:00:00Z")
        second = build(options, store=store)
    assert second.created == first.created == "2030-01-01T00:00:00Z"
    assert second.id == first.id


def test_source_date_epoch_gives_byte_identical_images_in_two_stores(tmp_path: Path) -> None:
    """Two stores, one context, one SOURCE_DATE_EPOCH: the same manifest bytes, although the
    parallel pulls land their blobs in a different order each time."""
    context = tmp_path / "context"
    (context / "manifests").mkdir(parents=True)
    (context / "Kubefile").write_text("FROM scratch\nCOPY imageList manifests\nLABEL team=a\n")
    (context / "imageList").write_text("busybox:1.36\nalpine:3.20\nregistry.k8s.io/pause:3.9\n")
    manifests = []
    with DemoRegistry(["busybox:1.36", "alpine:3.20", "registry.k8s.io/pause:3.9"]) as source:
        mirrors = [f"--registry-mirror={domain}={host}" for domain, host in source.mirrors().items()]
        for store in ("one", "two", "three"):
            result = _cli("--root", str(tmp_path / store), "build", "-t", "c:1", *mirrors, str(context),
                          env={"SOURCE_DATE_EPOCH": "1700000000"})
            assert result.returncode == 0, result.stderr
            image = Store(tmp_path / store).get("c:1")
            assert image.created == "2023-11-14T22:13:20Z"
            manifests.append((tmp_path / store / "blobs" / "sha256" / image.manifest_digest.split(":")[1]).read_bytes())
    assert manifests[0] == manifests[1] == manifests[2]


def test_a_malformed_source_date_epoch_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "Kubefile").write_text("FROM scratch\n")
    result = _cli("--root", str(tmp_path / "store"), "build", "-t", "x:1", str(tmp_path),
                  env={"SOURCE_DATE_EPOCH": "yesterday"})
    assert result.returncode == 1
    assert "SOURCE_DATE_EPOCH='yesterday' is not a number" in result.stderr.splitlines()[-1]
    assert Store(tmp_path / "store").images() == []


def test_a_failing_run_fails_the_build_with_its_status_and_output(tmp_path: Path) -> None:
    (tmp_path / "Kubefile").write_text("FROM scratch\n\nRUN echo about to fail && exit 3\n")
    result = subprocess.run([sys.executable, "-m", "kubenb", "--root", str(tmp_path / "store"), "build", "-t", "x:1",
                             str(tmp_path)], capture_output=True, text=True, check=False)
    assert result.returncode == 1
    last = result.stderr.splitlines()[-1]
    assert last.startswith("kubenb: ") and ":3: RUN failed with exit status 3: about to fail" in last
    assert Store(tmp_path / "store").images() == []
    assert not list((tmp_path / "store" / "tmp").glob("build-*"))


def _cli(*args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kubenb", *args], capture_output=True, text=True, input=stdin,
                          env={**os.environ, **(env or {})}, timeout=300, check=False)


def test_a_build_killed_while_caching_is_followed_by_one_that_succeeds(tmp_path: Path) -> None:
    context = tmp_path / "context"
    context.mkdir()
    (context / "Kubefile").write_text("FROM scratch\nCOPY imageList manifests\n")
    (context / "imageList").write_text("busybox:1.36\nalpine:3.20\nregistry.k8s.io/pause:3.9\n")
    root = tmp_path / "store"
    with DemoRegistry(["busybox:1.36", "alpine:3.20", "registry.k8s.io/pause:3.9"]) as source, \
            FaultyProxy(f"http://{source.host}") as slow:
        held = Hold()  # every blob download waits unanswered: the build is caching and cannot finish
        slow.add(Fault(r"/blobs/", held, times=100))
        mirrors = [f"--registry-mirror={domain}={slow.host}" for domain in ("docker.io", "registry.k8s.io")]
        process = subprocess.Popen([sys.executable, "-m", "kubenb", "--root", str(root), "build", "-t", "c:1",
                                    *mirrors, str(context)], stderr=subprocess.DEVNULL)
        assert held.held.wait(120), "the build never reached the caching step"
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert process.returncode == -signal.SIGKILL
        slow.faults.clear()
        held.release.set()
        again = _cli("--root", str(root), "build", "-t", "c:1", *mirrors, str(context))
    assert again.returncode == 0, again.stderr
    listed = json.loads(_cli("--root", str(root), "images", "-o", "json").stdout)
    assert [image["name"] for image in listed] == ["c:1"]
    assert _cli("--root", str(root), "inspect", "c:1").returncode == 0
    assert Store(root).check() == []
    assert not list((root / "tmp").glob("build-*")), "the killed build's workspace was not cleaned up"


def test_a_private_registry_needs_a_login_before_the_build(tmp_path: Path, auth_registry) -> None:
    image = single_image("private-build")
    push(auth_registry, "team/app", "1.0", image)
    context = tmp_path / "context"
    context.mkdir()
    (context / "Kubefile").write_text("FROM scratch\nCOPY imageList manifests\n")
    (context / "imageList").write_text(f"{auth_registry.host}/team/app:1.0\n")
    env = {"REGISTRY_AUTH_FILE": str(tmp_path / "auth.json")}
    denied = _cli("--root", str(tmp_path / "store"), "build", "-t", "p:1", str(context), env=env)
    assert denied.returncode == 1
    assert auth_registry.host in denied.stderr and "kubenb login" in denied.stderr
    login = _cli("login", auth_registry.host, "-u", auth_registry.username, "--password-stdin", env=env,
                 stdin=auth_registry.password + "\n")
    assert login.returncode == 0, login.stderr
    built = _cli("--root", str(tmp_path / "store"), "build", "-t", "p:1", str(context), env=env)
    assert built.returncode == 0, built.stderr
    for text in (denied.stderr, login.stdout, built.stdout, built.stderr):
        assert auth_registry.password not in text


def test_save_then_load_into_another_root_gives_the_same_image_id(tmp_path: Path) -> None:
    (tmp_path / "Kubefile").write_text("FROM scratch\nLABEL a=b\nRUN echo hi > etc/hello\n")
    first, second = str(tmp_path / "one"), str(tmp_path / "two")
    assert _cli("--root", first, "build", "-t", "s:1", str(tmp_path)).returncode == 0
    archive = str(tmp_path / "s.tar")
    assert _cli("--root", first, "save", "-o", archive, "s:1").returncode == 0
    assert _cli("--root", second, "load", "-i", archive).returncode == 0
    ids = [json.loads(_cli("--root", root, "inspect", "s:1").stdout)["image"]["id"] for root in (first, second)]
    assert ids[0] == ids[1]


def contexts(tmp_path: Path, **files: dict[str, str]) -> list[Path]:
    """Build contexts named by the keywords, each holding its {file name: text}."""
    made = []
    for name, content in files.items():
        folder = tmp_path / name
        folder.mkdir()
        for file, text in content.items():
            (folder / file).write_text(text)
        made.append(folder)
    return made


BASE_CONTEXT = {"Kubefile": "FROM scratch\nCOPY imageList manifests\n", "imageList": "busybox:1.36\n"}


def test_images_in_the_base_image_registry_are_not_fetched_again(tmp_path: Path) -> None:
    base, derived = contexts(tmp_path, base=BASE_CONTEXT, derived={
        "Kubefile": "FROM base:1\nCOPY more.yaml manifests\n",
        "more.yaml": "kind: Pod\nspec:\n  containers:\n  - image: alpine:3.20\n",
    })
    store = Store(tmp_path / "store")
    events: list[Event] = []
    with DemoRegistry(["busybox:1.36", "alpine:3.20"]) as source:
        build(BuildOptions(tag="base:1", context=base, kubefile=base / "Kubefile", mirrors=source.mirrors()),
              store=store)
        image = build(BuildOptions(tag="derived:1", context=derived, kubefile=derived / "Kubefile",
                                   mirrors=source.mirrors()), store=store, events=events.append)
    fetched_for = {e.image for e in events if isinstance(e, BlobStarted)}
    assert fetched_for == {"docker.io/library/alpine:3.20"}
    assert set(json.loads(image.annotations["io.kubenb.images"])) == {
        "docker.io/library/busybox:1.36", "docker.io/library/alpine:3.20",
    }


def test_two_builds_on_one_store_at_once_both_succeed(tmp_path: Path) -> None:
    made = contexts(tmp_path, **{
        name: {"Kubefile": f"FROM scratch\nCOPY imageList manifests\nRUN echo {name} > etc/name\n",
               "imageList": "busybox:1.36\nalpine:3.20\n"}
        for name in ("one", "two")
    })
    root = str(tmp_path / "store")
    with DemoRegistry(["busybox:1.36", "alpine:3.20"]) as source:
        mirrors = [f"--registry-mirror=docker.io={source.host}"]
        processes = [subprocess.Popen([sys.executable, "-m", "kubenb", "--root", root, "build", "-t", f"{c.name}:1",
                                       *mirrors, str(c)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                     for c in made]
        outcomes = [process.communicate(timeout=120) for process in processes]
    assert [process.returncode for process in processes] == [0, 0], outcomes
    listed = json.loads(_cli("--root", root, "images", "-o", "json").stdout)
    assert sorted(image["name"] for image in listed) == ["one:1", "two:1"]
    for name in ("one", "two"):
        exported = tmp_path / f"export-{name}"
        assert _cli("--root", root, "export", f"{name}:1", "-o", str(exported)).returncode == 0
        assert (exported / "etc" / "name").read_text() == f"{name}\n"
        assert (exported / "registry" / "docker" / "registry" / "v2" / "repositories" / "library" / "alpine").is_dir()
        checked = _cli("--root", root, "check", "--registry-folder", str(exported / "registry"))
        assert checked.returncode == 0, checked.stderr
    assert Store(tmp_path / "store").check() == []


def test_list_images_includes_what_the_base_image_carries(tmp_path: Path) -> None:
    base, derived = contexts(tmp_path, base=BASE_CONTEXT, derived={
        "Kubefile": "FROM base:1\nCOPY imageList manifests\n", "imageList": "alpine:3.20\nbusybox:1.36\n",
    })
    root = tmp_path / "store"
    with DemoRegistry(["busybox:1.36"]) as source:
        build(BuildOptions(tag="base:1", context=base, kubefile=base / "Kubefile", mirrors=source.mirrors()),
              store=Store(root))
    result = _cli("--root", str(root), "list-images", str(derived), "-o", "json")
    assert result.returncode == 0, result.stderr
    images = {i["image"]: [f["source"] for f in i["found_in"]] for i in json.loads(result.stdout)["images"]}
    assert images == {"docker.io/library/alpine:3.20": ["imageList"],
                      "docker.io/library/busybox:1.36": ["base", "imageList"]}
    missing = _cli("--root", str(tmp_path / "empty"), "list-images", str(derived))
    assert missing.returncode == 0
    assert "the base image base:1 is not in the store" in missing.stderr


# -- FROM --platform -------------------------------------------------------------------------------


def test_from_platform_sets_the_image_platform_and_the_children_cached(
        tmp_path: Path, registry, repo_name: str) -> None:
    index = multi_arch_index(repo_name)
    push(registry, f"{repo_name}/multi", "1", index)
    arm64 = next(image for image in index.images if image.architecture == "arm64")
    (context,) = contexts(tmp_path, context={
        "Kubefile": "FROM --platform=linux/arm64 scratch\nCOPY imageList manifests\n",
        "imageList": f"{registry.host}/{repo_name}/multi:1\n",
    })
    root = str(tmp_path / "store")
    built = _cli("--root", root, "build", "-t", "arm:1", str(context))
    assert built.returncode == 0, built.stderr
    inspected = json.loads(_cli("--root", root, "inspect", "arm:1").stdout)
    assert (inspected["image"]["platform"], inspected["config"]["architecture"]) == ("linux/arm64", "arm64")
    exported = tmp_path / "rootfs"
    assert _cli("--root", root, "export", "arm:1", "-o", str(exported)).returncode == 0
    blobs = {p.name for p in (exported / "registry/docker/registry/v2/blobs/sha256").glob("*/*")}
    assert {blob.digest.removeprefix("sha256:") for blob in arm64.blobs} <= blobs
    amd64 = next(image for image in index.images if image.architecture == "amd64")
    assert not {blob.digest.removeprefix("sha256:") for blob in amd64.blobs} & blobs


def test_from_platform_pulls_that_child_of_a_multi_platform_base(tmp_path: Path, registry) -> None:
    """Two cluster images, one per platform, behind one index: FROM --platform picks its child."""
    made = contexts(tmp_path, **{arch: {"Kubefile": f"FROM --platform=linux/{arch} scratch\n"
                                                    f"RUN echo {arch} > etc/arch\n"} for arch in ("amd64", "arm64")})
    first = str(tmp_path / "first")
    manifests = []
    for context in made:
        assert _cli("--root", first, "build", "-t", f"base:{context.name}", str(context)).returncode == 0
        pushed = _cli("--root", first, "push", f"base:{context.name}", f"{registry.host}/clusters/base:{context.name}")
        assert pushed.returncode == 0, pushed.stderr
        data, media_type = fetch_manifest(registry, "clusters/base", context.name)
        manifests.append({"mediaType": media_type, "digest": sha256_digest(data), "size": len(data),
                          "platform": {"os": "linux", "architecture": context.name}})
    index = json.dumps({"schemaVersion": 2, "mediaType": INDEX, "manifests": manifests}).encode()
    put = requests.put(f"{registry.url}/v2/clusters/base/manifests/1", data=index,
                       headers={"Content-Type": INDEX}, timeout=30)
    assert put.status_code == 201, put.text
    base = f"{registry.host}/clusters/base:1"
    (derived,) = contexts(tmp_path, derived={"Kubefile": f"FROM --platform=linux/arm64 {base}\n"
                                                         "RUN cat etc/arch > etc/seen\n"})
    second = str(tmp_path / "second")
    built = _cli("--root", second, "build", "-t", "derived:1", str(derived))
    assert built.returncode == 0, built.stderr
    exported = tmp_path / "rootfs"
    assert _cli("--root", second, "export", "derived:1", "-o", str(exported)).returncode == 0
    assert (exported / "etc" / "seen").read_text() == "arm64\n"
    assert json.loads(_cli("--root", second, "inspect", "derived:1").stdout)["image"]["platform"] == "linux/arm64"

    (derived / "Kubefile").write_text(f"# the base in the store is arm64\nFROM --platform=linux/s390x {base}\n")
    clash = _cli("--root", second, "build", "-t", "derived:2", str(derived))
    assert clash.returncode != 0
    assert f"Kubefile:2: the base image {base} in the store is for linux/arm64, not linux/s390x" in clash.stderr
    assert f"kubenb pull --platform linux/s390x {base}" in clash.stderr
    missing = _cli("--root", second, "pull", "--platform", "linux/s390x", base)
    assert missing.returncode != 0
    assert "has no linux/s390x image (it offers linux/amd64, linux/arm64)" in missing.stderr


@pytest.mark.parametrize("written", ["linux", "amd64", "linux/", "linux/arm64/v8/extra", "linux/arm 64"])
def test_a_malformed_platform_is_an_error_naming_the_line(tmp_path: Path, written: str) -> None:
    (tmp_path / "Kubefile").write_text(f"ARG P=\"{written}\"\nFROM --platform=$P scratch\n")
    result = _cli("--root", str(tmp_path / "store"), "build", "-t", "p:1", str(tmp_path))
    assert result.returncode != 0
    assert "Kubefile:2: invalid platform" in result.stderr and "os/arch" in result.stderr
    option = _cli("--root", str(tmp_path / "store"), "build", "--platform", written, "-t", "p:1", str(tmp_path))
    assert option.returncode == 2 and "invalid platform" in option.stderr


def test_copy_chmod_sets_the_mode_and_chown_is_refused_naming_the_line(tmp_path: Path) -> None:
    (tmp_path / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (tmp_path / "run.sh").chmod(0o600)
    (tmp_path / "Kubefile").write_text("FROM scratch\nCOPY --chmod=0755 run.sh etc/\n")
    root = str(tmp_path / "store")
    assert _cli("--root", root, "build", "-t", "m:1", str(tmp_path)).returncode == 0
    assert _cli("--root", root, "export", "m:1", "-o", str(tmp_path / "out")).returncode == 0
    assert (tmp_path / "out" / "etc" / "run.sh").stat().st_mode & 0o7777 == 0o755
    for flag, message in (("--chown=1000:1000", "Kubefile:2: COPY --chown is not supported"),
                          ("--chmod=rwx", "Kubefile:2: COPY --chmod=rwx: expected an octal mode")):
        (tmp_path / "Kubefile").write_text(f"FROM scratch\nCOPY {flag} run.sh etc/\n")
        refused = _cli("--root", root, "build", "-t", "m:2", str(tmp_path))
        assert refused.returncode != 0 and message in refused.stderr


def test_a_bad_image_name_fails_before_any_work(tmp_path: Path) -> None:
    (tmp_path / "Kubefile").write_text("FROM scratch\nCOPY imageList manifests\n")
    (tmp_path / "imageList").write_text("busybox:1.36\n")
    refused = _cli("--root", str(tmp_path / "store"), "build", "-t", "My-Cluster:1",
                   "--registry-mirror", "docker.io=127.0.0.1:1", str(tmp_path))
    assert refused.returncode == 1
    assert "'My-Cluster:1' is not a valid image name" in refused.stderr and "127.0.0.1:1" not in refused.stderr
