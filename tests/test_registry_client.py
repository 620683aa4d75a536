"""The registry client against real registries, and against a fault-injecting front (no mocks).

`registry` and `auth_registry` are real `docker-registry` processes; `FaultyProxy`
(tests/support/faulty.py) is a real HTTP server on loopback that proxies to them and injects
the faults a test asks for: 5xx, 429, redirects, bearer tokens, truncated or corrupt bodies.
"""

from __future__ import annotations

import json
import os
import stat
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path

import pytest
import requests

from kubenb.errors import AuthenticationError, Cancelled, InvalidReferenceError, RegistryError
from kubenb.events import CancelToken, Event, Retrying
from kubenb.reference import parse_reference
from kubenb.registry import (
    OCI_INDEX,
    OCI_MANIFEST,
    Credentials,
    Registries,
    RegistryClient,
    SpeedLimit,
    login,
    logout,
    lookup,
)
from kubenb.registry.credentials import store
from kubenb.registry.transport import retry_after
from tests.support.cancelling import cancelled_when
from tests.support.events import Recorder
from tests.support.faulty import Corrupt, Fault, FaultyProxy, Hold, Redirect, Respond, TokenService, Truncate
from tests.support.oci import Image, images_sharing_base, make_image, make_layer, multi_arch_index, push, single_image
from tests.support.registry import Registry, free_port

SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+prettyjws"



@pytest.fixture
def events() -> Recorder:
    return Recorder()


@pytest.fixture
def docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private, empty credentials file location for the test."""
    monkeypatch.delenv("REGISTRY_AUTH_FILE", raising=False)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    return tmp_path / "docker" / "config.json"


def assert_secret_kept(secret: str, *texts: object) -> None:
    """The secret appears in no exception text, event or other text given."""
    for text in texts:
        assert secret not in str(text), f"secret leaked into {type(text).__name__}"
        assert secret not in repr(text), f"secret leaked into {type(text).__name__}"


def big_image(seed: str, size: int = 1_000_000) -> Image:
    """An image with a layer of incompressible bytes, large enough for several chunks."""
    return make_image([make_layer({f"data/{seed}": os.urandom(size)})], labels={"seed": seed})


# -- real registry: manifests and blobs ------------------------------------------------------


def test_ping(registry: Registry) -> None:
    with RegistryClient(registry.host) as client:
        client.ping()


def test_single_image_manifest_by_tag_and_digest(registry: Registry, repo_name: str) -> None:
    image = single_image("by-tag")
    push(registry, repo_name, "v1", image)
    with RegistryClient(registry.host) as client:
        by_tag = client.get_manifest(repo_name, "v1")
        by_digest = client.get_manifest(repo_name, image.digest)
    assert by_tag.data == by_digest.data == image.manifest
    assert by_tag.media_type == OCI_MANIFEST and not by_tag.is_index
    assert by_tag.digest == by_digest.digest == image.digest
    assert by_tag.document()["config"]["digest"] == image.config.digest


def test_index_and_its_children(registry: Registry, repo_name: str) -> None:
    index = multi_arch_index("index")
    push(registry, repo_name, "multi", index)
    with RegistryClient(registry.host) as client:
        fetched = client.get_manifest(repo_name, "multi")
        assert fetched.is_index and fetched.media_type == OCI_INDEX and fetched.digest == index.digest
        children = [client.get_manifest(repo_name, m["digest"]) for m in fetched.document()["manifests"]]
    assert [c.data for c in children] == [image.manifest for image in index.images]


def test_unknown_manifest_is_not_found(registry: Registry, repo_name: str, events: Recorder) -> None:
    with RegistryClient(registry.host, events=events) as client, pytest.raises(RegistryError) as raised:
        client.get_manifest(repo_name, "missing")
    assert "not found" in str(raised.value) and "MANIFEST_UNKNOWN" in str(raised.value)
    assert not events.retries  # 404 is an answer, never retried


def test_download_blobs_verified(registry: Registry, repo_name: str, tmp_path: Path) -> None:
    image = big_image("blobs")
    push(registry, repo_name, "v1", image)
    with RegistryClient(registry.host) as client:
        for blob in image.blobs:
            seen: list[int] = []
            target = tmp_path / blob.digest.replace(":", "-")
            fetched = client.download_blob(repo_name, blob.digest, target, expected_size=blob.size,
                                           on_bytes=seen.append)
            assert target.read_bytes() == blob.data
            assert fetched == sum(seen) == blob.size


def test_has_blob(registry: Registry, repo_name: str) -> None:
    image = single_image("has")
    push(registry, repo_name, "v1", image)
    with RegistryClient(registry.host) as client:
        assert client.has_blob(repo_name, image.layers[0].digest)
        assert not client.has_blob(repo_name, "sha256:" + "0" * 64)


def test_unknown_blob_leaves_no_file(registry: Registry, repo_name: str, tmp_path: Path) -> None:
    push(registry, repo_name, "v1", single_image("nofile"))
    target = tmp_path / "blob"
    digest = "sha256:" + "1" * 64
    with RegistryClient(registry.host) as client, pytest.raises(RegistryError, match="not found") as raised:
        client.download_blob(repo_name, digest, target)
    assert digest in str(raised.value) and repo_name in str(raised.value)
    assert not target.exists()


def test_wrong_expected_size_is_an_error(registry: Registry, repo_name: str, tmp_path: Path) -> None:
    image = single_image("size")
    push(registry, repo_name, "v1", image)
    layer = image.layers[0]
    with RegistryClient(registry.host, retries=0) as client, pytest.raises(RegistryError, match=layer.digest):
        client.download_blob(repo_name, layer.digest, tmp_path / "blob", expected_size=layer.size - 1)
    assert not (tmp_path / "blob").exists()


@pytest.mark.parametrize("bad", [("UPPER/case", "v1"), ("ok/repo", "bad tag"), ("ok/repo", "sha256:../../x")])
def test_invalid_names_are_refused_before_any_request(bad: tuple[str, str]) -> None:
    with RegistryClient("127.0.0.1:1") as client, pytest.raises(InvalidReferenceError):
        client.get_manifest(*bad)


def test_concurrent_downloads_share_one_client(any_registry: Registry, repo_name: str, tmp_path: Path) -> None:
    images = images_sharing_base(6, seed=repo_name)
    for i, image in enumerate(images):
        push(any_registry, repo_name, f"v{i}", image)
    blobs = {blob.digest: blob for image in images for blob in image.blobs}
    credentials = Credentials(*any_registry.auth) if any_registry.auth else None
    with RegistryClient(any_registry.host, credentials=credentials) as client, ThreadPoolExecutor(8) as pool:
        sizes = list(pool.map(
            lambda blob: client.download_blob(repo_name, blob.digest, tmp_path / blob.digest[7:]), blobs.values()))
    assert sizes == [blob.size for blob in blobs.values()]
    assert all((tmp_path / digest[7:]).read_bytes() == blob.data for digest, blob in blobs.items())


# -- real registry with htpasswd (Basic) ------------------------------------------------------


def test_auth_registry_with_credentials(auth_registry: Registry, repo_name: str, tmp_path: Path) -> None:
    image = single_image("auth")
    push(auth_registry, repo_name, "v1", image)
    assert auth_registry.auth is not None
    with RegistryClient(auth_registry.host, credentials=Credentials(*auth_registry.auth)) as client:
        client.ping()
        assert client.get_manifest(repo_name, "v1").digest == image.digest
        assert client.download_blob(repo_name, image.config.digest, tmp_path / "config") == image.config.size


def test_wrong_password(auth_registry: Registry, repo_name: str, events: Recorder) -> None:
    assert auth_registry.username is not None and auth_registry.password is not None
    wrong = auth_registry.password + "-wrong"
    credentials = Credentials(auth_registry.username, wrong)
    with RegistryClient(auth_registry.host, credentials=credentials, events=events) as client, \
            pytest.raises(AuthenticationError) as raised:
        client.get_manifest(repo_name, "v1")
    message = str(raised.value)
    assert f"kubenb login {auth_registry.host}" in message and auth_registry.username in message
    assert_secret_kept(wrong, message, raised.value, *events)
    assert_secret_kept(auth_registry.password, message, *events)
    assert not events.retries  # 401 is never retried


def test_missing_credentials(auth_registry: Registry, repo_name: str) -> None:
    with RegistryClient(auth_registry.host) as client, pytest.raises(AuthenticationError) as raised:
        client.get_manifest(repo_name, "v1")
    assert f"registry {auth_registry.host} wants credentials" in str(raised.value)
    assert f"kubenb login {auth_registry.host}" in str(raised.value)


def test_login_checks_then_writes_0600(auth_registry: Registry, docker_config: Path, repo_name: str) -> None:
    assert auth_registry.username is not None and auth_registry.password is not None
    path = login(auth_registry.host, auth_registry.username, auth_registry.password)
    assert path == docker_config
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert lookup(auth_registry.host) == Credentials(auth_registry.username, auth_registry.password)
    push(auth_registry, repo_name, "v1", single_image("login"))
    with Registries() as registries:
        client = registries.client_for(parse_reference(f"{auth_registry.host}/{repo_name}:v1"))
        assert client.get_manifest(repo_name, "v1").digest == single_image("login").digest
    assert logout(auth_registry.host) is True
    assert lookup(auth_registry.host) is None
    assert logout(auth_registry.host) is False


def test_login_with_a_wrong_password_writes_nothing(auth_registry: Registry, docker_config: Path) -> None:
    assert auth_registry.username is not None
    with pytest.raises(AuthenticationError, match="refused") as raised:
        login(auth_registry.host, auth_registry.username, "not-the-password")
    assert_secret_kept("not-the-password", raised.value)
    assert not docker_config.exists()
    store("other.example", Credentials("x", "y"))
    before = docker_config.read_bytes()
    with pytest.raises(AuthenticationError):
        login(auth_registry.host, auth_registry.username, "not-the-password")
    assert docker_config.read_bytes() == before


# -- Registries: one client per host, mirrors, insecure hosts ---------------------------------


def test_mirror_serves_the_source_registry_images(auth_registry: Registry, docker_config: Path,
                                                  repo_name: str) -> None:
    assert auth_registry.auth is not None
    image = single_image("mirror")
    push(auth_registry, repo_name, "v1", image)
    store(auth_registry.host, Credentials(*auth_registry.auth))
    ref = parse_reference(f"docker.io/{repo_name}:v1")
    with Registries(mirrors={"docker.io": auth_registry.host}) as registries:
        client = registries.client_for(ref)
        assert client.registry == auth_registry.host
        assert client.get_manifest(ref.path, "v1").digest == image.digest


@pytest.mark.usefixtures("docker_config")
def test_one_client_per_host_across_threads() -> None:
    with Registries() as registries, ThreadPoolExecutor(8) as pool:
        clients = list(pool.map(lambda _: registries.client("registry.example.com"), range(32)))
        assert len({id(client) for client in clients}) == 1
        assert registries.client_for(parse_reference("nginx")).base_url == "https://registry-1.docker.io"


@pytest.mark.parametrize(
    ("host", "insecure", "url"),
    [
        ("registry.example.com", False, "https://registry.example.com"),
        ("registry.example.com:5000", True, "http://registry.example.com:5000"),
        ("127.0.0.1:5000", False, "http://127.0.0.1:5000"),
        ("127.3.2.1", False, "http://127.3.2.1"),
        ("localhost:5000", False, "http://localhost:5000"),
        ("[::1]:5000", False, "http://[::1]:5000"),
        ("10.0.0.1:5000", False, "https://10.0.0.1:5000"),
        ("docker.io", False, "https://registry-1.docker.io"),
    ],
)
@pytest.mark.usefixtures("docker_config")
def test_plain_http_only_for_loopback_or_insecure(host: str, insecure: bool, url: str) -> None:
    with Registries(insecure=[host] if insecure else []) as registries:
        assert registries.client(host).base_url == url


# -- faults: retries -------------------------------------------------------------------------


@pytest.fixture
def front(registry: Registry) -> Iterator[FaultyProxy]:
    with FaultyProxy(registry.url) as proxy:
        yield proxy


def test_a_cancel_ends_a_retry_backoff_and_a_held_request_at_once(
        front: FaultyProxy, registry: Registry, repo_name: str, tmp_path: Path) -> None:
    """Every try of the manifest gets 429 with a Retry-After of an hour (cut to two minutes), then
    the blob is held for ever: only the cancel can end either wait, so the ends prove it."""
    image = single_image("cancel")
    push(registry, repo_name, "v1", image)
    front.add(Fault("/manifests/", Respond(429, {"Retry-After": "3600"}), times=10_000))
    backing_off = threading.Event()

    def sink(event: Event) -> None:
        if isinstance(event, Retrying):
            backing_off.set()

    def manifest(cancel: CancelToken) -> object:
        with RegistryClient(front.host, events=sink, cancel=cancel) as client:
            return client.get_manifest(repo_name, "v1")

    assert type(cancelled_when([backing_off], manifest)) is Cancelled
    hold = Hold()
    front.add(Fault(f"/blobs/{image.layers[0].digest}", hold, times=10_000))

    def blob(cancel: CancelToken) -> object:
        with RegistryClient(front.host, cancel=cancel, speed_limit=SpeedLimit(min_speed=0), timeout=3600) as client:
            return client.download_blob(repo_name, image.layers[0].digest, tmp_path / "blob")

    assert type(cancelled_when([hold.held], blob)) is Cancelled
    hold.release.set()
    assert not (tmp_path / "blob").exists()


def test_503_then_success(front: FaultyProxy, registry: Registry, repo_name: str, events: Recorder) -> None:
    image = single_image("503")
    push(registry, repo_name, "v1", image)
    front.add(Fault("/manifests/", Respond(503)))
    with RegistryClient(front.host, events=events) as client:
        assert client.get_manifest(repo_name, "v1").digest == image.digest
    (retry,) = events.retries
    assert retry.reason == "HTTP 503" and retry.attempt == 1 and f"/v2/{repo_name}/manifests/v1" in retry.url


def test_429_honours_retry_after(front: FaultyProxy, registry: Registry, repo_name: str, events: Recorder) -> None:
    image = single_image("429")
    push(registry, repo_name, "v1", image)
    front.add(Fault("/manifests/", Respond(429, {"Retry-After": "1"})))
    started = time.monotonic()
    with RegistryClient(front.host, events=events) as client:
        assert client.get_manifest(repo_name, "v1").digest == image.digest
    assert time.monotonic() - started >= 0.95
    assert [(r.reason, r.delay) for r in events.retries] == [("HTTP 429", 1.0)]


def test_retry_after_as_http_date() -> None:
    response = requests.Response()
    response.headers["Retry-After"] = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=30), usegmt=True)
    delay = retry_after(response)
    assert delay is not None and 25 <= delay <= 30


def test_persistent_5xx_gives_up(front: FaultyProxy, repo_name: str, events: Recorder) -> None:
    front.add(Fault("/manifests/", Respond(502), times=10))
    with RegistryClient(front.host, events=events, retries=2) as client, pytest.raises(RegistryError, match="502"):
        client.get_manifest(repo_name, "v1")
    assert len(events.retries) == 2 and len(front.requests_to("/manifests/")) == 3


@pytest.mark.parametrize("status", [400, 403, 404])
def test_client_errors_are_never_retried(front: FaultyProxy, repo_name: str, events: Recorder, status: int) -> None:
    front.add(Fault("/manifests/", Respond(status), times=10))
    with RegistryClient(front.host, events=events) as client, pytest.raises(RegistryError) as raised:
        client.get_manifest(repo_name, "v1")
    assert {400: "HTTP 400", 403: "denied", 404: "not found"}[status] in str(raised.value)
    assert not events.retries and len(front.requests_to("/manifests/")) == 1


def test_timeout_is_retried(front: FaultyProxy, registry: Registry, repo_name: str, events: Recorder) -> None:
    image = single_image("timeout")
    push(registry, repo_name, "v1", image)
    held = Hold()  # the first answer never comes: the timeout fires however slow the machine
    front.add(Fault("/manifests/", held))
    try:
        with RegistryClient(front.host, events=events, timeout=2) as client:
            assert client.get_manifest(repo_name, "v1").digest == image.digest
    finally:
        held.release.set()
    (retry,) = events.retries
    assert "did not answer in time" in retry.reason


def test_manifest_cut_short_is_fetched_again(front: FaultyProxy, registry: Registry, repo_name: str,
                                             events: Recorder) -> None:
    image = single_image("cut")
    push(registry, repo_name, "v1", image)
    front.add(Fault("/manifests/", Truncate(20)))
    with RegistryClient(front.host, events=events) as client:
        assert client.get_manifest(repo_name, "v1").data == image.manifest
    (retry,) = events.retries
    assert "broke while reading manifest" in retry.reason


def test_connection_refused_is_retried_then_reported(events: Recorder) -> None:
    host = f"127.0.0.1:{free_port()}"
    with RegistryClient(host, events=events, retries=1) as client, pytest.raises(RegistryError) as raised:
        client.ping()
    assert f"cannot connect to registry {host}" in str(raised.value) and "refused" in str(raised.value)
    assert len(events.retries) == 1


# -- faults: bodies --------------------------------------------------------------------------


def test_truncated_blob_resumes_with_range(front: FaultyProxy, registry: Registry, repo_name: str,
                                           tmp_path: Path, events: Recorder) -> None:
    image = big_image("resume")
    push(registry, repo_name, "v1", image)
    layer = image.layers[0]
    keep = layer.size // 2  # more than one whole chunk
    front.add(Fault(f"/blobs/{layer.digest}", Truncate(keep)))
    seen: list[int] = []
    with RegistryClient(front.host, events=events) as client:
        fetched = client.download_blob(repo_name, layer.digest, tmp_path / "blob", on_bytes=seen.append)
    assert (tmp_path / "blob").read_bytes() == layer.data
    assert fetched == sum(seen) == layer.size  # nothing fetched twice
    first, second = front.requests_to(f"/blobs/{layer.digest}")
    assert "range" not in first.headers
    start = int(second.headers["range"].removeprefix("bytes=").removesuffix("-"))
    assert 0 < start <= keep  # the whole chunks that arrived are kept
    assert len(events.retries) == 1


def test_truncated_blob_without_ranges_starts_over(front: FaultyProxy, registry: Registry, repo_name: str,
                                                   tmp_path: Path) -> None:
    image = big_image("restart")
    push(registry, repo_name, "v1", image)
    layer = image.layers[0]
    front.add(Fault(f"/blobs/{layer.digest}", Truncate(600_000, ranges=False)))
    with RegistryClient(front.host) as client:
        fetched = client.download_blob(repo_name, layer.digest, tmp_path / "blob")
    assert (tmp_path / "blob").read_bytes() == layer.data
    assert layer.size < fetched <= 600_000 + layer.size  # the first bytes came twice
    assert all("range" not in s.headers for s in front.requests_to(f"/blobs/{layer.digest}"))


def test_corrupt_blob_once_is_fetched_again(front: FaultyProxy, registry: Registry, repo_name: str,
                                            tmp_path: Path, events: Recorder) -> None:
    image = single_image("corrupt-once")
    push(registry, repo_name, "v1", image)
    layer = image.layers[0]
    front.add(Fault(f"/blobs/{layer.digest}", Corrupt()))
    with RegistryClient(front.host, events=events) as client:
        assert client.download_blob(repo_name, layer.digest, tmp_path / "blob") == 2 * layer.size
    assert (tmp_path / "blob").read_bytes() == layer.data
    assert [r.reason for r in events.retries] == ["digest mismatch"]


def test_corrupt_blob_is_an_error_and_nothing_is_kept(front: FaultyProxy, registry: Registry, repo_name: str,
                                                      tmp_path: Path) -> None:
    image = single_image("corrupt-always")
    push(registry, repo_name, "v1", image)
    layer = image.layers[0]
    front.add(Fault(f"/blobs/{layer.digest}", Corrupt(), times=10))
    with RegistryClient(front.host, retries=1) as client, pytest.raises(RegistryError) as raised:
        client.download_blob(repo_name, layer.digest, tmp_path / "blob")
    assert layer.digest in str(raised.value) and repo_name in str(raised.value) and "corrupt" in str(raised.value)
    assert not (tmp_path / "blob").exists()


def test_corrupt_manifest_by_digest(front: FaultyProxy, registry: Registry, repo_name: str) -> None:
    image = single_image("corrupt-manifest")
    push(registry, repo_name, "v1", image)
    front.add(Fault("/manifests/", Corrupt(), times=10))
    with RegistryClient(front.host, retries=1) as client, pytest.raises(RegistryError, match="hash to") as raised:
        client.get_manifest(repo_name, image.digest)
    assert image.digest in str(raised.value)


def test_html_instead_of_a_manifest_is_fetched_again(front: FaultyProxy, registry: Registry, repo_name: str,
                                                     events: Recorder) -> None:
    image = single_image("html")
    push(registry, repo_name, "v1", image)
    front.add(Fault("/manifests/", Respond(200, {"Content-Type": "text/html"}, b"<html>proxy error</html>")))
    with RegistryClient(front.host, events=events) as client:
        assert client.get_manifest(repo_name, "v1").digest == image.digest
    assert [r.reason for r in events.retries] == ["corrupt manifest"]


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        (SCHEMA1, json.dumps({"schemaVersion": 1, "name": "x", "tag": "v1", "fsLayers": [],
                              "signatures": [{"protected": "e30"}]}).encode()),
        ("application/json", json.dumps({"schemaVersion": 1, "name": "x", "fsLayers": []}).encode()),
    ],
)
def test_schema1_is_refused_clearly(front: FaultyProxy, repo_name: str, events: Recorder, content_type: str,
                                    body: bytes) -> None:
    claimed = {"Docker-Content-Digest": "sha256:" + "2" * 64, "Content-Type": content_type}
    front.add(Fault("/manifests/", Respond(200, claimed, body)))
    with RegistryClient(front.host, events=events) as client, pytest.raises(RegistryError) as raised:
        client.get_manifest(repo_name, "v1")
    assert "schema 1 manifests are not supported; push the image again with a current client" in str(raised.value)
    assert not events.retries


def test_manifest_over_4_mib_is_refused(front: FaultyProxy, repo_name: str, events: Recorder) -> None:
    body = b'{"schemaVersion": 2, "pad": "' + b"x" * (4 * 1024 * 1024) + b'"}'
    front.add(Fault("/manifests/", Respond(200, {"Content-Type": OCI_MANIFEST}, body)))
    with RegistryClient(front.host, events=events) as client, pytest.raises(RegistryError, match="4 MiB"):
        client.get_manifest(repo_name, "v1")
    assert not events.retries


# -- faults: redirects -----------------------------------------------------------------------


def test_authorization_stays_home_on_a_redirect(auth_registry: Registry, repo_name: str, tmp_path: Path,
                                                events: Recorder) -> None:
    """Blob storage elsewhere (S3-like) gets the redirect, never the registry's credentials."""
    assert auth_registry.auth is not None
    image = single_image("redirect")
    push(auth_registry, repo_name, "v1", image)
    layer = image.layers[0]
    with FaultyProxy(auth_registry.url, bind="127.0.0.2", upstream_auth=auth_registry.auth) as storage, \
            FaultyProxy(auth_registry.url) as front:
        credentials = Credentials(*auth_registry.auth)
        with RegistryClient(front.host, credentials=credentials, events=events) as client:
            client.ping()  # learns Basic: later requests carry credentials from the start
            front.add(Fault(f"/blobs/{layer.digest}", Redirect(storage.url)),
                      Fault("/manifests/v1", Redirect(front.url)))
            assert client.get_manifest(repo_name, "v1").digest == image.digest
            client.download_blob(repo_name, layer.digest, tmp_path / "blob")
        assert (tmp_path / "blob").read_bytes() == layer.data
        home = front.requests_to(f"/blobs/{layer.digest}")
        away = storage.requests_to(f"/blobs/{layer.digest}")
        assert [s.headers.get("authorization", "").startswith("Basic ") for s in home] == [True]
        assert len(away) == 1 and "authorization" not in away[0].headers
        same_origin = front.requests_to("/manifests/v1")
        assert len(same_origin) == 2 and all("authorization" in s.headers for s in same_origin)
    assert_secret_kept(auth_registry.auth[1], *events)


# -- faults: bearer tokens -------------------------------------------------------------------


@pytest.fixture
def bearer(registry: Registry) -> Iterator[FaultyProxy]:
    with FaultyProxy(registry.url, tokens=TokenService("robot", "bearer-secret-1")) as proxy:
        yield proxy


def test_bearer_token_fetched_once_per_scope(bearer: FaultyProxy, registry: Registry, repo_name: str,
                                             tmp_path: Path) -> None:
    image = single_image("bearer")
    push(registry, repo_name, "v1", image)
    push(registry, repo_name + "-b", "v1", image)
    assert bearer.tokens is not None
    with RegistryClient(bearer.host, credentials=Credentials("robot", "bearer-secret-1")) as client:
        client.get_manifest(repo_name, "v1")
        assert client.has_blob(repo_name, image.config.digest)
        client.download_blob(repo_name, image.config.digest, tmp_path / "config")
        client.get_manifest(repo_name + "-b", "v1")
    scopes = [r.get("scope") for r in bearer.tokens.requests]
    assert scopes == [f"repository:{repo_name}:pull", f"repository:{repo_name}-b:pull"]
    assert all(r["authorization"].startswith("Basic ") and r["service"] == "faulty" for r in bearer.tokens.requests)


def test_identity_token_is_sent_as_an_oauth_refresh_token(registry: Registry, repo_name: str) -> None:
    image = single_image("identity")
    push(registry, repo_name, "v1", image)
    tokens = TokenService(username="nobody", password="-", refresh_token="refresh-secret-7")
    with FaultyProxy(registry.url, tokens=tokens) as proxy:
        with RegistryClient(proxy.host, credentials=Credentials("<token>", "refresh-secret-7")) as client:
            assert client.get_manifest(repo_name, "v1").digest == image.digest
        (request,) = tokens.requests
        assert request["method"] == "POST" and request["grant_type"] == "refresh_token"
        assert request["scope"] == f"repository:{repo_name}:pull" and request["authorization"] == ""
        with RegistryClient(proxy.host, credentials=Credentials("<token>", "expired-7")) as client, \
                pytest.raises(AuthenticationError, match="refused the identity token") as raised:
            client.get_manifest(repo_name, "v1")
        assert_secret_kept("expired-7", raised.value)


def test_credentials_never_go_to_a_plain_http_token_service_elsewhere(registry: Registry, repo_name: str) -> None:
    tokens = TokenService("robot", "bearer-secret-1", realm="http://auth.example.invalid/token")
    with FaultyProxy(registry.url, tokens=tokens) as proxy, \
            RegistryClient(proxy.host, credentials=Credentials("robot", "bearer-secret-1")) as client, \
            pytest.raises(RegistryError, match="plain HTTP") as raised:
        client.get_manifest(repo_name, "v1")
    assert_secret_kept("bearer-secret-1", raised.value)


def test_threads_share_one_bearer_token(bearer: FaultyProxy, registry: Registry, repo_name: str,
                                        tmp_path: Path) -> None:
    images = images_sharing_base(4, seed=repo_name)
    for i, image in enumerate(images):
        push(registry, repo_name, f"v{i}", image)
    blobs = {blob.digest: blob for image in images for blob in image.blobs}
    assert bearer.tokens is not None
    with RegistryClient(bearer.host, credentials=Credentials("robot", "bearer-secret-1")) as client, \
            ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda d: client.download_blob(repo_name, d, tmp_path / d[7:]), blobs))
    assert all((tmp_path / digest[7:]).read_bytes() == blob.data for digest, blob in blobs.items())
    assert len(bearer.tokens.requests) == 1


def test_bearer_token_renewed_after_expiry(registry: Registry, repo_name: str) -> None:
    """The client's clock is injected: the token expires when the test says, however slow the
    machine (the registry itself would accept it for an hour)."""
    push(registry, repo_name, "v1", single_image("expiry"))
    tokens = TokenService(expires_in=3600)  # cached for 3590 s: its life less 10 s
    now = [1000.0]
    with FaultyProxy(registry.url, tokens=tokens) as proxy, \
            RegistryClient(proxy.host, clock=lambda: now[0]) as client:
        client.get_manifest(repo_name, "v1")
        now[0] += 3589
        client.get_manifest(repo_name, "v1")
        assert len(tokens.requests) == 1
        now[0] += 2
        client.get_manifest(repo_name, "v1")
        assert len(tokens.requests) == 2
        assert all(r["authorization"] == "" for r in tokens.requests)  # anonymous: no credentials to send


def test_bearer_token_refused_by_the_server_is_renewed(registry: Registry, repo_name: str) -> None:
    """A token the registry no longer accepts (revoked, clock skew) is replaced once, not retried forever."""
    push(registry, repo_name, "v1", single_image("revoked"))
    tokens = TokenService(expires_in=3600)
    with FaultyProxy(registry.url, tokens=tokens) as proxy, RegistryClient(proxy.host) as client:
        client.get_manifest(repo_name, "v1")
        tokens.issued.clear()
        client.get_manifest(repo_name, "v1")
    assert len(tokens.requests) == 2


def test_bearer_wrong_password(bearer: FaultyProxy, repo_name: str, events: Recorder) -> None:
    wrong = "bearer-secret-WRONG"
    with RegistryClient(bearer.host, credentials=Credentials("robot", wrong), events=events) as client, \
            pytest.raises(AuthenticationError) as raised:
        client.get_manifest(repo_name, "v1")
    assert f"kubenb login {bearer.host}" in str(raised.value) and "robot" in str(raised.value)
    assert_secret_kept(wrong, raised.value, *events)


def test_bearer_token_without_access(registry: Registry, repo_name: str) -> None:
    tokens = TokenService("robot", "bearer-secret-1", accept_tokens=False)
    with FaultyProxy(registry.url, tokens=tokens) as proxy, \
            RegistryClient(proxy.host, credentials=Credentials("robot", "bearer-secret-1")) as client, \
            pytest.raises(AuthenticationError) as raised:
        client.get_manifest(repo_name, "v1")
    assert f"registry {proxy.host} denied user robot access to manifest {repo_name}:v1" in str(raised.value)
    assert f"kubenb login {proxy.host}" in str(raised.value)
    assert len(tokens.requests) == 1  # a fresh token that is refused is not fetched again


def test_bearer_without_credentials(bearer: FaultyProxy, repo_name: str) -> None:
    with RegistryClient(bearer.host) as client, pytest.raises(AuthenticationError) as raised:
        client.get_manifest(repo_name, "v1")
    assert f"registry {bearer.host} wants credentials" in str(raised.value)


def test_login_to_a_bearer_registry_fetches_a_token(bearer: FaultyProxy, docker_config: Path) -> None:
    assert bearer.tokens is not None
    with pytest.raises(AuthenticationError):
        login(bearer.host, "robot", "bearer-secret-WRONG")
    assert not docker_config.exists()
    login(bearer.host, "robot", "bearer-secret-1")
    assert lookup(bearer.host) == Credentials("robot", "bearer-secret-1")
    assert stat.S_IMODE(docker_config.stat().st_mode) == 0o600
    assert len(bearer.tokens.requests) == 2
