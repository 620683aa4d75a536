"""kubenb.demo.DemoRegistry: the real docker-registry over a folder seeded offline, open or with
htpasswd auth, checked with skopeo (an independent client) and plain HTTP."""

from __future__ import annotations

import json
import os
import secrets
import shutil
from pathlib import Path

import psutil
import pytest
import requests

from kubenb.demo import DemoRegistry, work_folder
from kubenb.errors import KubenbError
from tests.support.skopeo import Skopeo

pytestmark = pytest.mark.registry

IMAGES = ["nginx:1.25", "registry.k8s.io/pause:3.9"]
OCI_ACCEPT = {"Accept": "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json"}


def manifest(registry: DemoRegistry, repository: str, tag: str,
             auth: tuple[str, str] | None = None) -> requests.Response:
    return requests.get(f"{registry.url}/v2/{repository}/manifests/{tag}", headers=OCI_ACCEPT, auth=auth, timeout=10)


def test_open_registry_serves_the_seeded_images(skopeo: Skopeo) -> None:
    with DemoRegistry(IMAGES) as registry:
        assert registry.auth is None
        raw = skopeo.inspect_raw(registry, "library/nginx", "1.25")
        assert json.loads(raw)["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
        skopeo.inspect_raw(registry, "pause", "3.9")  # the source domain is dropped (mirror names)
        assert manifest(registry, "library/nginx", "1.25").status_code == 200
        assert registry.mirrors()["docker.io"] == registry.host


def test_auth_registry_serves_with_credentials_and_refuses_without(skopeo: Skopeo) -> None:
    password = secrets.token_urlsafe(16)
    with DemoRegistry(IMAGES, username="student", password=password) as registry:
        assert registry.auth == ("student", password)
        assert password not in repr(registry)
        skopeo.inspect_raw(registry, "library/nginx", "1.25")  # skopeo with --creds
        assert manifest(registry, "library/nginx", "1.25", registry.auth).status_code == 200
        assert manifest(registry, "library/nginx", "1.25").status_code == 401
        assert manifest(registry, "library/nginx", "1.25", ("student", "wrong")).status_code == 401
        assert requests.get(f"{registry.url}/v2/", timeout=10).status_code == 401
        # the password is in no process's command line
        process = psutil.Process(registry.pid)
        assert all(password not in part for part in process.cmdline())


def test_registry_starts_with_registry_variables_in_the_environment(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(tmp_path / "auth.json"))  # would stop docker-registry
    with DemoRegistry(["busybox:1.36"]) as registry:
        assert manifest(registry, "library/busybox", "1.36").status_code == 200


def test_stop_ends_the_process_and_cleans_up(tmp_path: Path) -> None:
    registry = DemoRegistry(["busybox:1.36"], username="u", password=secrets.token_urlsafe(8)).start()
    pid = registry.pid
    assert pid is not None and psutil.pid_exists(pid) and registry.running
    folder = registry.folder
    registry.stop()
    assert not registry.running and registry.pid is None
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert not folder.exists()  # a folder it made itself is removed
    registry.stop()  # twice is fine
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{registry.url}/v2/", timeout=2)


def test_a_given_folder_is_kept(tmp_path: Path) -> None:
    with DemoRegistry(["busybox:1.36"], folder=tmp_path / "registry"):
        pass
    assert (tmp_path / "registry" / "docker" / "registry" / "v2" / "repositories" / "library" / "busybox").is_dir()


def test_half_given_credentials_are_refused() -> None:
    with pytest.raises(KubenbError, match="both a username and a password"):
        DemoRegistry(IMAGES, username="student")


def test_missing_docker_registry_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no docker-registry on PATH
    assert shutil.which("docker-registry") is None
    registry = DemoRegistry(IMAGES)
    with pytest.raises(KubenbError, match="docker-registry is not installed; apt-get install docker-registry"):
        registry.start()
    assert not registry.folder.exists()  # nothing left behind


def test_missing_htpasswd_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    registry_binary = shutil.which("docker-registry")
    assert registry_binary is not None
    os.symlink(registry_binary, tmp_path / "docker-registry")
    monkeypatch.setenv("PATH", str(tmp_path))
    registry = DemoRegistry(IMAGES, username="student", password="secret-pw")
    with pytest.raises(KubenbError, match="apt-get install apache2-utils") as caught:
        registry.start()
    assert "secret-pw" not in str(caught.value)
    assert registry.pid is None
    assert not registry.folder.exists()


# -- what lets a notebook's setup cells run again (issue 15) ----------------------------------


def test_reuse_gives_the_running_registry_back_and_starts_a_stopped_one_on_its_host() -> None:
    first = DemoRegistry.reuse(["busybox:1.36"])
    try:
        pid = first.pid
        assert DemoRegistry.reuse(["busybox:1.36"]) is first and first.pid == pid  # a re-run: same process
        other = DemoRegistry.reuse(["busybox:1.36"], username="u", password=secrets.token_urlsafe(8))
        assert other is not first and other.host != first.host  # other arguments: another registry
        other.stop()
        first.stop()
        again = DemoRegistry.reuse(["busybox:1.36"])  # after a clean-up cell: started again, same host
        assert again is first and again.running and again.host == first.host
        answer = requests.get(f"{again.url}/v2/library/busybox/tags/list", timeout=5)
        assert answer.json()["tags"] == ["1.36"]  # its own folder was removed by stop(): seeded again
    finally:
        first.stop()


def test_start_starts_again_a_registry_whose_process_died() -> None:
    registry = DemoRegistry(["busybox:1.36"]).start()
    try:
        psutil.Process(registry.pid).kill()
        psutil.Process(registry.pid).wait(10)
        assert not registry.running
        assert registry.start().running
        assert requests.get(f"{registry.url}/v2/", timeout=5).status_code == 200
    finally:
        registry.stop()


def test_work_folder_is_the_same_for_a_name_and_is_made_again_when_removed() -> None:
    folder = work_folder("kubenb-test-work")
    (folder / "kept").write_text("x")
    assert work_folder("kubenb-test-work") == folder and (folder / "kept").exists()
    assert work_folder("kubenb-test-other") != folder
    shutil.rmtree(folder)
    assert work_folder("kubenb-test-work") == folder and folder.is_dir()
    shutil.rmtree(folder)
    shutil.rmtree(work_folder("kubenb-test-other"))
