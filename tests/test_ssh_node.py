"""The SSH node and the --host launcher, against a real OpenSSH sshd (tests/support/sshd.py).

The machine behind sshd is a chroot holding the stand-in node's rootfs (tests/support/standin.py):
busybox ``sh`` with stand-in ``kubectl``/``crictl`` scripts that STAND IN for k3s. Nothing runs
on the build host but sshd itself.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import paramiko
import pytest

from kubenb.builders.node import Node
from kubenb.builders.ssh_connect import SshTarget, connect, parse_ssh_url
from kubenb.builders.ssh_host import K3S_PATH, SshHostLauncher
from kubenb.builders.ssh_node import SshNode
from kubenb.errors import BuildError, Cancelled
from kubenb.events import CancelToken, Event, Message
from tests.support.sshd import Sshd, running_sshd
from tests.support.standin import make_standin_rootfs

pytestmark = pytest.mark.cloud


@pytest.fixture
def sshd() -> Iterator[Sshd]:
    with running_sshd(make_standin_rootfs) as running:
        yield running


def _node(sshd: Sshd) -> SshNode:
    target = parse_ssh_url(sshd.url)
    client = connect(target, key_file=sshd.user_key, known_hosts=sshd.known_hosts, cancel=CancelToken())
    return SshNode(client, target, key_file=sshd.user_key)


def test_parse_ssh_url() -> None:
    assert parse_ssh_url("ssh://me@example.org") == SshTarget("me", "example.org", 22)
    assert parse_ssh_url("ssh://root@127.0.0.1:2222") == SshTarget("root", "127.0.0.1", 2222)
    assert parse_ssh_url("ssh://[::1]:23") == SshTarget("root", "::1", 23)
    for bad in ("me@host", "ssh://me@host:0", "ssh://me@host:99999", "ssh://me@ho st", "http://host"):
        with pytest.raises(BuildError, match="is not an SSH address"):
            parse_ssh_url(bad)


def test_run_streams_lines_with_status_environment_and_folder(sshd: Sshd) -> None:
    node: Node = _node(sshd)
    seen: list[str] = []
    result = node.run("echo one; echo two >&2; pwd; echo \"$GREETING\"; exit 3", workdir="/tmp",
                      env={"GREETING": "it's a 'quoted' $value"}, on_output=seen.append)
    assert result.status == 3
    assert result.stdout.splitlines() == ["one", "/tmp", "it's a 'quoted' $value"]
    assert "two" in result.stderr.splitlines()
    assert set(seen) >= {"one", "two", "/tmp"}  # both streams, as they came (their interleaving is the OS's)
    assert not any(line.startswith("kubenb-ssh-pid") for line in seen)
    node.remove()


def test_put_folder_keeps_modes_and_symlinks_and_remove_leaves_the_host_as_found(sshd: Sshd, tmp_path: Path) -> None:
    source = tmp_path / "rootfs"
    (source / "manifests").mkdir(parents=True)
    (source / "manifests" / "app.yaml").write_text("kind: Pod\n")
    (source / "run.sh").write_text("#!/bin/sh\necho ran\n")
    (source / "run.sh").chmod(0o750)
    (source / "link").symlink_to("manifests/app.yaml")
    (source / "locked").mkdir(mode=0o500)
    (sshd.chroot / "srv").mkdir()
    (sshd.chroot / "srv" / "theirs").write_text("not kubenb's\n")
    node = _node(sshd)
    node.put_folder(source, "/srv/kubenb/build/rootfs")
    inside = sshd.chroot / "srv/kubenb/build/rootfs"
    assert (inside / "manifests/app.yaml").read_text() == "kind: Pod\n"
    assert (inside / "run.sh").stat().st_mode & 0o777 == 0o750
    assert os.readlink(inside / "link") == "manifests/app.yaml"
    assert (inside / "locked").stat().st_mode & 0o777 == 0o500
    assert node.run("./run.sh && cat link", workdir="/srv/kubenb/build/rootfs").stdout == "ran\nkind: Pod"
    node.remove()
    assert sorted(p.name for p in (sshd.chroot / "srv").iterdir()) == ["theirs"]  # only what kubenb made is gone
    node.remove()  # idempotent


def test_cancel_closes_the_channel_and_kills_the_command_on_the_machine(sshd: Sshd) -> None:
    node = _node(sshd)
    token = CancelToken()
    started = threading.Event()

    def output(line: str) -> None:
        if line == "started":
            started.set()

    threading.Thread(target=lambda: started.wait(30) and token.cancel(), daemon=True).start()
    with pytest.raises(Cancelled):
        node.run("sleep 300 & echo started; sleep 600", on_output=output, cancel=token)
    assert started.is_set()
    assert node.run("echo still usable").stdout == "still usable"
    assert sshd.commands_left() == []  # both sleeps killed, not left on the machine
    node.remove()


def test_unknown_host_key_is_refused_with_how_to_add_it(sshd: Sshd, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(BuildError) as caught:
        connect(parse_ssh_url(sshd.url), key_file=sshd.user_key, known_hosts=empty, cancel=CancelToken())
    text = str(caught.value)
    assert f"the host key of 127.0.0.1:{sshd.port} (ssh-ed25519 SHA256:" in text
    assert f"is not in {empty}" in text
    assert f"ssh-keyscan -p {sshd.port} 127.0.0.1 >> {empty}" in text
    assert empty.read_text() == ""  # nothing learnt behind the user's back


def test_changed_host_key_is_refused(sshd: Sshd, tmp_path: Path) -> None:
    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    kind, key = (tmp_path / "other_key.pub").read_text().split()[:2]
    recorded = tmp_path / "known_hosts"
    recorded.write_text(f"[127.0.0.1]:{sshd.port} {kind} {key}\n")
    with pytest.raises(BuildError) as caught:
        connect(parse_ssh_url(sshd.url), key_file=sshd.user_key, known_hosts=recorded, cancel=CancelToken())
    assert "is not the one" in str(caught.value)
    assert f"ssh-keygen -R '[127.0.0.1]:{sshd.port}' -f {recorded}" in str(caught.value)


def test_missing_known_hosts_file_wrong_key_and_closed_port_are_clear(sshd: Sshd, tmp_path: Path) -> None:
    target = parse_ssh_url(sshd.url)
    with pytest.raises(BuildError, match=r"--known-hosts .*: no such file"):
        connect(target, key_file=sshd.user_key, known_hosts=tmp_path / "nothing", cancel=CancelToken())
    stranger = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    with pytest.raises(BuildError, match=f"root@127.0.0.1:{sshd.port} refused the key {stranger}"):
        connect(target, key_file=stranger, known_hosts=sshd.known_hosts, cancel=CancelToken())
    closed = SshTarget("root", "127.0.0.1", _closed_port())
    with pytest.raises(BuildError, match=f"cannot reach 127.0.0.1:{closed.port} over SSH"):
        connect(closed, key_file=sshd.user_key, known_hosts=sshd.known_hosts, cancel=CancelToken())


def _closed_port() -> int:
    import socket  # noqa: PLC0415

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _launcher(sshd: Sshd, k3s_binary: Path | None = None) -> SshHostLauncher:
    return SshHostLauncher(parse_ssh_url(sshd.url), key_file=sshd.user_key, known_hosts=sshd.known_hosts,
                           k3s_binary=k3s_binary)


def test_host_with_kubectl_is_used_as_it_is(sshd: Sshd) -> None:
    events: list[Event] = []
    node = _launcher(sshd).start(events.append, CancelToken())
    assert node.run("kubectl get --raw /readyz").stdout == "ok"
    assert not (sshd.chroot / K3S_PATH.lstrip("/")).exists()
    node.remove()


def without_k3s(rootfs: Path) -> None:
    """The stand-in with its kubectl and crictl moved out of PATH: a machine with no k3s."""
    make_standin_rootfs(rootfs)
    (rootfs / "usr/lib/standin").mkdir(parents=True)
    for name in ("kubectl", "crictl", "k3s"):
        shutil.move(rootfs / "bin" / name, rootfs / "usr/lib/standin" / name)


# A stand-in for the k3s binary (STANDS IN for k3s: it is a script): like k3s it answers to the
# names kubectl and crictl, and `k3s server` runs until stopped.
STANDIN_K3S = """#!/bin/sh
case "$(basename "$0")" in
  kubectl) exec /usr/lib/standin/kubectl "$@" ;;
  crictl) exec /usr/lib/standin/crictl "$@" ;;
esac
[ "$1" = server ] || { echo "stand-in k3s: only 'server'" >&2; exit 1; }
echo "stand-in k3s server started"
while :; do sleep 1; done
"""


def test_host_without_k3s_needs_the_binary() -> None:
    with running_sshd(without_k3s) as sshd:
        with pytest.raises(BuildError) as caught:
            _launcher(sshd).start(lambda event: None, CancelToken())
        assert f"127.0.0.1:{sshd.port} has no kubectl and crictl" in str(caught.value)
        assert "--k3s-binary" in str(caught.value)


def test_host_without_k3s_gets_the_binary_installed_and_started(tmp_path: Path) -> None:
    binary = tmp_path / "k3s"
    binary.write_text(STANDIN_K3S)
    with running_sshd(without_k3s) as sshd:
        events: list[Event] = []
        node = _launcher(sshd, binary).start(events.append, CancelToken())
        assert (sshd.chroot / "usr/local/bin/k3s").read_text() == STANDIN_K3S
        assert os.readlink(sshd.chroot / "usr/local/bin/kubectl") == "k3s"
        assert node.run("kubectl get --raw /readyz").stdout == "ok"
        assert node.run("crictl images -o json").status == 0
        assert any(isinstance(e, Message) and "Installing k3s" in e.text for e in events)
        assert len(sshd.processes_in_chroot()) >= 1  # k3s server keeps running: the host is a k3s host now
        node.remove()


def test_environment_values_never_appear_in_the_machines_process_list(sshd: Sshd) -> None:
    """ARG and ENV values go to the shell on its stdin, not in the exec request's command line.
    (What this sees is the steady state while a command runs; before the shell's ``exec`` there
    was a moment, too short to catch here, when a command line built with them would show them.)"""
    node = _node(sshd)
    secret = "arg-value-nobody-may-see-7f3a"
    token = CancelToken()
    seen: list[list[str]] = []

    def output(line: str) -> None:
        if line == "running":  # the command runs: look at every command line on this host
            seen.append([path.read_bytes().decode(errors="replace") for path in Path("/proc").glob("[0-9]*/cmdline")
                         if _readable(path)])
            token.cancel()

    with pytest.raises(Cancelled):
        node.run('test "$TOKEN" = "$EXPECTED" && echo running; sleep 600', env={"TOKEN": secret, "EXPECTED": secret},
                 on_output=output, cancel=token)
    assert seen and seen[0] and not [line for line in seen[0] if secret in line]
    node.remove()


def _readable(path: Path) -> bool:
    try:
        path.read_bytes()
    except OSError:
        return False
    return True


def test_a_key_with_a_passphrase_or_no_key_at_all_is_one_clear_line(sshd: Sshd, tmp_path: Path) -> None:
    target = parse_ssh_url(sshd.url)
    locked = tmp_path / "locked"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "a passphrase", "-f", str(locked)], check=True)
    with pytest.raises(BuildError) as caught:
        connect(target, key_file=locked, known_hosts=sshd.known_hosts, cancel=CancelToken())
    assert str(caught.value) == (f"the SSH key {locked} is protected by a passphrase; "
                                 "load it into ssh-agent and leave out --ssh-key")
    garbage = tmp_path / "garbage"
    garbage.write_text("this is no key\n")
    with pytest.raises(BuildError) as caught:
        connect(target, key_file=garbage, known_hosts=sshd.known_hosts, cancel=CancelToken())
    assert str(caught.value) == (f"cannot read the SSH key {garbage}: not a valid OPENSSH private key file; "
                                 "give an OpenSSH private key (ed25519, ecdsa or rsa)")
    with pytest.raises(BuildError, match=r"--ssh-key .*/absent: no such file"):
        connect(target, key_file=tmp_path / "absent", known_hosts=sshd.known_hosts, cancel=CancelToken())


def test_cancel_stops_a_copy_and_the_half_copied_folder_is_removed(sshd: Sshd, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "rootfs"
    (source / "manifests").mkdir(parents=True)
    for number in range(40):
        (source / "manifests" / f"m{number}.yaml").write_text("kind: ConfigMap\n")
    token = CancelToken()
    target = parse_ssh_url(sshd.url)
    node = SshNode(connect(target, key_file=sshd.user_key, known_hosts=sshd.known_hosts, cancel=token), target,
                   key_file=sshd.user_key, cancel=token)
    real_put = paramiko.SFTPClient.put
    copied: list[str] = []

    def put(self: paramiko.SFTPClient, local: str, remote: str, *args: object, **kwargs: object) -> object:
        copied.append(remote)
        if len(copied) == 5:
            token.cancel()  # as a Cancel button would, while the copy runs
        return real_put(self, local, remote, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(paramiko.SFTPClient, "put", put)
    with pytest.raises(Cancelled):
        node.put_folder(source, "/srv/kubenb/rootfs")
    assert len(copied) == 5  # stopped there, not after the 40 files
    node.remove()
    assert not (sshd.chroot / "srv/kubenb").exists()
