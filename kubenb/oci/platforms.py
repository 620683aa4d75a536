"""Platforms (``os/arch[/variant]``) as image indexes and configs spell them.

``--platform``, ``FROM --platform``, an index's children, an image config and the build host
all name platforms; they are compared as strings, so every spelling is brought to the one of
image indexes here: the kernel's architecture names (``x86_64``, ``aarch64``) become Go's.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from kubenb.errors import InvalidReferenceError
from kubenb.oci.media_types import IMAGE_CONFIG_TYPES

__all__ = [
    "ARCHITECTURE_ALIASES",
    "config_platform",
    "go_architecture",
    "host_architecture",
    "host_platform",
    "parse_platform",
    "platform_matches",
    "platform_of",
]

#: Kernel (``uname -m``) names of architectures and the Go names images use for them.
ARCHITECTURE_ALIASES = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "armv7l": "arm"}
_PLATFORM_PART = re.compile(r"[a-z0-9][a-z0-9_.-]*")


def go_architecture(name: str) -> str:
    """``name`` in GOARCH spelling (``x86_64`` is ``amd64``); unknown names as they are."""
    return ARCHITECTURE_ALIASES.get(name.lower(), name.lower())


def parse_platform(text: str) -> str:
    """``os/arch[/variant]`` in the spelling of image indexes (``linux/arm64/v8``).

    ``--platform`` and ``FROM --platform`` filter index children by string, so a misspelt
    platform would quietly match nothing: it is refused here instead. Case is folded and the
    kernel's architecture names become their Go names.
    """
    parts = text.strip().lower().split("/")
    if not 2 <= len(parts) <= 3 or not all(_PLATFORM_PART.fullmatch(part) for part in parts):
        raise InvalidReferenceError(f"invalid platform {text!r}: expected os/arch or os/arch/variant",
                                    hint="e.g. linux/amd64 or linux/arm64/v8")
    parts[1] = go_architecture(parts[1])
    return "/".join(parts)


def platform_matches(offered: str, asked: str) -> bool:
    """Whether an image for ``offered`` serves ``asked``: ``linux/arm64`` is met by any variant
    of it, ``linux/arm64/v8`` only by that one."""
    return offered == asked or offered.startswith(asked + "/")


def host_architecture() -> str:
    """The host's architecture in GOARCH spelling: a lite build caches images for its host."""
    import platform as host  # noqa: PLC0415  (20 modules' worth of start-up: only a pull needs it)

    return go_architecture(host.machine())


def host_platform() -> str:
    """``linux/<arch>``: the platform a build is for unless ``FROM --platform`` says otherwise."""
    return f"linux/{host_architecture()}"


def platform_of(config: Mapping[str, Any]) -> str:
    """The ``os/arch[/variant]`` an image config kubenb wrote declares (``os`` defaults to linux)."""
    parts = [str(config.get("os", "linux")), str(config.get("architecture", "")), str(config.get("variant", ""))]
    return "/".join(part for part in parts if part)


def config_platform(data: bytes, media_type: str) -> str | None:
    """``os/arch[/variant]`` of a foreign image config; None for other configs (charts,
    artifacts) and for a config that declares no os or architecture."""
    if media_type not in IMAGE_CONFIG_TYPES:
        return None
    try:
        config = json.loads(data)
    except (ValueError, RecursionError):
        return None
    if not isinstance(config, dict) or not config.get("os") or not config.get("architecture"):
        return None
    parts = (config.get("os"), config.get("architecture"), config.get("variant"))
    return "/".join(str(part).lower() for part in parts if part)
