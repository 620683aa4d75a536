"""``kubenb build -b cloud`` end to end, through a real OpenSSH sshd.

The machine behind sshd is a chroot holding the stand-in node (tests/support/standin.py): it
STANDS IN for k3s (busybox ``sh``, ``kubectl``/``crictl`` scripts honouring the node contract),
since no Kubernetes can be downloaded here. Its "operator" pulls an image no file names; the
build must carry it with source ``cluster``. The images come from a local docker-registry
(``DemoRegistry``) through ``--registry-mirror``. The same build runs on a machine "provisioned"
through Libcloud's dummy driver whose address is that sshd: destroyed on every path.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from IPython.core.interactiveshell import InteractiveShell

from kubenb.builders import BuildOptions, build
from kubenb.builders.options import CloudOptions
from kubenb.cli import main
from kubenb.demo import DemoRegistry
from kubenb.errors import BuildError, Cancelled
from kubenb.events import CancelToken, Event, Message
from kubenb.store import Store
from tests.support.dummy_cloud import SECRET_VARIABLE, RecordingDriver, register, steps
from tests.support.sshd import Sshd, running_sshd
from tests.support.standin import make_standin_rootfs
from tests.test_ssh_node import STANDIN_K3S, without_k3s

pytestmark = pytest.mark.cloud

OPERATOR = "docker.io/kubenb/operator-worker:1"
APP = "busybox:1.36"
KUBEFILE = ("FROM scratch\nCOPY app.yaml manifests\nCOPY operator.yaml manifests\n"
            "RUN kubectl apply -f manifests/\n")  # a folder, as users write it


@pytest.fixture(scope="module")
def images() -> Iterator[DemoRegistry]:
    with DemoRegistry(["kubenb/operator-worker:1", APP]) as registry:
        yield registry


@pytest.fixture
def sshd() -> Iterator[Sshd]:
    with running_sshd(functools.partial(make_standin_rootfs, operator_image=OPERATOR)) as running:
        yield running


def make_context(tmp_path: Path, kubefile: str = KUBEFILE) -> Path:
    context = tmp_path / "context"
    context.mkdir()
    (context / "Kubefile").write_text(kubefile)
    (context / "app.yaml").write_text(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: app\nspec:\n  containers:\n  - name: app\n"
        f"    image: {APP}\n")
    (context / "operator.yaml").write_text(
        "apiVersion: standin.kubenb.test/v1\nkind: StandinOperator\nmetadata:\n  name: worker\n")
    return context


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kubenb", *args], capture_output=True, text=True, timeout=300,
                          check=False)


def host_args(sshd: Sshd, images: DemoRegistry, root: Path) -> list[str]:
    return ["--root", str(root), "build", "-b", "cloud", "--host", sshd.url, "--ssh-key", str(sshd.user_key),
            "--known-hosts", str(sshd.known_hosts), f"--registry-mirror=docker.io={images.host}"]


def assert_machine_clean(sshd: Sshd) -> None:
    assert sshd.commands_left() == []
    assert not (sshd.chroot / "var/lib/kubenb").exists()  # the build folder kubenb made there is gone


def test_cloud_build_on_a_host_carries_what_the_operator_pulled(sshd: Sshd, images: DemoRegistry,
                                                                 tmp_path: Path) -> None:
    root = tmp_path / "store"
    result = cli(*host_args(sshd, images, root), "-t", "demo:1", str(make_context(tmp_path)))
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    assert "stand-in kubectl: the stand-in operator pulled docker.io/kubenb/operator-worker:1" in output
    image = Store(root).get("demo:1")
    assert OPERATOR in json.loads(image.annotations["io.kubenb.images"])
    assert image.cluster_images.get(OPERATOR)  # with the pod that ran it
    exported = tmp_path / "exported"
    assert cli("--root", str(root), "export", "demo:1", "-o", str(exported)).returncode == 0
    repositories = exported / "registry/docker/registry/v2/repositories"
    assert (repositories / "kubenb/operator-worker").is_dir()
    assert (repositories / "library/busybox").is_dir()
    checked = cli("--root", str(root), "check", "--registry-folder", str(exported / "registry"))
    assert checked.returncode == 0, checked.stderr
    derived = tmp_path / "derived"
    derived.mkdir()
    (derived / "Kubefile").write_text("FROM demo:1\n")
    listed = cli("--root", str(root), "list-images", "-o", "json", str(derived))
    assert listed.returncode == 0, listed.stderr
    sources = {found["image"]: {place["source"] for place in found["found_in"]}
               for found in json.loads(listed.stdout)["images"]}
    assert sources[OPERATOR] == {"base", "cluster"}  # list-images shows it with source cluster
    assert_machine_clean(sshd)
    key = sshd.user_key.read_text()
    assert all(line not in output for line in key.splitlines()[1:-1])  # no key material shown


def test_a_failing_run_on_the_host_fails_with_its_line_and_output(sshd: Sshd, images: DemoRegistry,
                                                                  tmp_path: Path) -> None:
    root = tmp_path / "store"
    kubefile = KUBEFILE + "RUN echo about to fail; echo the reason >&2; exit 7\n"
    result = cli(*host_args(sshd, images, root), "-t", "demo:1", str(make_context(tmp_path, kubefile)))
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("kubenb: ") and "Traceback" not in result.stderr
    assert "Kubefile:5: RUN failed on the build node with exit status 7" in last
    assert "about to fail" in last and "the reason" in last
    assert Store(root).images() == []
    assert_machine_clean(sshd)


def test_flags_of_cloud_need_the_cloud_builder_and_a_machine(tmp_path: Path) -> None:
    context = make_context(tmp_path)
    result = cli("--root", str(tmp_path / "store"), "build", "--host", "ssh://root@127.0.0.1", "-t", "d:1",
                 str(context))
    assert result.returncode == 1
    assert result.stderr.strip() == "kubenb: --host is an option of -b cloud, not -b lite; add -b cloud, or leave " \
                                    "them out"
    result = cli("--root", str(tmp_path / "store"), "build", "-b", "cloud", "-t", "d:1", str(context))
    assert result.returncode == 1
    assert "kubenb: -b cloud needs a machine: --host ssh://user@host[:port], or --cloud PROVIDER" in result.stderr
    result = cli("--root", str(tmp_path / "store"), "build", "-b", "cloud", "--host", "root@nowhere", "-t", "d:1",
                 str(context))
    assert result.stderr.strip().endswith("is not an SSH address; write it as ssh://user@host or "
                                          "ssh://user@host:port")
    result = cli("--root", str(tmp_path / "store"), "build", "-b", "cloud", "--cloud", "ec2", "--cloud-arg",
                 "size=big", "-t", "d:1", str(context))
    assert result.returncode == 2 and "expected ex_NAME=VALUE (a provider's own argument), got 'size'" in result.stderr
    assert not (tmp_path / "store").exists() or Store(tmp_path / "store").images() == []


# --- a machine "provisioned" through Libcloud's dummy driver, its address the sshd above ---

def dummy_options(sshd: Sshd, images: DemoRegistry, context: Path) -> BuildOptions:
    return BuildOptions(tag="demo:1", context=context, kubefile=context / "Kubefile",
                        mirrors={"docker.io": images.host},
                        cloud=CloudOptions(provider="dummy", size="Small", image="Ubuntu 9.10",
                                           ssh_key=sshd.user_key, ssh_port=sshd.port))


class Recorder:
    """Puts the build's connect and RUN into the driver's call list, so one list has the order."""

    def __init__(self, driver: RecordingDriver, cancel_on_run: CancelToken | None = None) -> None:
        self.driver = driver
        self.cancel_on_run = cancel_on_run
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)
        if isinstance(event, Message):
            if event.text.startswith("Connecting to "):
                self.driver.calls.append("connect")
            elif event.text.startswith("On the node: RUN"):
                self.driver.calls.append("run")
            elif self.cancel_on_run is not None and event.level == "output" and "about to sleep" in event.text:
                threading.Thread(target=self.cancel_on_run.cancel, daemon=True).start()


def test_provisioned_machine_is_created_used_and_destroyed(sshd: Sshd, images: DemoRegistry, tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    with register(RecordingDriver(pending_polls=0)) as driver:
        recorder = Recorder(driver)
        image = build(dummy_options(sshd, images, make_context(tmp_path)), builder="cloud", store=store,
                      events=recorder)
    assert steps(driver.calls) == ["create", "list", "connect", "run", "destroy"]
    assert driver.machines == []
    assert OPERATOR in image.cluster_images
    assert sshd.commands_left() == []


def test_provisioned_machine_is_destroyed_when_a_run_fails(sshd: Sshd, images: DemoRegistry, tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    context = make_context(tmp_path, KUBEFILE + "RUN exit 3\n")
    with register(RecordingDriver(pending_polls=0)) as driver, pytest.raises(BuildError, match="exit status 3"):
        build(dummy_options(sshd, images, context), builder="cloud", store=store, events=Recorder(driver))
    assert steps(driver.calls) == ["create", "list", "connect", "run", "destroy"]
    assert driver.machines == [] and store.images() == []


def test_provisioned_machine_is_destroyed_on_cancel_during_a_run(sshd: Sshd, images: DemoRegistry,
                                                                 tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    token = CancelToken()
    context = make_context(tmp_path, KUBEFILE + "RUN echo about to sleep; sleep 600\n")
    with register(RecordingDriver(pending_polls=0)) as driver, pytest.raises(Cancelled):
        build(dummy_options(sshd, images, context), builder="cloud", store=store,
              events=Recorder(driver, cancel_on_run=token), cancel=token)
    assert steps(driver.calls)[-1] == "destroy" and "run" in driver.calls
    assert driver.machines == [] and store.images() == []
    assert sshd.commands_left() == []  # the sleep was killed, not left on the machine


def test_provisioned_build_from_the_command_line_shows_no_credential(sshd: Sshd, images: DemoRegistry,
                                                                     tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "dummy-cloud-secret-Value-42"
    monkeypatch.setenv(SECRET_VARIABLE, secret)
    out, err = io.StringIO(), io.StringIO()
    with register(RecordingDriver(pending_polls=0), variables=(SECRET_VARIABLE,)) as driver, \
            contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(["--root", str(tmp_path / "store"), "build", "-b", "cloud", "--cloud", "dummy", "--size",
                       "Small", "--image", "Ubuntu 9.10", "--ssh-key", str(sshd.user_key), "--ssh-port",
                       str(sshd.port), f"--registry-mirror=docker.io={images.host}", "-t", "demo:1",
                       str(make_context(tmp_path))])
    assert status == 0, err.getvalue()
    assert steps(driver.calls)[-1] == "destroy" and driver.machines == []
    assert secret not in out.getvalue() + err.getvalue()
    assert "Creating the machine kubenb-build-" in out.getvalue() + err.getvalue()


def test_the_magic_builds_with_the_cloud_builder_in_the_build_panel(sshd: Sshd, images: DemoRegistry,
                                                                     tmp_path: Path) -> None:
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "kubenb")
    context = make_context(tmp_path)
    outcome = shell.run_cell(
        f"%%kubefile --context {context} --root {tmp_path / 'store'} -t cell:1 --builder cloud --host {sshd.url} "
        f"--ssh-key {sshd.user_key} --known-hosts {sshd.known_hosts} --registry-mirror docker.io={images.host} "
        f"--background --out panel\n{KUBEFILE}")
    assert outcome.error_in_exec is None and outcome.error_before_exec is None
    panel = shell.user_ns.pop("panel")
    image = panel.wait()
    assert panel.error is None, panel.error
    assert image is not None and OPERATOR in image.cluster_images
    assert_machine_clean(sshd)


def test_ctrl_c_during_a_run_on_the_host_stops_cleanly(sshd: Sshd, images: DemoRegistry, tmp_path: Path) -> None:
    root = tmp_path / "store"
    context = make_context(tmp_path, KUBEFILE + "RUN echo about to sleep; sleep 600\n")
    process = subprocess.Popen([sys.executable, "-m", "kubenb", *host_args(sshd, images, root), "-t", "demo:1",
                                str(context)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    lines = []
    for line in process.stdout:
        lines.append(line)
        if line.strip() == "about to sleep":  # the RUN's own output: it runs on the machine now
            process.send_signal(signal.SIGINT)
            break
    rest, _ = process.communicate(timeout=120)
    assert process.returncode == 130, "".join(lines) + rest
    assert "Traceback" not in rest
    assert Store(root).images() == []
    assert_machine_clean(sshd)


def test_keep_node_leaves_the_host_as_the_build_left_it_and_says_how_to_reach_it(
        sshd: Sshd, images: DemoRegistry, tmp_path: Path) -> None:
    root = tmp_path / "store"
    result = cli(*host_args(sshd, images, root), "--keep-node", "-t", "demo:1", str(make_context(tmp_path)))
    assert result.returncode == 0, result.stderr
    reach = f"ssh -i {sshd.user_key} -p {sshd.port} root@127.0.0.1"
    assert f"kept the build node (--keep-node): {reach}" in result.stdout + result.stderr
    assert (sshd.chroot / "var/lib/kubenb/rootfs/manifests/app.yaml").is_file()  # there to look into


def test_a_host_without_k3s_builds_with_the_binary_given(images: DemoRegistry, tmp_path: Path) -> None:
    """--k3s-binary: copied, linked and started as build.md says (here a stand-in for the k3s binary,
    a script answering to kubectl, crictl and `server`), then the build runs on it."""
    binary = tmp_path / "k3s"
    binary.write_text(STANDIN_K3S)

    def machine(rootfs: Path) -> None:
        without_k3s(rootfs)
        (rootfs / "etc/standin/operator-image").write_text(OPERATOR)

    root = tmp_path / "store"
    with running_sshd(machine) as sshd:
        result = cli(*host_args(sshd, images, root), "--k3s-binary", str(binary), "-t", "demo:1",
                     str(make_context(tmp_path)))
        assert result.returncode == 0, result.stderr
        assert f"Installing k3s on 127.0.0.1:{sshd.port} from {binary}" in result.stdout + result.stderr
        assert os.readlink(sshd.chroot / "usr/local/bin/crictl") == "k3s"
        assert not (sshd.chroot / "var/lib/kubenb").exists()
    assert OPERATOR in Store(root).get("demo:1").cluster_images
