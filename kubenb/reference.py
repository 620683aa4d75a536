"""The one image-reference parser of kubenb: docker's normalisation, with clear errors.

Every reference kubenb meets (imageList lines, pod specs, chart output, FROM, the CLI) goes
through ``parse_reference`` so that the same image is always the same ``ImageRef``, whatever
the spelling. The rules are those of distribution/reference ``ParseNormalizedNamed`` followed
by ``TagNameOnly`` (what ``docker pull`` does): ``nginx`` is ``docker.io/library/nginx:latest``,
a first component is a registry only when it is ``localhost``, holds a ``.`` or a ``:``, or has
uppercase letters, and ``name:tag@digest`` keeps both tag and digest.

The grammar is checked piece by piece instead of with one large regular expression, so that
an error can say which part is wrong and why. Two deliberate differences from docker:

- a first component docker takes for a registry but whose host grammar fails, while it is a
  valid path component (``foo_bar.com/app``), is rejected: docker returns a name with no
  domain there, which no registry can serve;
- a digest algorithm docker has not registered is accepted when it follows the OCI image
  spec's ``algorithm:encoded`` grammar (with the hex encoding the reference grammar demands).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from kubenb.errors import InvalidReferenceError
from kubenb.model import ImageRef, use_normaliser

__all__ = [
    "DEFAULT_DOMAIN",
    "DEFAULT_TAG",
    "familiar",
    "is_repository_path",
    "is_tag",
    "is_valid_reference",
    "normalize",
    "parse_reference",
]

#: Docker Hub's name in references; ``index.docker.io`` is its legacy alias.
DEFAULT_DOMAIN = "docker.io"
LEGACY_DOMAIN = "index.docker.io"
#: Docker Hub's namespace for official images (``nginx`` is ``library/nginx``).
OFFICIAL_PREFIX = "library/"
DEFAULT_TAG = "latest"
#: distribution's RepositoryNameTotalLengthMax; it bounds the path, not the domain.
MAX_PATH_LENGTH = 255
MAX_TAG_LENGTH = 128

_LABEL = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = re.compile(rf"(?:{_LABEL}(?:\.{_LABEL})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?")
_PORT = re.compile(r"[0-9]+")
_PATH_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_ALNUM = re.compile(r"[a-z0-9]")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
_ALGORITHM = re.compile(r"[a-z][a-z0-9]*(?:[+._-][a-z][a-z0-9]*)*")
_HEX = re.compile(r"[0-9a-fA-F]{32,}")
_LOWER_HEX = re.compile(r"[0-9a-f]+")
_IMAGE_ID = re.compile(r"[0-9a-f]{64}")
#: Registered algorithms and their exact number of lowercase hex digits.
_DIGEST_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128, "blake3": 64}


def is_repository_path(path: str) -> bool:
    """``path`` is a repository path without domain (``library/nginx``): the grammar a registry
    folder's repository names must follow too."""
    return _passes(_check_path, path)


def is_tag(tag: str) -> bool:
    """``tag`` follows docker's tag grammar (the registry client checks tags it sends with it)."""
    return _passes(_check_tag, tag)


def _passes(check: Callable[[str, str], None], part: str) -> bool:
    try:
        check(part, part)
    except InvalidReferenceError:
        return False
    return True


def parse_reference(text: str) -> ImageRef:
    """The normalised ``ImageRef`` of ``text``, or an ``InvalidReferenceError`` saying why not.

    ``text`` must be exactly the reference (callers strip lines); ``written`` keeps it as is so
    that reports can quote the user's own spelling.
    """
    _check_characters(text)
    rest, digest = _split_digest(text)
    name, tag = _split_tag(text, rest)
    domain, path = _split_domain(text, name)
    _check_domain(text, domain)
    _check_path(text, path)
    if tag is not None:
        _check_tag(text, tag)
    if digest is not None:
        _check_digest(text, digest)
    if tag is None and digest is None:
        tag = DEFAULT_TAG
    return ImageRef(domain, path, tag, digest, written=text)


def is_valid_reference(text: str) -> bool:
    """Whether ``text`` parses; for filters that drop non-references (``image: docker.io*``)."""
    try:
        parse_reference(text)
    except InvalidReferenceError:
        return False
    return True


def normalize(text: str) -> str:
    """The canonical spelling of ``text`` (``docker.io/library/nginx:latest``)."""
    return str(parse_reference(text))


def familiar(ref: ImageRef) -> str:
    """docker's short form for display (``nginx:latest``, ``user/app:1``).

    The short form is used only when it parses back to ``ref``: ``docker.io/foo.com/app``
    shortened to ``foo.com/app`` would name another registry (and ``docker.io/a_b.c/app``
    no valid one), so those stay whole.
    """
    if ref.domain != DEFAULT_DOMAIN:
        return str(ref)
    short = ref.path
    if short.startswith(OFFICIAL_PREFIX) and "/" not in short[len(OFFICIAL_PREFIX) :]:
        short = short[len(OFFICIAL_PREFIX) :]
    short += str(ref)[len(ref.name) :]
    return short if _parses_to(short, ref) else str(ref)


def _parses_to(text: str, ref: ImageRef) -> bool:
    try:
        return parse_reference(text) == ref
    except InvalidReferenceError:
        return False


def _invalid(text: str, why: str, hint: str | None = None) -> InvalidReferenceError:
    """One-line error naming the whole reference as written, then the reason."""
    return InvalidReferenceError(f"invalid image reference {text!r}: {why}", reason=why, hint=hint)


def _check_characters(text: str) -> None:
    """Reject what no part of the grammar can hold, before splitting would blur the cause."""
    if not text:
        raise _invalid(text, "the reference is empty")
    if any(char.isspace() for char in text):
        raise _invalid(text, "whitespace is not allowed in a reference", "remove the whitespace")
    if "://" in text:
        raise _invalid(text, "a reference has no URL scheme", "write it as in ghcr.io/org/app:1.0")
    if _IMAGE_ID.fullmatch(text):
        raise _invalid(
            text,
            "a 64-character hex string is an image ID, not a repository name",
            "name the image by repository and tag or digest",
        )


def _split_digest(text: str) -> tuple[str, str | None]:
    """``name[:tag]`` and the digest after the first ``@`` (names and tags never hold one)."""
    rest, at, digest = text.partition("@")
    if not at:
        return text, None
    if not digest:
        raise _invalid(text, "the digest after '@' is empty")
    return rest, digest


def _split_tag(text: str, rest: str) -> tuple[str, str | None]:
    """Name and tag: only a ``:`` after the last ``/`` starts a tag (before it is a port)."""
    colon = rest.rfind(":")
    if colon <= rest.rfind("/"):
        return rest, None
    if colon == len(rest) - 1:
        raise _invalid(text, "the tag after ':' is empty", "write a tag or leave out the ':'")
    return rest[:colon], rest[colon + 1 :]


def _split_domain(text: str, name: str) -> tuple[str, str]:
    """docker's ``splitDockerDomain``: which registry, and the path on Docker Hub's terms."""
    if not name:
        raise _invalid(text, "the repository name is empty")
    first, slash, remainder = name.partition("/")
    if slash and _names_registry(first):
        domain, path = first, remainder
    else:
        domain, path = DEFAULT_DOMAIN, name
    if domain == LEGACY_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = OFFICIAL_PREFIX + path
    return domain, path


def _names_registry(first: str) -> bool:
    """docker's test: ``localhost``, a ``.`` or ``:``, or uppercase (paths are lowercase)."""
    return first == "localhost" or "." in first or ":" in first or first.lower() != first


def _check_domain(text: str, domain: str) -> None:
    """A host name, IPv4 or bracketed IPv6 address, with an optional numeric port."""
    if _DOMAIN.fullmatch(domain):
        return
    host, colon, port = domain.rpartition(":")
    if ":" in host and not host.startswith("["):
        raise _invalid(
            text,
            f"registry {domain!r} looks like an IPv6 address without brackets",
            "write IPv6 addresses in brackets, as in [::1]:5000",
        )
    if colon and not domain.endswith("]") and not _PORT.fullmatch(port):
        raise _invalid(text, f"port {port!r} of registry {domain!r} must be a number")
    raise _invalid(text, f"registry {domain!r} is not a host name, IPv4 address or bracketed IPv6 address")


def _check_path(text: str, path: str) -> None:
    """Lowercase components joined by single ``/``, at most 255 characters in all."""
    if "" in path.split("/"):
        raise _invalid(text, "a repository path component is empty (check for '//' or '/')")
    if path.lower() != path:
        raise _invalid(
            text,
            f"repository path {path!r} has uppercase letters",
            "repository names must be lowercase",
        )
    for component in path.split("/"):
        _check_component(text, component)
    if len(path) > MAX_PATH_LENGTH:
        raise _invalid(text, f"repository path is {len(path)} characters, more than {MAX_PATH_LENGTH}")


def _check_component(text: str, component: str) -> None:
    """One path component, with the reason a user can act on."""
    if _PATH_COMPONENT.fullmatch(component):
        return
    if not _ALNUM.match(component[0]):
        why = "must start with a lowercase letter or digit"
    elif not _ALNUM.match(component[-1]):
        why = "must end with a lowercase letter or digit"
    else:
        why = "may only join lowercase letters and digits with '.', '_', '__' or dashes"
    raise _invalid(text, f"repository path component {component!r} {why}")


def _check_tag(text: str, tag: str) -> None:
    """docker's tag grammar: ``[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}``."""
    if len(tag) > MAX_TAG_LENGTH:
        raise _invalid(text, f"tag is {len(tag)} characters, more than {MAX_TAG_LENGTH}")
    if not _TAG.fullmatch(tag):
        raise _invalid(
            text,
            f"tag {tag!r} may only hold letters, digits, '_', '.' and '-', and may not start with '.' or '-'",
        )


def _check_digest(text: str, digest: str) -> None:
    """``algorithm:hex``; registered algorithms need their exact lowercase hex length."""
    hint = "a digest looks like sha256: followed by 64 lowercase hex digits"
    algorithm, colon, encoded = digest.partition(":")
    if not colon or not _ALGORITHM.fullmatch(algorithm):
        raise _invalid(text, f"digest {digest!r} does not start with an algorithm and ':'", hint)
    expected = _DIGEST_LENGTHS.get(algorithm)
    if expected is None:
        if not _HEX.fullmatch(encoded):
            raise _invalid(text, f"digest {digest!r} needs at least 32 hex digits", hint)
    elif len(encoded) != expected or not _LOWER_HEX.fullmatch(encoded):
        raise _invalid(text, f"a {algorithm} digest needs {expected} lowercase hex digits, not {encoded!r}")


use_normaliser(parse_reference)  # ImageList.why normalises as every other caller does
