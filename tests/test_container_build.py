"""The container build (``-b container``) against a real Podman API service, with a STAND-IN node.

No Kubernetes can be downloaded on these machines, so the node is tests/support/standin.py: a
busybox rootfs imported into Podman whose ``kubectl``/``crictl`` scripts stand in for k3s's,
honouring only the node contract of DESIGN.md. Everything else is real: Podman's
Docker-compatible API (started here on a socket in a temp folder), the docker SDK, the
docker-registry the operator's image is pulled from and the one that serves the exported image,
skopeo. The opt-in test at the end runs the real k3s image where a Docker host can pull it.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from IPython.core.interactiveshell import InteractiveShell

from kubenb.engine import BuildOptions, Engine
from kubenb.errors import Cancelled
from kubenb.events import Event, Message
from tests.support.oci import push, single_image
from tests.support.podman import PodmanService
from tests.support.registry import Registry, RegistryFactory
from tests.support.skopeo import Skopeo
from tests.support.standin import SYSTEM_IMAGES, import_node_image, make_standin_rootfs
from tests.test_hostile import assert_nothing_written, assert_one_clear_line, kubenb

pytestmark = pytest.mark.container

OPERATOR = "standin-operator/worker"
APP = "standin-app/web"


@pytest.fixture(scope="module")
def podman() -> Iterator[PodmanService]:
    """Podman's API service for this module; afterwards no container and no process of it is left."""
    service = PodmanService().start()
    try:
        yield service
        assert service.containers() == []
    finally:
        service.stop()
    assert service.process is not None and service.process.poll() is not None
    assert service.processes() == []


@pytest.fixture(autouse=True)
def docker_host(podman: PodmanService, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every build here (in-process or ``python -m kubenb``) talks to the test's Podman; each test
    leaves no container behind."""
    monkeypatch.setenv("DOCKER_HOST", podman.url)
    yield
    assert podman.containers() == []


@pytest.fixture(scope="module")
def pushed(registry: Registry) -> dict[str, str]:
    """The operator's image and an app image, in the test registry: reference -> manifest digest."""
    return {f"{registry.host}/{repository}:1": push(registry, repository, "1", single_image(repository))
            for repository in (OPERATOR, APP)}


@pytest.fixture(scope="module")
def node_image(podman: PodmanService, registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The stand-in node image; its operator pulls the operator image from the test registry."""
    work = tmp_path_factory.mktemp("standin")
    rootfs = make_standin_rootfs(work / "rootfs", operator_image=f"{registry.host}/{OPERATOR}:1")
    return _import(podman, rootfs, work)


def _import(podman: PodmanService, rootfs: Path, work: Path) -> str:
    name = f"localhost/kubenb-standin:{secrets.token_hex(4)}"
    return import_node_image(rootfs, name, work, podman=_podman_cli(podman, work))


def _podman_cli(podman: PodmanService, work: Path) -> str:
    """A podman wrapper script bound to the service's storage (import_node_image runs ``podman``)."""
    script = work / "podman"
    options = " ".join(podman.global_options())
    script.write_text(f"#!/bin/sh\nCONTAINERS_CONF={podman.folder}/containers.conf exec podman {options} \"$@\"\n")
    script.chmod(0o755)
    return str(script)


def _context(folder: Path, kubefile: str, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True)
    (folder / "Kubefile").write_text(kubefile)
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


def _operator_context(folder: Path, registry: Registry) -> Path:
    return _context(folder, "FROM scratch\nCOPY operator.yaml app.yaml manifests\n"
                            "RUN kubectl apply -f manifests/operator.yaml\nCMD kubectl apply -f manifests/app.yaml\n",
                    {"operator.yaml": "apiVersion: standin.kubenb/v1\nkind: StandinOperator\n"
                                                "metadata:\n  name: op\n  namespace: ops\n",
                     "app.yaml": f"apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n"
                                           f"  - name: web\n    image: {registry.host}/{APP}:1\n"})


def test_container_build_carries_the_image_only_the_cluster_pulled(
        tmp_path: Path, registry: Registry, pushed: dict[str, str], node_image: str, skopeo: Skopeo,
        registry_factory: RegistryFactory) -> None:
    """The operator's image is named by no file: only running the Kubefile on the node finds it.
    It ends up in registry/ with source cluster, and a stock registry serves it from the export."""
    root, context = tmp_path / "store", _operator_context(tmp_path / "context", registry)
    built = kubenb("--root", str(root), "build", "-b", "container", "--node-image", node_image, "-t", "demo:1",
                   str(context))
    assert built.returncode == 0, built.stderr
    assert "stand-in kubectl: the stand-in operator pulled" in built.stderr  # streamed from the node
    operator, app = (f"{registry.host}/{name}:1" for name in (OPERATOR, APP))
    annotations = json.loads(kubenb("--root", str(root), "inspect", "demo:1").stdout)["annotations"]
    carried = json.loads(annotations["io.kubenb.images"])
    assert set(carried) == {operator, app}  # the node's own images are not carried
    assert not set(carried) & set(SYSTEM_IMAGES)
    assert annotations["io.kubenb.builder"] == "container"
    pods = json.loads(annotations["io.kubenb.cluster-images"])
    assert [pod.split("/")[0] for pod in pods[operator]] == ["ops"]
    assert json.loads(annotations["io.kubenb.deploy-commands"]) == [
        "RUN kubectl apply -f manifests/operator.yaml", "CMD kubectl apply -f manifests/app.yaml"]
    exported = tmp_path / "export"
    assert kubenb("--root", str(root), "export", "demo:1", "-o", str(exported)).returncode == 0
    served = registry_factory(root=exported / "registry", read_only=True)
    for reference, digest in pushed.items():
        repository = reference.split("/", 1)[1].rsplit(":", 1)[0]
        raw = skopeo.inspect_raw(served, repository, "1")
        assert "sha256:" + hashlib.sha256(raw).hexdigest() == digest == carried[reference]
    listed = _list_images_from(tmp_path / "next", root, "demo:1")
    sources = {found["image"]: {place["source"] for place in found["found_in"]} for found in listed["images"]}
    assert sources[operator] == {"base", "cluster"}  # from the stored image's annotations
    assert sources[app] == {"base", "cluster"}  # a file named it too, and the cluster ran it


def _list_images_from(folder: Path, root: Path, base: str) -> dict[str, list[dict[str, object]]]:
    context = _context(folder, f"FROM {base}\n", {})
    listed = kubenb("--root", str(root), "list-images", "-o", "json", str(context))
    assert listed.returncode == 0, listed.stderr
    result: dict[str, list[dict[str, object]]] = json.loads(listed.stdout)
    return result


def test_a_failing_run_fails_the_build_with_its_line_and_output(tmp_path: Path, node_image: str) -> None:
    root = tmp_path / "store"
    context = _context(tmp_path / "context", "FROM scratch\nRUN echo about to fail on the node && exit 3\n", {})
    result = kubenb("--root", str(root), "build", "-b", "container", "--node-image", node_image, "-t", "bad:1",
                    str(context))
    assert_one_clear_line(result, "Kubefile:2", "exit status 3", "about to fail on the node")
    assert_nothing_written(root)


def test_a_pod_stuck_in_image_pull_back_off_names_the_image(tmp_path: Path, node_image: str) -> None:
    root = tmp_path / "store"
    context = _context(tmp_path / "context", "FROM scratch\nCOPY broken.yaml manifests\n"
                                             "RUN kubectl apply -f manifests/broken.yaml\n",
                       {"broken.yaml": "kind: Pod\nspec:\n  containers:\n  - image: nowhere.invalid/x:1\n"})
    result = kubenb("--root", str(root), "build", "-b", "container", "--node-image", node_image, "-t", "bad:1",
                    str(context))
    assert_one_clear_line(result, "cannot pull nowhere.invalid/x:1", "ImagePullBackOff")
    assert_nothing_written(root)


def test_a_cluster_that_never_settles_is_an_error_naming_the_pod(tmp_path: Path, node_image: str) -> None:
    root = tmp_path / "store"
    context = _context(tmp_path / "context", "FROM scratch\nCOPY stuck.yaml manifests\n"
                                             "RUN kubectl apply -f manifests/stuck.yaml\n",
                       {"stuck.yaml": "kind: Pod\nmetadata:\n  namespace: shop\nspec:\n  containers:\n"
                                      "  - image: registry.slow/x:1\n"})
    result = kubenb("--root", str(root), "build", "-b", "container", "--node-image", node_image,
                    "--wait-timeout", "3", "-t", "bad:1", str(context))
    assert_one_clear_line(result, "did not settle in 3 s", "shop/stuck-", "Pending", "--wait-timeout")
    assert_nothing_written(root)


def test_cancel_removes_the_node(tmp_path: Path, node_image: str, podman: PodmanService) -> None:
    """Cancelled while a RUN runs on the node: Cancelled, the container gone, the store unchanged."""
    root = tmp_path / "store"
    context = _context(tmp_path / "context", "FROM scratch\nRUN echo started; sleep 300\n", {})
    seen: list[str] = []

    def sink(event: Event) -> None:
        if isinstance(event, Message):
            seen.append(event.text)
            if event.text.strip() == "started":
                assert len(podman.containers()) == 1  # the node runs the RUN now
                threading.Thread(target=engine.cancel).start()  # as a Cancel button: another thread

    engine = Engine(root, events=sink)
    with pytest.raises(Cancelled):
        engine.build(BuildOptions(tag="c:1", context=context, kubefile=context / "Kubefile", node_image=node_image),
                     builder="container")
    assert "  started" in seen
    assert podman.containers() == []
    assert_nothing_written(root)


def test_keep_node_keeps_it_and_says_how_to_reach_it(tmp_path: Path, node_image: str,
                                                     podman: PodmanService) -> None:
    context = _context(tmp_path / "context", "FROM scratch\nRUN touch ran-on-the-node\n", {})
    result = kubenb("--root", str(tmp_path / "store"), "build", "-b", "container", "--node-image", node_image,
                    "--keep-node", "-t", "k:1", str(context))
    assert result.returncode == 0, result.stderr
    [kept] = podman.containers()
    try:
        name = podman.cli("inspect", "--format", "{{.Name}}", kept).strip()
        assert f"docker exec -it {name} sh" in result.stderr
        assert "ran-on-the-node" in podman.cli("exec", name, "ls", "/var/lib/kubenb/rootfs").split()
    finally:
        podman.cli("rm", "-f", kept)


def test_a_node_never_ready_is_an_error_with_its_log(tmp_path: Path, podman: PodmanService) -> None:
    work = tmp_path / "node"
    image = _import(podman, make_standin_rootfs(work / "rootfs", never_ready=True), work.parent)
    context = _context(tmp_path / "context", "FROM scratch\nRUN true\n", {})
    result = kubenb("--root", str(tmp_path / "store"), "build", "-b", "container", "--node-image", image,
                    "--wait-timeout", "2", "-t", "n:1", str(context))
    assert_one_clear_line(result, "not ready after 2 s", "the server is not ready", "stand-in k3s")


def test_a_node_image_missing_and_not_pullable_is_one_clear_line(tmp_path: Path) -> None:
    context = _context(tmp_path / "context", "FROM scratch\nRUN true\n", {})
    result = kubenb("--root", str(tmp_path / "store"), "build", "-b", "container", "--node-image",
                    "127.0.0.1:9/kubenb/no-such-node:1", "-t", "n:1", str(context))
    assert_one_clear_line(result, "127.0.0.1:9/kubenb/no-such-node:1", "cannot be pulled", "--node-image")


def test_no_docker_api_is_one_clear_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    context = _context(tmp_path / "context", "FROM scratch\nRUN true\n", {})
    result = kubenb("--root", str(tmp_path / "store"), "build", "-b", "container", "-t", "n:1", str(context))
    assert_one_clear_line(result, "no Docker Engine API reachable", "podman system service", "DOCKER_HOST")
    assert_nothing_written(tmp_path / "store")


def test_the_magic_builds_with_the_container_builder_in_the_build_panel(
        tmp_path: Path, registry: Registry, pushed: dict[str, str], node_image: str) -> None:
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "kubenb")
    context = _operator_context(tmp_path / "context", registry)
    body = (context / "Kubefile").read_text()
    outcome = shell.run_cell(f"%%kubefile --context {context} --root {tmp_path / 'store'} -t cell:1 "
                             f"--builder container --node-image {node_image} --background --out panel\n{body}")
    assert outcome.error_in_exec is None and outcome.error_before_exec is None
    panel = shell.user_ns.pop("panel")
    image = panel.wait()
    assert panel.error is None, panel.error
    assert image is not None and set(image.carried_images) == set(pushed)
    assert set(image.cluster_images) == set(pushed)  # the cluster ran both


def test_the_cluster_build_never_runs_a_kubefile_line_on_the_build_host(tmp_path: Path, node_image: str) -> None:
    """A RUN that writes a file: on the node (kept with --keep-node it would be seen), never in the
    build host's context or store."""
    context = _context(tmp_path / "context", "FROM scratch\nRUN touch /tmp/kubenb-ran-here-$$ ran-here\n", {})
    result = kubenb("--root", str(tmp_path / "store"), "build", "-b", "container", "--node-image", node_image,
                    "-t", "h:1", str(context))
    assert result.returncode == 0, result.stderr
    assert not list(Path("/tmp").glob("kubenb-ran-here-*"))
    assert not list(tmp_path.rglob("ran-here"))


@pytest.mark.k3s
def test_the_real_k3s_node(tmp_path: Path) -> None:
    """Opt-in (``KUBENB_K3S_IMAGE=rancher/k3s:v1.31.4-k3s1 pytest -m k3s``): the container build with
    the real k3s image, in the Podman service started here, which must be able to pull that image
    and the pod's (``KUBENB_K3S_POD_IMAGE``, default busybox): where it cannot, this is skipped."""
    image = os.environ.get("KUBENB_K3S_IMAGE")
    if not image:
        pytest.skip("set KUBENB_K3S_IMAGE to a rancher/k3s image to run the real-k3s test")
    pod_image = os.environ.get("KUBENB_K3S_POD_IMAGE", "docker.io/library/busybox:1.36")
    manifest = (f"apiVersion: v1\nkind: Pod\nmetadata:\n  name: sleeper\nspec:\n  containers:\n"
                f"  - name: sleeper\n    image: {pod_image}\n    command: [sleep, '3600']\n")
    context = _context(tmp_path / "context", "FROM scratch\nCOPY pod.yaml manifests\n"
                                             "RUN kubectl apply -f manifests/pod.yaml\n", {"pod.yaml": manifest})
    built = Engine(tmp_path / "store").build(
        BuildOptions(tag="k3s:1", context=context, kubefile=context / "Kubefile", node_image=image),
        builder="container")
    assert pod_image in built.carried_images
