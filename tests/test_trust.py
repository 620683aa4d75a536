"""Where credentials go, which host a TLS error names, and messages that say things once
(docs/reliability.md, "Secrets and TLS").

Every server here is real and on loopback: the docker-registry, fault-injecting fronts that play
token services and redirecting storage (tests/support/faulty.py), each recording what
Authorization and form it received, and a docker-registry serving TLS with a certificate from a
CA made by the test (tests/support/tls.py). 127.0.0.2 is "another host" than 127.0.0.1.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from kubenb.errors import AuthenticationError, RegistryError
from kubenb.registry import Credentials, Registries, RegistryClient
from tests.support.faulty import Fault, FaultyProxy, Redirect, TokenService
from tests.support.oci import push, single_image
from tests.support.registry import Registry, free_port
from tests.support.tls import TLSRegistry

SECRET = "s3cret-pw-71"


def kubenb(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kubenb", *args], capture_output=True, text=True,
                          timeout=120, check=False, cwd=cwd)


# -- where credentials go -----------------------------------------------------------------------


def test_basic_credentials_go_to_a_token_realm_on_another_host(registry: Registry, repo_name: str) -> None:
    """docker's behaviour, which Docker Hub needs: the realm (auth.docker.io) is not the registry."""
    image = single_image("realm-elsewhere")
    push(registry, repo_name, "v1", image)
    tokens = TokenService("robot", SECRET)
    with FaultyProxy(registry.url, bind="127.0.0.2", tokens=tokens) as realm:
        tokens.realm = f"{realm.url}/token"
        with FaultyProxy(registry.url, tokens=tokens) as front, \
                RegistryClient(front.host, credentials=Credentials("robot", SECRET)) as client:
            assert client.get_manifest(repo_name, "v1").digest == image.digest
        assert [request["authorization"].startswith("Basic ") for request in tokens.requests] == [True]
        assert realm.requests_to("/token") and not front.requests_to("/token")


def test_a_redirect_target_asking_for_credentials_gets_none(registry: Registry, repo_name: str,
                                                            tmp_path: Path) -> None:
    """Storage the registry redirects to answers 401 with a Bearer challenge of its own: kubenb
    must not fetch a token from the realm it names with the registry's credentials."""
    image = single_image("redirect-401")
    push(registry, repo_name, "v1", image)
    layer = image.layers[0]
    storage_tokens = TokenService("someone", "else")
    with FaultyProxy(registry.url, bind="127.0.0.2", tokens=storage_tokens) as storage, \
            FaultyProxy(registry.url, tokens=TokenService("robot", SECRET)) as front:
        front.add(Fault(f"/blobs/{layer.digest}", Redirect(storage.url), times=10))
        with RegistryClient(front.host, credentials=Credentials("robot", SECRET)) as client, \
                pytest.raises(AuthenticationError) as raised:
            client.download_blob(repo_name, layer.digest, tmp_path / "blob")
        assert storage_tokens.requests == []  # no token asked for, so no credentials sent there
        assert all("authorization" not in seen.headers for seen in storage.seen)
    assert str(raised.value).startswith(f"{storage.host}, where registry {front.host} redirected blob ")
    assert "asks for credentials" in str(raised.value) and SECRET not in str(raised.value)
    assert not (tmp_path / "blob").exists()


def test_a_refresh_token_is_never_posted_to_a_redirect_target(registry: Registry, repo_name: str) -> None:
    """The token request of an identity token is a form holding it: a 307 elsewhere is refused."""
    collector_tokens = TokenService("nobody", "-", refresh_token=SECRET)
    with FaultyProxy(registry.url, bind="127.0.0.2", tokens=collector_tokens) as collector, \
            FaultyProxy(registry.url) as relay:
        relay.add(Fault("/token", Redirect(collector.url), times=10))
        front_tokens = TokenService("nobody", "-", refresh_token=SECRET, realm=f"{relay.url}/token")
        with FaultyProxy(registry.url, tokens=front_tokens) as front, \
                RegistryClient(front.host, credentials=Credentials("<token>", SECRET)) as client, \
                pytest.raises(RegistryError) as raised:
            client.get_manifest(repo_name, "v1")
        assert relay.requests_to("/token", "POST")
        assert collector.seen == [] and collector_tokens.requests == []
    assert f"redirected a token request to another host ({collector.host})" in str(raised.value)
    assert SECRET not in str(raised.value)


def test_credentials_never_go_over_plain_http_to_a_remote_token_realm(registry: Registry, repo_name: str) -> None:
    """Even for a registry the user named insecure: that choice covers the registry, not the realm."""
    tokens = TokenService("robot", SECRET, realm="http://auth.example.invalid/token")
    with FaultyProxy(registry.url, tokens=tokens) as front:
        for insecure in (False, True):
            with RegistryClient(front.host, credentials=Credentials("robot", SECRET), insecure=insecure) as client, \
                    pytest.raises(RegistryError, match="plain HTTP on a remote host") as raised:
                client.get_manifest(repo_name, "v1")
            assert SECRET not in str(raised.value)
    assert tokens.requests == []


# -- TLS errors name the host that failed -------------------------------------------------------




def test_a_tls_error_after_a_redirect_names_the_redirect_target(
    registry: Registry, tls_registry: TLSRegistry, repo_name: str, tmp_path: Path,
) -> None:
    image = single_image("tls-redirect")
    push(registry, repo_name, "v1", image)
    layer = image.layers[0]
    with FaultyProxy(registry.url) as front:
        front.add(Fault(f"/blobs/{layer.digest}", Redirect(tls_registry.url), times=10))
        with RegistryClient(front.host, retries=0) as client, pytest.raises(RegistryError) as raised:
            client.download_blob(repo_name, layer.digest, tmp_path / "blob")
    message = str(raised.value)
    assert message.startswith(f"the TLS certificate of {tls_registry.host}, where registry {front.host} sent blob ")
    assert "is not trusted (" in message, message
    assert f"signed the one of {tls_registry.host}" in message
    assert f"registry {front.host} presented" not in message


def test_a_tls_error_at_the_token_realm_names_the_realm(
    registry: Registry, tls_registry: TLSRegistry, repo_name: str,
) -> None:
    tokens = TokenService(realm=f"{tls_registry.url}/token")
    with FaultyProxy(registry.url, tokens=tokens) as front, RegistryClient(front.host, retries=0) as client, \
            pytest.raises(RegistryError) as raised:
        client.get_manifest(repo_name, "v1")
    message = str(raised.value)
    assert message.startswith(f"the TLS certificate of {tls_registry.host}, where registry {front.host} sent "
                              "a token request, is not trusted")
    assert f"--insecure-registry {front.host} covers only the registry itself" in message


def test_a_refused_connection_after_a_redirect_names_the_redirect_target(
    registry: Registry, repo_name: str, tmp_path: Path,
) -> None:
    image = single_image("refused-redirect")
    push(registry, repo_name, "v1", image)
    layer = image.layers[0]
    nowhere = f"127.0.0.2:{free_port()}"
    with FaultyProxy(registry.url) as front:
        front.add(Fault(f"/blobs/{layer.digest}", Redirect(f"http://{nowhere}"), times=10))
        with RegistryClient(front.host, retries=0) as client, pytest.raises(RegistryError) as raised:
            client.download_blob(repo_name, layer.digest, tmp_path / "blob")
    assert str(raised.value).startswith(f"cannot connect to {nowhere} (where registry {front.host} sent blob ")
    assert "connection refused" in str(raised.value)


# -- mirrors carry no credentials ---------------------------------------------------------------


@pytest.mark.parametrize("target", [
    f"bob:{SECRET}@mirror.example:5000", f"https://bob:{SECRET}@mirror.example", f"{SECRET}@mirror.example",
])
def test_a_mirror_with_credentials_is_refused_and_never_echoed(tmp_path: Path, target: str) -> None:
    for command in (["save-images", "-o", str(tmp_path / "out"), "nginx:1.25"], ["build", "-t", "x:1", str(tmp_path)]):
        result = kubenb("--root", str(tmp_path / "store"), *command, "--registry-mirror", f"docker.io={target}")
        assert result.returncode != 0
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
        assert "credentials do not belong in a registry host name (…@mirror.example" in lines[0]
        assert "kubenb login mirror.example" in lines[0]
        assert SECRET not in result.stderr + result.stdout and "bob" not in result.stderr
    assert not (tmp_path / "out").exists() and not (tmp_path / "store").exists()


def test_registries_refuse_credentials_in_host_names_from_the_api() -> None:
    with pytest.raises(RegistryError) as raised:
        Registries(mirrors={"docker.io": f"bob:{SECRET}@127.0.0.1:5000"})
    assert SECRET not in str(raised.value) and "bob" not in str(raised.value)
    with pytest.raises(RegistryError, match="--insecure-registry: credentials do not belong"):
        Registries(insecure=[f"bob:{SECRET}@10.0.0.1:5000"])


# -- no message repeats itself ------------------------------------------------------------------


def repeated_phrase(line: str, length: int = 3) -> str | None:
    """A run of ``length`` words that occurs twice in ``line`` (quotes and punctuation ignored)."""
    words = [w.lower() for w in re.findall(r"[A-Za-z][A-Za-z0-9_-]*", line)]
    seen: set[tuple[str, ...]] = set()
    for start in range(len(words) - length + 1):
        phrase = tuple(words[start:start + length])
        if phrase in seen:
            return " ".join(phrase)
        seen.add(phrase)
    return None


def test_the_phrase_detector_finds_the_old_double_message() -> None:
    old = ("kubenb: 1 invalid image reference(s), first 'Bad Ref' at manifests/imageList:2: invalid image "
           "reference 'Bad Ref': whitespace is not allowed in a reference; fix it, or build with --skip-invalid")
    assert repeated_phrase(old) == "invalid image reference"


@pytest.fixture
def bad_context(tmp_path: Path) -> Path:
    context = tmp_path / "context"
    (context / "manifests").mkdir(parents=True)
    (context / "imageList").write_text("nginx:1.25\nBad Ref\nUPPER/case:1\n")
    (context / "Kubefile").write_text("FROM scratch\nCOPY imageList manifests\n")
    return context


def test_no_error_line_repeats_a_phrase(bad_context: Path, tmp_path: Path) -> None:
    store, out = str(tmp_path / "store"), str(tmp_path / "out")
    commands = [
        ["save-images", "-o", out, "Bad Ref"],
        ["save-images", "-o", out, "nginx", "UPPER/Case:1"],
        ["pull", ":x"],
        ["pull", "UPPER/Case"],
        ["tag", "a", "b..c"],
        ["tag", "b..c", "a"],
        ["build", "-t", "Bad:1", str(bad_context)],
        ["build", "-t", "ok:1", str(bad_context)],
        ["list-images", str(bad_context)],
        ["push", "a:1", "b..c"],
        ["push", "a:1", "reg.example/a@sha256:" + "0" * 64],
        ["rmi", ":x"],
        ["save-images", "-o", out, "--platform", "linux", "nginx"],
        ["save-images", "-o", out, "--registry-mirror", f"docker.io=bob:{SECRET}@h", "nginx"],
    ]
    for command in commands:
        result = kubenb("--root", store, *command)
        for line in result.stderr.splitlines():
            if line.startswith("kubenb"):
                assert repeated_phrase(line) is None, (command, line)
    assert kubenb("--root", store, "build", "-t", "ok:1", str(bad_context)).returncode == 1
