"""push and pull with real parts: the kubenb CLI as a process, docker-registry, and skopeo as a witness."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest
import requests

from kubenb.engine import pull_image, push_image
from kubenb.errors import Cancelled
from kubenb.registry import RegistryClient
from kubenb.store import ClusterImage, Store
from tests.support.cancelling import cancelled_when
from tests.support.faulty import Fault, FaultyProxy, Hold
from tests.support.oci import blob_exists, tar_bytes
from tests.support.registry import Registry
from tests.support.skopeo import Skopeo


def kubenb(*args: str, env: Mapping[str, str] | None = None, stdin: str | None = None
           ) -> subprocess.CompletedProcess[str]:
    """The CLI as a user runs it: a separate process, its output captured."""
    return subprocess.run(
        [sys.executable, "-m", "kubenb", *args], input=stdin, capture_output=True, text=True, timeout=120,
        check=False, env=dict(env) if env is not None else None,
    )


@pytest.fixture
def auth_env(tmp_path: Path) -> dict[str, str]:
    """An environment whose credentials file is a fresh temp file, never the developer's."""
    env = {k: v for k, v in os.environ.items() if k not in ("DOCKER_CONFIG", "KUBENB_ROOT")}
    env["REGISTRY_AUTH_FILE"] = str(tmp_path / "auth.json")
    return env


def commit_image(root: Path, work: Path, name: str = "my-cluster:v1") -> ClusterImage:
    """A small two-layer cluster image committed into the store at ``root``."""
    store = Store(root)
    layers = []
    for index, files in enumerate([{"manifests/imageList": b"nginx:1.25\n"},
                                   {"charts/app/Chart.yaml": b"name: app\n", "etc/a.conf": os.urandom(64)}]):
        tar = work / f"layer{index}.tar"
        tar.write_bytes(tar_bytes(files))
        layers.append(store.add_layer(tar))
    return store.commit(name, layers, labels={"kubefile": "FROM scratch\n"}, annotations={})


def inspect_id(root: Path, name: str) -> str:
    result = kubenb("--root", str(root), "inspect", name)
    assert result.returncode == 0, result.stderr
    image_id: str = json.loads(result.stdout)["image"]["id"]
    return image_id


def test_push_then_pull_keeps_the_image_id(registry: Registry, skopeo: Skopeo, tmp_path: Path,
                                           repo_name: str) -> None:
    image = commit_image(tmp_path / "root", tmp_path)
    destination = f"{registry.host}/{repo_name}:v1"

    pushed = kubenb("--root", str(tmp_path / "root"), "push", image.name, destination)
    assert pushed.returncode == 0, pushed.stderr
    assert image.manifest_digest in pushed.stdout

    served = skopeo.inspect_raw(registry, repo_name, "v1")
    assert "sha256:" + hashlib.sha256(served).hexdigest() == image.manifest_digest

    fresh = tmp_path / "fresh"
    pulled = kubenb("--root", str(fresh), "pull", destination)
    assert pulled.returncode == 0, pulled.stderr
    assert inspect_id(fresh, destination) == image.id == inspect_id(tmp_path / "root", image.name)
    listed = json.loads(kubenb("--root", str(fresh), "images", "-o", "json").stdout)
    assert [(i["name"], i["id"]) for i in listed] == [(destination, image.id)]


def test_cancelling_a_pull_raises_cancelled_and_names_nothing(registry: Registry, tmp_path: Path,
                                                             repo_name: str) -> None:
    """The image's last layer is held by the proxy on every try, so only the cancel, cutting
    the held request, ends the pull; the config and first layer are in by then."""
    image = commit_image(tmp_path / "root", tmp_path)
    pushed = kubenb("--root", str(tmp_path / "root"), "push", image.name, f"{registry.host}/{repo_name}:v1")
    assert pushed.returncode == 0, pushed.stderr
    last = Store(tmp_path / "root").layers(image.name)[-1].digest
    fresh = tmp_path / "fresh"
    hold = Hold()
    with FaultyProxy(registry.url) as proxy:
        proxy.add(Fault(re.escape(f"/blobs/{last}"), hold, times=10_000))
        outcome = cancelled_when([hold.held], lambda cancel: pull_image(f"{proxy.host}/{repo_name}:v1",
                                                                        root=fresh, cancel=cancel))
        hold.release.set()
    assert type(outcome) is Cancelled, outcome
    assert Store(fresh).images() == []
    assert not list((fresh / "tmp").glob("pull.*")), "the staging folder was left behind"
    checked = kubenb("--root", str(fresh), "check")
    assert checked.returncode == 0, checked.stderr
    again = pull_image(f"{registry.host}/{repo_name}:v1", root=fresh)
    assert again.id == image.id


def test_cancelling_a_push_raises_cancelled_and_tags_nothing(registry: Registry, tmp_path: Path,
                                                            repo_name: str) -> None:
    """The check of the last layer (the HEAD before its upload) is held on every try, so only
    the cancel ends the push; the manifest, sent last, never is, so the tag names nothing."""
    image = commit_image(tmp_path / "root", tmp_path)
    last = Store(tmp_path / "root").layers(image.name)[-1].digest
    hold = Hold()
    with FaultyProxy(registry.url) as proxy:
        proxy.add(Fault(re.escape(f"/blobs/{last}"), hold, times=10_000, method="HEAD"))
        outcome = cancelled_when([hold.held], lambda cancel: push_image(
            image.name, f"{proxy.host}/{repo_name}:v1", root=tmp_path / "root", cancel=cancel))
        hold.release.set()
    assert type(outcome) is Cancelled, outcome
    assert not blob_exists(registry, repo_name, last)
    answer = requests.get(f"{registry.url}/v2/{repo_name}/tags/list", timeout=30)
    assert answer.status_code == 404 or not answer.json().get("tags"), answer.text


def test_a_second_push_sends_no_blob(registry: Registry, tmp_path: Path, repo_name: str) -> None:
    """Blobs already in the registry are skipped (HEAD first), and the manifest digest stays the same."""
    store = Store(tmp_path / "root")
    image = commit_image(store.root, tmp_path)
    with RegistryClient(registry.host) as client:
        assert store.push(image.name, client, repo_name, "v1") == image.manifest_digest
        layer = store.layers(image.name)[0]
        assert not client.upload_blob(repo_name, layer.digest, store.blobs.path(layer.digest), size=layer.size)
        assert store.push(image.name, client, repo_name, "v2") == image.manifest_digest
        assert client.get_manifest(repo_name, "v2").digest == image.manifest_digest


def test_push_defaults_to_the_image_name(registry: Registry, tmp_path: Path, repo_name: str) -> None:
    name = f"{registry.host}/{repo_name}:v1"
    image = commit_image(tmp_path / "root", tmp_path, name)
    result = kubenb("--root", str(tmp_path / "root"), "push", name)
    assert result.returncode == 0, result.stderr
    with RegistryClient(registry.host) as client:
        assert client.get_manifest(repo_name, "v1").digest == image.manifest_digest


def test_push_to_a_private_registry_needs_a_login(auth_registry: Registry, skopeo: Skopeo, tmp_path: Path,
                                                 repo_name: str, auth_env: dict[str, str]) -> None:
    assert auth_registry.auth is not None
    user, password = auth_registry.auth
    image = commit_image(tmp_path / "root", tmp_path)
    destination = f"{auth_registry.host}/{repo_name}:v1"
    push = ("--root", str(tmp_path / "root"), "push", image.name, destination)

    refused = kubenb(*push, env=auth_env)
    assert refused.returncode == 1
    assert refused.stderr.startswith(f"kubenb: registry {auth_registry.host} wants credentials")
    assert f"kubenb login {auth_registry.host}" in refused.stderr

    login = kubenb("login", auth_registry.host, "-u", user, "--password-stdin", stdin=password + "\n",
                   env=auth_env)
    assert login.returncode == 0, login.stderr.replace(password, "***")
    pushed = kubenb(*push, env=auth_env)
    assert pushed.returncode == 0, pushed.stderr
    assert password not in pushed.stdout + pushed.stderr + login.stdout + login.stderr
    served = skopeo.inspect_raw(auth_registry, repo_name, "v1")
    assert "sha256:" + hashlib.sha256(served).hexdigest() == image.manifest_digest

    pulled = kubenb("--root", str(tmp_path / "fresh"), "pull", destination, env=auth_env)
    assert pulled.returncode == 0, pulled.stderr
    assert inspect_id(tmp_path / "fresh", destination) == image.id


def test_push_of_an_unknown_image_fails_in_one_line(tmp_path: Path) -> None:
    result = kubenb("--root", str(tmp_path / "root"), "push", "nothing:v1", "127.0.0.1:1/x/y:v1")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("kubenb: no cluster image 'nothing:v1'")


def test_push_refuses_a_digest_destination(tmp_path: Path) -> None:
    image = commit_image(tmp_path / "root", tmp_path)
    result = kubenb("--root", str(tmp_path / "root"), "push", image.name, f"127.0.0.1:1/x/y@{image.manifest_digest}")
    assert result.returncode == 1 and "takes a tag, not a digest" in result.stderr
