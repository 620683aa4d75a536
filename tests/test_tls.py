"""TLS registries: a private CA with --registry-ca, --insecure-registry, and a clear refusal otherwise.

A real docker-registry serves HTTPS on 127.0.0.1 with a certificate from a CA made by the test
(tests/support/tls.py). A loopback registry may speak plain HTTP, but one that serves TLS is
reached over HTTPS and verified like any other: an untrusted certificate is refused unless the
user trusts its CA (``--registry-ca``) or names the registry insecure.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kubenb.errors import RegistryError
from kubenb.registry import RegistryClient, login
from tests.support.oci import push, single_image
from tests.support.tls import TLSFiles, TLSRegistry

pytestmark = pytest.mark.registry


def kubenb_cli(*args: str, env: dict[str, str] | None = None,
               stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kubenb", *args], input=stdin, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300, check=False)




@pytest.fixture
def pushed(tls_registry: TLSRegistry, repo_name: str) -> tuple[str, str]:
    """(reference, manifest digest) of a small image pushed over verified TLS."""
    digest = push(tls_registry.url, repo_name, "v1", single_image(repo_name), verify=str(tls_registry.files.ca))
    return f"{tls_registry.host}/{repo_name}:v1", digest


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """No saved credentials, and no CA bundle from the environment, for the test and its CLI runs."""
    env = {"REGISTRY_AUTH_FILE": str(tmp_path / "auth.json")}
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("REGISTRY_AUTH_FILE", env["REGISTRY_AUTH_FILE"])
    return env


def folder_digest(folder: Path, repository: str, tag: str) -> str:
    """The manifest digest the registry folder links for repository:tag."""
    link = folder / "docker/registry/v2/repositories" / repository / "_manifests/tags" / tag / "current/link"
    digest = link.read_text().strip()
    data = (folder / "docker/registry/v2/blobs/sha256" / digest[7:9] / digest[7:] / "data").read_bytes()
    assert "sha256:" + hashlib.sha256(data).hexdigest() == digest
    return digest


def skopeo_cert_dir(files: TLSFiles, tmp_path: Path) -> Path:
    """A folder in the layout skopeo's --cert-dir wants: the CA as ca.crt."""
    folder = tmp_path / "certs"
    folder.mkdir(exist_ok=True)
    shutil.copy(files.ca, folder / "ca.crt")
    return folder


@pytest.mark.usefixtures("isolated")
def test_an_untrusted_certificate_is_refused_with_both_ways_out(
    tls_registry: TLSRegistry, pushed: tuple[str, str], tmp_path: Path,
) -> None:
    reference, _ = pushed
    output = tmp_path / "out"
    result = kubenb_cli("save-images", "-o", str(output), reference)
    assert result.returncode == 1
    line = result.stderr.splitlines()[-1]  # the one error line, after the progress lines
    assert line.startswith("kubenb: ")
    assert tls_registry.host in line and "not trusted" in line
    assert "--registry-ca" in line and f"--insecure-registry {tls_registry.host}" in line
    assert "Traceback" not in line
    assert not output.exists() or not list(output.rglob("data"))


@pytest.mark.usefixtures("isolated")
def test_registry_ca_trusts_the_private_ca(
    tls_registry: TLSRegistry, pushed: tuple[str, str], tmp_path: Path, skopeo,  # type: ignore[no-untyped-def]
) -> None:
    reference, digest = pushed
    output = tmp_path / "out"
    result = kubenb_cli("save-images", "-o", str(output), "--registry-ca", str(tls_registry.files.ca), reference)
    assert result.returncode == 0, result.stderr
    repository = reference.split("/", 1)[1].rsplit(":", 1)[0]
    assert folder_digest(output, repository, "v1") == digest
    # skopeo, verifying with the same CA, sees the same manifest the folder holds
    raw = skopeo.run("inspect", "--raw", "--cert-dir", str(skopeo_cert_dir(tls_registry.files, tmp_path)),
                     f"docker://{reference}")
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == digest


@pytest.mark.usefixtures("isolated")
def test_insecure_registry_uses_tls_without_verification(
    tls_registry: TLSRegistry, pushed: tuple[str, str], tmp_path: Path,
) -> None:
    reference, digest = pushed
    output = tmp_path / "out"
    result = kubenb_cli("save-images", "-o", str(output), "--insecure-registry", tls_registry.host, reference)
    assert result.returncode == 0, result.stderr
    assert "InsecureRequestWarning" not in result.stderr
    assert folder_digest(output, reference.split("/", 1)[1].rsplit(":", 1)[0], "v1") == digest


def test_a_loopback_tls_registry_is_spoken_to_over_https(tls_registry: TLSRegistry,
                                                         tls_files: TLSFiles) -> None:
    with RegistryClient(tls_registry.host, ca_files=[tls_files.ca]) as client:
        client.ping()
        assert client.base_url == f"https://{tls_registry.host}"
    with RegistryClient(tls_registry.host) as client, pytest.raises(RegistryError, match="not trusted"):
        client.ping()  # never a silent fallback to no verification (or to plain HTTP)


def test_a_ca_file_that_is_not_pem_is_an_error_naming_it(tls_registry: TLSRegistry, tmp_path: Path) -> None:
    bad = tmp_path / "not-a-ca.pem"
    bad.write_text("hello\n")
    with pytest.raises(RegistryError, match=r"not-a-ca\.pem"):
        RegistryClient(tls_registry.host, ca_files=[bad])
    with pytest.raises(RegistryError, match="does not exist"):
        RegistryClient(tls_registry.host, ca_files=[tmp_path / "missing.pem"])


def test_the_ca_is_trusted_in_addition_to_the_system_cas(tls_files: TLSFiles) -> None:
    from kubenb.registry.transport import tls_context  # noqa: PLC0415

    system = len(tls_context().get_ca_certs())
    assert len(tls_context([tls_files.ca]).get_ca_certs()) == system + 1


def test_login_over_tls_with_the_ca(tls_files: TLSFiles, tmp_path: Path, isolated: dict[str, str]) -> None:
    with TLSRegistry(tmp_path / "auth-tls", tls_files, username="tls-user", password="tls-secret-9f3") as running:
        with pytest.raises(RegistryError, match="not trusted"):
            login(running.host, "tls-user", "tls-secret-9f3")
        path = login(running.host, "tls-user", "tls-secret-9f3", ca_files=[tls_files.ca])
        assert path == Path(isolated["REGISTRY_AUTH_FILE"])
        result = kubenb_cli("login", running.host, "-u", "tls-user", "--password-stdin",
                            "--registry-ca", str(tls_files.ca), env=isolated, stdin="tls-secret-9f3\n")
        assert result.returncode == 0, result.stderr
        assert "tls-secret-9f3" not in result.stdout + result.stderr


def test_a_build_pulls_through_tls_with_registry_ca(
    tls_registry: TLSRegistry, pushed: tuple[str, str], tmp_path: Path, isolated: dict[str, str],
) -> None:
    reference, digest = pushed
    context = tmp_path / "context"
    context.mkdir()
    (context / "Kubefile").write_text("FROM scratch\nCOPY imageList manifests\n")
    (context / "imageList").write_text(reference + "\n")
    root = tmp_path / "store"
    refused = kubenb_cli("--root", str(root), "build", "-t", "tls:1", str(context), env=isolated)
    assert refused.returncode == 1 and "--registry-ca" in refused.stderr.splitlines()[-1]
    built = kubenb_cli("--root", str(root), "build", "-t", "tls:1", "--registry-ca", str(tls_registry.files.ca),
                       str(context), env=isolated)
    assert built.returncode == 0, built.stderr
    exported = tmp_path / "exported"
    result = kubenb_cli("--root", str(root), "export", "tls:1", "-o", str(exported), env=isolated)
    assert result.returncode == 0, result.stderr
    repository = reference.split("/", 1)[1].rsplit(":", 1)[0]
    assert folder_digest(exported / "registry", repository, "v1") == digest
