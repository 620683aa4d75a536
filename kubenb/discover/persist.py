"""Discovery results kept on disk, so a build in a new process skips discovery when nothing changed.

The in-process ``DiscoveryMemo`` dies with its process; a second ``kubenb build`` of an
unchanged context would render every chart again. Entries live in ``STORE/memo/`` as one
JSON file per key (the content key of what discovery read and the options, plus the kubenb
version: another version may find other images in the same bytes). Each file is written to
a temp file and renamed, so a concurrent reader sees a whole entry or none; anything
unreadable, foreign or of another format is a miss, rewritten by the next build, never an
error. The folder is bounded: past ``LIMIT`` entries the least recently used go.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import time
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

from kubenb.model import FoundImage, ImageList, ImageRef, InvalidImage, Location
from kubenb.oci.digests import atomic_file

__all__ = ["FORMAT", "LIMIT", "kubenb_version", "load", "save"]

#: Entries kept; one is a few KB to a few hundred KB (its image list with provenance).
LIMIT = 64
#: Bumped whenever the encoding below changes: an older file is then a miss.
FORMAT = 1


def kubenb_version() -> str:
    """kubenb's version, read from the loaded package: the facade sits above this layer, and
    it is whole by the time anything discovers or builds."""
    return str(getattr(sys.modules.get("kubenb"), "__version__", "unknown"))


def _path(folder: Path, key: str) -> Path:
    return folder / f"{hashlib.sha256(key.encode()).hexdigest()}.json"


def load(folder: Path, key: str) -> ImageList | None:
    """The image list saved under ``key``, or None when there is none or it cannot be trusted."""
    path = _path(folder, key)
    try:
        data = json.loads(path.read_bytes())
        if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("key") != key:
            return None
        found = _decode(data["result"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    with contextlib.suppress(OSError):
        os.utime(path)  # used now: the last to be dropped when the folder is full
    return found


def save(folder: Path, key: str, found: ImageList) -> None:
    """Keep ``found`` under ``key`` (atomically), then drop the oldest entries past ``LIMIT``.
    A memo that cannot be written (a full disk, a read-only store) only costs speed."""
    with contextlib.suppress(OSError):
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_file(_path(folder, key), folder) as file:
            file.write(json.dumps({"format": FORMAT, "key": key, "result": _encode(found)}).encode())
        _bound(folder)


def _bound(folder: Path) -> None:
    """Drop the least recently used entries past ``LIMIT``, and temp files an hour old (of a
    killed writer: a live one renames its file within moments)."""
    for temp in folder.glob("*.tmp"):
        with contextlib.suppress(OSError):
            if time.time() - temp.stat().st_mtime > 3600:
                temp.unlink()
    entries = []
    for path in folder.glob("*.json"):
        with contextlib.suppress(OSError):  # another build may have dropped it just now
            entries.append((path.stat().st_mtime_ns, path))
    for _, path in sorted(entries)[:max(0, len(entries) - LIMIT)]:
        with contextlib.suppress(OSError):
            path.unlink()


def _encode(found: ImageList) -> dict[str, Any]:
    def image(item: FoundImage) -> dict[str, Any]:
        return {"image": _fields(item.image), "locations": [_fields(place) for place in item.locations]}

    return {
        "images": [image(i) for i in found.images], "potential": [image(i) for i in found.potential],
        "test": [image(i) for i in found.test], "excluded": [image(i) for i in found.excluded],
        "invalid": [{"written": i.written, "location": _fields(i.location), "reason": i.reason}
                    for i in found.invalid],
        "warnings": list(found.warnings),
    }


def _fields(record: ImageRef | Location) -> dict[str, Any]:
    return {f.name: getattr(record, f.name) for f in fields(record)}


def _decode(data: dict[str, Any]) -> ImageList:
    def image(item: dict[str, Any]) -> FoundImage:
        places = tuple(_checked(Location(**place)) for place in item["locations"])
        return FoundImage(_checked(ImageRef(**item["image"])), places)

    return ImageList(
        images=tuple(map(image, data["images"])), potential=tuple(map(image, data["potential"])),
        test=tuple(map(image, data["test"])), excluded=tuple(map(image, data["excluded"])),
        invalid=tuple(InvalidImage(_text(i["written"]), _checked(Location(**i["location"])), _text(i["reason"]))
                      for i in data["invalid"]),
        warnings=tuple(_text(w) for w in data["warnings"]),
    )


def _checked(record: ImageRef | Location) -> Any:
    """``record`` when each field has a type it can have (text, a line number or nothing);
    a foreign file's other values must not reach a build."""
    for f in fields(record):
        value = getattr(record, f.name)
        allowed = isinstance(value, str) or (value is None and f.default is not MISSING) \
            or (f.name == "line" and type(value) is int)
        if not allowed:
            raise TypeError(f"{f.name}: {value!r}")
    return record


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(repr(value))
    return value
