"""Manifests as the registry serves them: exact bytes, media type and a verified digest.

The bytes are kept exactly as received because a manifest's digest is the hash of those bytes:
re-serialising the JSON would change it and break every reference to the image. Checking
happens here, apart from HTTP, so that it can be tested on plain bytes: the digest the registry
claims and the digest the caller asked for must both match the bytes, and schema 1 (signed,
pre-2017) manifests are refused with a message saying what to do.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from kubenb.errors import RegistryError
from kubenb.oci import digests
from kubenb.oci.digests import compute_digest, is_content_digest
from kubenb.oci.manifests import MAX_MANIFEST_BYTES, is_schema1, manifest_kind
from kubenb.oci.media_types import INDEX_TYPES, MANIFEST_TYPES

__all__ = [
    "MAX_MANIFEST_BYTES",
    "CorruptContent",
    "Manifest",
    "hasher_for",
    "verified_manifest",
]

SCHEMA1_HINT = "push the image again with a current client"


@dataclass(frozen=True)
class Manifest:
    """A manifest or index: the exact bytes served, their media type and their digest."""

    data: bytes
    media_type: str
    digest: str

    @property
    def is_index(self) -> bool:
        """True for an OCI index or a Docker manifest list (one manifest per platform)."""
        return self.media_type in INDEX_TYPES

    def document(self) -> dict[str, Any]:
        """The parsed JSON (the bytes were checked to be a JSON object when fetched)."""
        document: dict[str, Any] = json.loads(self.data)
        return document


class CorruptContent(RegistryError):
    """Bytes that are wrong in a way a second fetch may fix: corrupt in transit, a proxy's error page."""


def hasher_for(digest: str) -> Any:
    """A fresh hashlib object for the algorithm of ``digest``; a bad digest is a RegistryError."""
    if not is_content_digest(digest):
        raise RegistryError(
            f"{digest!r} is not a digest kubenb can verify",
            hint="use sha256:<64 hex digits> (or sha384, sha512)",
        )
    return digests.hasher_for(digest)


def verified_manifest(
    data: bytes, *, content_type: str, claimed: str | None, reference: str, where: str
) -> Manifest:
    """The ``Manifest`` of received bytes, after every check; ``where`` names it in errors.

    ``claimed`` is the registry's ``Docker-Content-Digest``; ``reference`` the tag or digest
    asked for. A ``CorruptContent`` error may pass when fetched again; other errors will not.
    Schema 1 is recognised first, because its signatures make the registry's digest differ
    from the hash of the bytes served.
    """
    document = _document(data, where)
    media_type = manifest_kind(document or {}, content_type)
    if is_schema1(document or {}, media_type):
        raise RegistryError(f"{where} is a schema 1 manifest: schema 1 manifests are not supported",
                            hint=SCHEMA1_HINT)
    pinned = reference if reference.startswith(("sha256:", "sha384:", "sha512:")) else None
    for expected, source in ((pinned, "the digest asked for"), (claimed, "the registry's digest")):
        if expected is not None:
            _check_digest(data, expected, source, where)
    if document is None:
        raise CorruptContent(f"{where}: the registry answered something that is not a JSON manifest",
                             hint="check the registry (or a proxy in front of it)")
    if media_type not in MANIFEST_TYPES:
        raise RegistryError(f"{where} has media type {media_type!r}, which is not an image manifest or index",
                            hint=f"kubenb pulls {', '.join(MANIFEST_TYPES)}")
    return Manifest(data, media_type, pinned or claimed or compute_digest(data))


def _check_digest(data: bytes, expected: str, source: str, where: str) -> None:
    hasher = hasher_for(expected)
    hasher.update(data)
    actual = f"{expected.partition(':')[0]}:{hasher.hexdigest()}"
    if actual != expected:
        raise CorruptContent(
            f"{where}: the bytes received hash to {actual}, not to {source} {expected}",
            hint="the manifest was corrupted in transit or on the registry",
        )


def _document(data: bytes, where: str) -> dict[str, Any] | None:
    """The JSON object of ``data``, None if it is not one; JSON nested deeper than Python's
    recursion limit (``[[[[...`` 100k deep) is refused, as no manifest is nested more than a
    few levels."""
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    except RecursionError:
        raise RegistryError(f"{where}: the manifest is JSON nested too deeply to be a manifest",
                            hint="check the registry (or a proxy in front of it)") from None
    return document if isinstance(document, dict) else None

