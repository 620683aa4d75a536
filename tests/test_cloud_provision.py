"""Provisioning through Libcloud (its dummy driver, recording calls): the order of the calls,
and that the machine is destroyed on every path where provisioning stops. The "created"
machine's address is a real sshd on 127.0.0.1 whose logins land in the stand-in node's rootfs
(it STANDS IN for k3s). Whole builds on such a machine are in tests/test_cloud_build.py."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubenb.builders.cloud import CloudLauncher
from kubenb.builders.cloud_providers import PROVIDERS, CloudProvider
from kubenb.errors import BuildError, Cancelled
from kubenb.events import CancelToken, Event, Message
from tests.support.dummy_cloud import SECRET_VARIABLE, RecordingDriver, register, steps
from tests.support.sshd import Sshd, running_sshd
from tests.support.standin import make_standin_rootfs

pytestmark = pytest.mark.cloud


@pytest.fixture
def sshd() -> Iterator[Sshd]:
    with running_sshd(make_standin_rootfs) as running:
        yield running


def launcher(sshd: Sshd | None, *, port: int | None = None, boot_timeout: float = 30.0) -> CloudLauncher:
    return CloudLauncher("dummy", size="Small", image="Ubuntu 9.10", user="root",
                         key_file=sshd.user_key if sshd else None,
                         ssh_port=port or (sshd.port if sshd else 22), boot_timeout=boot_timeout, poll_seconds=0.01,
                         create_arguments=(("ex_security_group_id", "sg-1"),))


def texts(events: list[Event]) -> list[str]:
    return [event.text for event in events if isinstance(event, Message)]


def test_create_wait_connect_then_remove_destroys(sshd: Sshd) -> None:
    events: list[Event] = []
    with register(RecordingDriver(pending_polls=2)) as driver:
        node = launcher(sshd).start(events.append, CancelToken())
        assert steps(driver.calls) == ["create", "list"]
        assert node.run("kubectl get --raw /readyz").stdout == "ok"
        driver.calls.append("run")
        node.remove()
        node.remove()  # once only
    assert steps(driver.calls) == ["create", "list", "run", "destroy"]
    assert driver.machines == []
    public = (sshd.user_key.parent / "id_ed25519.pub").read_text().strip()
    assert driver.auth[0].pubkey == public  # the machine was given the --ssh-key to let kubenb in
    assert driver.extra[0] == {"ex_security_group_id": "sg-1"}  # --cloud-arg, as given
    made = [text for text in texts(events) if text.startswith("Creating the machine kubenb-build-")]
    assert made and "Connecting to root@127.0.0.1" in " ".join(texts(events))


def test_create_failing_after_the_machine_exists_destroys_it(sshd: Sshd) -> None:
    with register(RecordingDriver(fail_create="after")) as driver, pytest.raises(BuildError) as caught:
        launcher(sshd).start(lambda event: None, CancelToken())
    assert "dummy: cannot create the machine: the request timed out" in str(caught.value)
    assert steps(driver.calls) == ["create", "list", "destroy"]
    assert driver.machines == []


def test_create_failing_before_any_machine_destroys_nothing(sshd: Sshd) -> None:
    with register(RecordingDriver(fail_create="before")) as driver, pytest.raises(BuildError, match="quota"):
        launcher(sshd).start(lambda event: None, CancelToken())
    assert steps(driver.calls) == ["create", "list"]  # looked for it by its name: none
    assert driver.machines == []


def test_cancel_while_the_machine_starts_destroys_it(sshd: Sshd) -> None:
    token = CancelToken()
    with register(RecordingDriver(pending_polls=1000, on_list=token.cancel)) as driver, pytest.raises(Cancelled):
        launcher(sshd).start(lambda event: None, token)
    assert steps(driver.calls) == ["create", "list", "destroy"]
    assert driver.machines == []


def test_ssh_unreachable_destroys_the_machine() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = int(probe.getsockname()[1])
    with register(RecordingDriver()) as driver, pytest.raises(BuildError) as caught:
        launcher(None, port=closed, boot_timeout=0.5).start(lambda event: None, CancelToken())
    assert f"cannot reach 127.0.0.1:{closed} over SSH" in str(caught.value)
    assert steps(driver.calls) == ["create", "list", "destroy"]
    assert driver.machines == []


def test_no_k3s_on_the_machine_destroys_it(tmp_path: Path) -> None:
    def without_kubectl(rootfs: Path) -> None:
        make_standin_rootfs(rootfs)
        (rootfs / "bin" / "kubectl").unlink()

    with running_sshd(without_kubectl) as sshd, register(RecordingDriver()) as driver, \
            pytest.raises(BuildError, match="has no kubectl and crictl"):
        launcher(sshd).start(lambda event: None, CancelToken())
    assert steps(driver.calls)[-1] == "destroy"
    assert driver.machines == []


def test_a_failing_destroy_is_retried_then_names_the_machine(sshd: Sshd) -> None:
    with register(RecordingDriver(fail_destroy=1)) as driver:
        launcher(sshd).start(lambda event: None, CancelToken()).remove()
    assert driver.calls.count("destroy") == 2 and driver.machines == []
    with register(RecordingDriver(fail_destroy=99)) as driver:
        node = launcher(sshd).start(lambda event: None, CancelToken())
        with pytest.raises(BuildError) as caught:
            node.remove()
    assert f"cannot delete the machine {driver.machines[0].name}" in str(caught.value)
    assert "delete it in the provider's console" in str(caught.value)


def test_credentials_come_from_the_environment_and_are_never_shown(sshd: Sshd, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SECRET_VARIABLE, raising=False)
    with register(RecordingDriver(), variables=(SECRET_VARIABLE,)) as driver, pytest.raises(BuildError) as caught:
        launcher(sshd).start(lambda event: None, CancelToken())
    assert f"needs the environment variable {SECRET_VARIABLE}" in str(caught.value)
    assert driver.calls == []
    secret = "s3cr3t-Value-only-the-cloud-knows"
    monkeypatch.setenv(SECRET_VARIABLE, secret)
    events: list[Event] = []
    with register(RecordingDriver(fail_create="after", error_text=f"(signature {secret})"),
                  variables=(SECRET_VARIABLE,)) as driver, pytest.raises(BuildError) as caught:
        launcher(sshd).start(events.append, CancelToken())
    assert secret not in str(caught.value) and "(signature ***)" in str(caught.value)
    assert all(secret not in text for text in texts(events))
    assert driver.machines == []


def test_unknown_provider_size_and_image_are_clear(sshd: Sshd) -> None:
    with pytest.raises(BuildError, match="not a provider kubenb knows; use one of aliyun_ecs, azure_arm, ec2, gce"):
        CloudLauncher("nimbus", size="s", image="i").start(lambda event: None, CancelToken())
    with register(RecordingDriver()) as driver, pytest.raises(BuildError, match="dummy has no size 'Huge'; choose one"):
        CloudLauncher("dummy", size="Huge", image="1").start(lambda event: None, CancelToken())
    assert driver.calls == []
    assert {"aliyun_ecs", "ec2", "gce", "azure_arm", "openstack"} <= set(PROVIDERS)
    assert isinstance(PROVIDERS["aliyun_ecs"], CloudProvider)


def test_the_real_providers_name_their_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(BuildError, match="needs the environment variables ALIBABA_CLOUD_ACCESS_KEY_ID, "
                                         "ALIBABA_CLOUD_ACCESS_KEY_SECRET"):
        PROVIDERS["aliyun_ecs"].driver("cn-hangzhou")
    driver = PROVIDERS["aliyun_ecs"].driver("cn-hangzhou", {"ALIBABA_CLOUD_ACCESS_KEY_ID": "id",
                                                           "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "secret"})
    assert driver.region == "cn-hangzhou"  # a real Libcloud ECS driver, made without any network call


def test_each_provider_installs_the_key_its_own_way() -> None:
    gce = PROVIDERS["gce"].key_arguments
    assert gce is not None
    assert gce("ssh-ed25519 AAAA me", "kubenb") == {
        "ex_metadata": {"items": [{"key": "ssh-keys", "value": "kubenb:ssh-ed25519 AAAA me"}]}}
    azure = PROVIDERS["azure_arm"].key_arguments
    assert azure is not None and azure("ssh-ed25519 AAAA me", "kubenb")["ex_user_name"] == "kubenb"
    ec2 = PROVIDERS["ec2"].key_arguments
    assert ec2 is not None and ec2("ssh-ed25519 AAAA me", "root")["auth"].pubkey == "ssh-ed25519 AAAA me"
    assert PROVIDERS["aliyun_ecs"].key_arguments is None  # ECS takes a password or a key pair name (--cloud-arg)
