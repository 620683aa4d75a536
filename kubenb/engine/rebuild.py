"""An unchanged ``kubenb build`` answered before the engine, the builders and the store load.

The command line asks this first: when the store's record of the same build checks out
(``kubenb/builders/record.py``), the stored image is the answer and the process ends having
imported little more than its parser; otherwise ``Engine.build`` runs, which checks the
record again (a cheap miss) and builds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from kubenb.builders.record import Answer, answer, inputs
from kubenb.store.root import default_root

__all__ = ["Answer", "unchanged_build"]


def unchanged_build(root: str | Path | None, *, tag: str, context: Path, kubefile: Path,
                    build_args: Mapping[str, str], values: Mapping[str, Sequence[Path]],
                    set_values: Mapping[str, Sequence[str]], kube_version: str | None,
                    platforms: Iterable[str] | None, skip_invalid: bool, skip_missing_platform: bool) -> Answer | None:
    """The stored image that answers a lite build of these options (as ``BuildOptions`` takes
    them) in the store ``root`` (the default store when None), or None: then build."""
    store_root = Path(root) if root else default_root()
    found = inputs(store_root, builder="lite", tag=tag, context=context, kubefile=kubefile, build_args=build_args,
                   values=values, set_values=set_values, kube_version=kube_version, platforms=platforms,
                   skip_invalid=skip_invalid, skip_missing_platform=skip_missing_platform)
    return answer(store_root, found) if found is not None else None
