"""Table tests of the one reference parser, after docker's own tables.

Cases come from distribution/reference (``normalize_test.go``, ``reference_test.go``), docker-py
(``tests/unit/auth_test.py``, ``ResolveRepositoryNameTest``) and images real charts ship.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubenb.errors import InvalidReferenceError, KubenbError
from kubenb.model import ImageRef
from kubenb.reference import familiar, is_valid_reference, normalize, parse_reference

SHA256 = "sha256:86e0e091d0da6bde2456dbb48306f3956bbeb2eae1b5b9a43045843f69fe4aaa"
SHA384 = "sha384:" + "0123456789abcdef" * 6
SHA512 = "sha512:" + "0123456789abcdef" * 8
IMAGE_ID = "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a"
TARSUM = "tarsum.v1+sha256:" + "ab" * 32

VALID = [
    # Docker Hub short names: official images get library/, everything gets :latest.
    ("nginx", "docker.io/library/nginx:latest"),
    ("nginx:1.25", "docker.io/library/nginx:1.25"),
    ("nginx:1.25.3-alpine", "docker.io/library/nginx:1.25.3-alpine"),
    ("library/nginx", "docker.io/library/nginx:latest"),
    ("image.valid", "docker.io/library/image.valid:latest"),
    ("ubuntu-12.04-base", "docker.io/library/ubuntu-12.04-base:latest"),
    ("user/app", "docker.io/user/app:latest"),
    ("bitnami/postgresql:16.1.0-debian-11-r15", "docker.io/bitnami/postgresql:16.1.0-debian-11-r15"),
    ("library/foo/bar", "docker.io/library/foo/bar:latest"),
    ("jess/t", "docker.io/jess/t:latest"),
    ("test_com/foo", "docker.io/test_com/foo:latest"),
    # Explicit Docker Hub; only index.docker.io is an alias, registry-1.docker.io is not.
    ("docker.io/nginx", "docker.io/library/nginx:latest"),
    ("docker.io/library/nginx:stable", "docker.io/library/nginx:stable"),
    ("index.docker.io/nginx", "docker.io/library/nginx:latest"),
    ("index.docker.io/bitnami/redis:7.2", "docker.io/bitnami/redis:7.2"),
    ("registry-1.docker.io/library/nginx", "registry-1.docker.io/library/nginx:latest"),
    ("Docker.IO/foo", "Docker.IO/foo:latest"),
    (f"docker.io/{IMAGE_ID}", f"docker.io/library/{IMAGE_ID}:latest"),
    # Other public registries, deep paths.
    ("quay.io/prometheus/node-exporter:v1.7.0", "quay.io/prometheus/node-exporter:v1.7.0"),
    ("quay.io/jetstack/cert-manager-controller:v1.13.2", "quay.io/jetstack/cert-manager-controller:v1.13.2"),
    ("gcr.io/distroless/static:nonroot", "gcr.io/distroless/static:nonroot"),
    ("registry.k8s.io/pause:3.9", "registry.k8s.io/pause:3.9"),
    ("registry.k8s.io/kube-apiserver:v1.29.0", "registry.k8s.io/kube-apiserver:v1.29.0"),
    ("ghcr.io/fluxcd/source-controller:v1.2.3", "ghcr.io/fluxcd/source-controller:v1.2.3"),
    ("ghcr.io/org/team/sub/app:1", "ghcr.io/org/team/sub/app:1"),
    ("public.ecr.aws/eks-distro/kubernetes/pause:3.9", "public.ecr.aws/eks-distro/kubernetes/pause:3.9"),
    ("mcr.microsoft.com/oss/kubernetes/pause:3.6", "mcr.microsoft.com/oss/kubernetes/pause:3.6"),
    ("nvcr.io/nvidia/k8s-device-plugin:v0.14.3", "nvcr.io/nvidia/k8s-device-plugin:v0.14.3"),
    (
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/team/app:2024.01.15",
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/team/app:2024.01.15",
    ),
    ("registry.gitlab.com/group/project/image:main", "registry.gitlab.com/group/project/image:main"),
    # Local registries: localhost, ports, IPv4, bracketed IPv6, punycode.
    ("localhost/app", "localhost/app:latest"),
    ("localhost:5000/app:dev", "localhost:5000/app:dev"),
    ("localhost:5000/team/app", "localhost:5000/team/app:latest"),
    ("127.0.0.1:5000/docker/docker", "127.0.0.1:5000/docker/docker:latest"),
    ("192.168.0.2:25000/debian", "192.168.0.2:25000/debian:latest"),
    ("[::1]:5000/app:1.0", "[::1]:5000/app:1.0"),
    ("[::1]/app", "[::1]/app:latest"),
    ("[fc00:1:2:3:4:5:6:7]:5000/library/debian", "[fc00:1:2:3:4:5:6:7]:5000/library/debian:latest"),
    ("xn--n3h.com/foo", "xn--n3h.com/foo:latest"),
    ("xn--n3h.com:18080/foo", "xn--n3h.com:18080/foo:latest"),
    ("test-com:8080/foo", "test-com:8080/foo:latest"),
    # docker's quirks, followed exactly: a single component is never a registry; an
    # uppercase first component is one.
    ("localhost:5000", "docker.io/library/localhost:5000"),
    ("192.168.0.1", "docker.io/library/192.168.0.1:latest"),
    ("192.168.0.1:80", "docker.io/library/192.168.0.1:80"),
    (SHA256, f"docker.io/library/{SHA256}"),
    ("Foo/bar", "Foo/bar:latest"),
    ("DOCKER/docker", "DOCKER/docker:latest"),
    (IMAGE_ID[:63], f"docker.io/library/{IMAGE_ID[:63]}:latest"),
    # Separators: '.', '_', '__', any run of '-'.
    ("docker---rules/docker", "docker.io/docker---rules/docker:latest"),
    ("dock__er/docker", "docker.io/dock__er/docker:latest"),
    ("example.com/a--b/c_d/e.f/g-h", "example.com/a--b/c_d/e.f/g-h:latest"),
    # Tags: any case, '_' first, up to 128 characters.
    ("nginx:Latest_RC.1", "docker.io/library/nginx:Latest_RC.1"),
    ("app:_x", "docker.io/library/app:_x"),
    ("app:" + "t" * 128, "docker.io/library/app:" + "t" * 128),
    ("example.com/" + "a" * 255, "example.com/" + "a" * 255 + ":latest"),
    # Digests: kept whole with the tag; no :latest when pinned.
    (f"nginx@{SHA256}", f"docker.io/library/nginx@{SHA256}"),
    (f"nginx:1.25@{SHA256}", f"docker.io/library/nginx:1.25@{SHA256}"),
    (f"busybox:latest@{SHA256}", f"docker.io/library/busybox:latest@{SHA256}"),
    (
        f"registry.k8s.io/ingress-nginx/controller:v1.9.4@{SHA256}",
        f"registry.k8s.io/ingress-nginx/controller:v1.9.4@{SHA256}",
    ),
    (f"docker.io/library/alpine@{SHA512}", f"docker.io/library/alpine@{SHA512}"),
    (f"ghcr.io/org/app@{SHA384}", f"ghcr.io/org/app@{SHA384}"),
    (f"localhost:5000/app@{TARSUM}", f"localhost:5000/app@{TARSUM}"),
]

INVALID = [
    # (written, a fragment the message must hold besides the reference itself)
    ("", "empty"),
    ("_docker/_docker", "'_docker' must start with a lowercase letter or digit"),
    ("foo/-bar", "'-bar' must start with a lowercase letter or digit"),
    ("-docker", "'-docker'"),
    ("docker-/docker", "'docker-' must end"),
    ("-docker-/docker", "'-docker-'"),
    ("____/____", "'____'"),
    # A first component with a '.' is a registry to docker, so these fail as hosts...
    ("dock..er/docker", "registry 'dock..er'"),
    ("dock_.er/docker", "registry 'dock_.er'"),
    ("dock-.er/docker", "registry 'dock-.er'"),
    # ...and further down the path as path components.
    ("org/dock..er", "component 'dock..er' may only join"),
    ("org/dock_.er", "component 'dock_.er' may only join"),
    ("org/dock-.er", "component 'dock-.er' may only join"),
    ("a___b", "'a___b'"),
    ("-gecko.com/image", "registry '-gecko.com'"),
    ("docker.io/Foo", "uppercase"),
    ("docker/Docker", "uppercase"),
    ("docker.io/docker/Docker", "uppercase"),
    ("Uppercase/Repo", "'Repo' has uppercase"),
    ("NGINX", "uppercase"),
    ("foo.com:http/bar", "port 'http'"),
    ("fc00::1:5000/debian", "IPv6 address without brackets"),
    ("[::1]:http/app", "port 'http'"),
    ("[fe80::1%eth0]:5000/debian", "registry '[fe80::1%eth0]:5000'"),
    ("[2001:db8:3:4::192.0.2.33]:5000/debian", "registry"),
    ("[fc00::1]", "'[fc00:'"),
    ("[fc00::1]:5000", "path component"),
    ("foo_bar.com/app", "registry 'foo_bar.com'"),
    ("https://github.com/docker/docker", "URL scheme"),
    ("nginx:", "tag after ':' is empty"),
    ("nginx@", "digest after '@' is empty"),
    (":latest", "repository name is empty"),
    (f"@{SHA256}", "repository name is empty"),
    ("nginx@sha256:short", "64 lowercase hex digits, not 'short'"),
    ("nginx@sha256:" + "A" * 64, "64 lowercase hex digits"),
    ("nginx@sha256:" + "a" * 63, "64 lowercase hex digits"),
    ("nginx@sha512:" + "a" * 64, "128 lowercase hex digits"),
    ("nginx@SHA256:" + "a" * 64, "algorithm"),
    ("nginx@md5", "algorithm"),
    ("nginx@3des:" + "a" * 32, "algorithm"),
    ("nginx@foo:1234", "at least 32 hex digits"),
    (f"nginx@{SHA256}@{SHA256}", "sha256 digest"),
    ("nginx :latest", "whitespace"),
    (" nginx", "whitespace"),
    ("nginx ", "whitespace"),
    ("nginx\n", "whitespace"),
    ("ngi\tnx", "whitespace"),
    ("a//b", "empty"),
    ("docker///docker", "empty"),
    ("docker/", "empty"),
    ("/nginx", "empty"),
    ("localhost:5000/", "empty"),
    ("nginx:-bad", "tag '-bad'"),
    ("nginx:.bad", "tag '.bad'"),
    ("nginx:a+b", "tag 'a+b'"),
    ("nginx:1.0:2.0", "'nginx:1.0'"),
    ("nginx:" + "t" * 129, "more than 128"),
    ("example.com/" + "a" * 256, "more than 255"),
    (IMAGE_ID, "image ID"),
    ("ngïnx", "'ngïnx'"),
]


@pytest.mark.parametrize(("written", "expected"), VALID)
def test_valid_references_normalise_like_docker(written: str, expected: str) -> None:
    ref = parse_reference(written)
    assert str(ref) == expected
    assert ref.written == written
    assert normalize(written) == expected
    assert is_valid_reference(written)


@pytest.mark.parametrize(("written", "expected"), VALID)
def test_normalised_form_parses_back_to_the_same_reference(written: str, expected: str) -> None:
    ref = parse_reference(written)
    again = parse_reference(expected)
    assert again == ref
    assert again.written == expected
    assert parse_reference(familiar(ref)) == ref


@pytest.mark.parametrize(("written", "fragment"), INVALID)
def test_invalid_references_say_which_text_and_why(written: str, fragment: str) -> None:
    with pytest.raises(InvalidReferenceError) as caught:
        parse_reference(written)
    message = str(caught.value)
    assert repr(written) in message
    assert fragment in message
    assert "\n" not in message
    assert not is_valid_reference(written)


@pytest.mark.parametrize(
    ("written", "domain", "path", "tag", "digest"),
    [
        ("nginx", "docker.io", "library/nginx", "latest", None),
        ("index.docker.io/user/app:1", "docker.io", "user/app", "1", None),
        ("localhost:5000/team/app:dev", "localhost:5000", "team/app", "dev", None),
        ("[::1]:5000/app", "[::1]:5000", "app", "latest", None),
        ("Foo/bar", "Foo", "bar", "latest", None),
        (f"quay.io/org/app@{SHA256}", "quay.io", "org/app", None, SHA256),
        (f"nginx:1.25@{SHA512}", "docker.io", "library/nginx", "1.25", SHA512),
    ],
)
def test_parts_of_a_reference(
    written: str, domain: str, path: str, tag: str | None, digest: str | None
) -> None:
    ref = parse_reference(written)
    assert (ref.domain, ref.path, ref.tag, ref.digest) == (domain, path, tag, digest)
    assert ref.repository == path
    assert ref.name == f"{domain}/{path}"


@pytest.mark.parametrize(
    ("written", "short"),
    [
        ("nginx", "nginx:latest"),
        ("docker.io/library/nginx:1.25", "nginx:1.25"),
        ("index.docker.io/user/app:1", "user/app:1"),
        ("library/foo/bar", "library/foo/bar:latest"),
        (f"nginx@{SHA256}", f"nginx@{SHA256}"),
        ("quay.io/org/app:v1", "quay.io/org/app:v1"),
        ("localhost:5000/app", "localhost:5000/app:latest"),
        # Shortening these would name another registry, so they stay whole.
        ("docker.io/foo.com/app", "docker.io/foo.com/app:latest"),
        ("docker.io/localhost/app", "docker.io/localhost/app:latest"),
        ("docker.io/a_b.c/app", "docker.io/a_b.c/app:latest"),
    ],
)
def test_familiar_form_is_short_but_never_ambiguous(written: str, short: str) -> None:
    assert familiar(parse_reference(written)) == short


def test_equality_hash_and_order_ignore_how_it_was_written() -> None:
    spellings = ["nginx", "library/nginx:latest", "index.docker.io/nginx", "docker.io/library/nginx:latest"]
    refs = [parse_reference(s) for s in spellings]
    assert len(set(refs)) == 1
    assert [r.written for r in refs] == spellings
    ordered = sorted(parse_reference(s) for s in ["quay.io/b/c", "nginx:1.25", "alpine", "nginx:1.24"])
    assert [str(r) for r in ordered] == [
        "docker.io/library/alpine:latest",
        "docker.io/library/nginx:1.24",
        "docker.io/library/nginx:1.25",
        "quay.io/b/c:latest",
    ]
    assert parse_reference("nginx") == ImageRef("docker.io", "library/nginx", "latest")


def test_tag_and_digest_stay_distinct_from_digest_only() -> None:
    pinned = parse_reference(f"nginx@{SHA256}")
    tagged = parse_reference(f"nginx:latest@{SHA256}")
    assert pinned.tag is None
    assert pinned != tagged


def test_invalid_reference_error_is_a_value_error_with_a_hint() -> None:
    with pytest.raises(ValueError, match="must be lowercase") as caught:
        parse_reference("docker.io/Foo")
    error = caught.value
    assert isinstance(error, KubenbError)
    assert isinstance(error, InvalidReferenceError)
    assert error.hint == "repository names must be lowercase"
    assert (
        error.message
        == "invalid image reference 'docker.io/Foo': repository path 'library/Foo' has uppercase letters"
    )


REFERENCE_ALPHABET = "abcxyzAZ0189.-_:/@[]+ "
REFERENCE_TEXT = st.one_of(st.text(), st.text(alphabet=REFERENCE_ALPHABET, max_size=40))


@given(REFERENCE_TEXT)
def test_any_text_either_parses_or_raises_invalid_reference(text: str) -> None:
    try:
        ref = parse_reference(text)
    except InvalidReferenceError as error:
        assert "\n" not in str(error)
        return
    assert ref.written == text
    assert parse_reference(str(ref)) == ref
    assert parse_reference(familiar(ref)) == ref
    assert ref.tag is not None or ref.digest is not None


LABEL = st.from_regex(r"[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,6}[a-zA-Z0-9])?", fullmatch=True)
HOSTS = st.one_of(
    st.sampled_from(["localhost", "docker.io", "index.docker.io", "Foo", "[::1]", "[fc00:1::2]", "10.0.0.1"]),
    st.lists(LABEL, min_size=2, max_size=3).map(".".join),
)
DOMAINS = st.tuples(HOSTS, st.none() | st.integers(0, 65535)).map(
    lambda hp: hp[0] if hp[1] is None else f"{hp[0]}:{hp[1]}"
)
COMPONENT = st.from_regex(r"[a-z0-9]{1,5}(?:(?:[._]|__|-+)[a-z0-9]{1,5}){0,2}", fullmatch=True)
PATHS = st.lists(COMPONENT, min_size=1, max_size=4).map("/".join)
TAGS = st.none() | st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}", fullmatch=True)
DIGESTS = st.none() | st.sampled_from([SHA256, SHA384, SHA512, TARSUM])


@given(DOMAINS, PATHS, TAGS, DIGESTS)
def test_grammatical_references_parse_and_round_trip(
    domain: str, path: str, tag: str | None, digest: str | None
) -> None:
    text = f"{domain}/{path}" + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")
    ref = parse_reference(text)
    hub = domain in ("docker.io", "index.docker.io")
    assert ref.domain == ("docker.io" if hub else domain)
    assert ref.path == (f"library/{path}" if hub and "/" not in path else path)
    assert (ref.tag, ref.digest) == (tag or (None if digest else "latest"), digest)
    assert parse_reference(str(ref)) == ref
    assert parse_reference(familiar(ref)) == ref
