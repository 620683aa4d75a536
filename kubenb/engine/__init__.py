"""The engine (layer 6): the one door the front ends go through.

``Engine`` holds the store root, the registry options, an event sink and a cancel token, and
has one method per user verb. The functions next to it are the same work for callers that
hold no engine (the public ``kubenb.list_images``, benchmarks) and the small pure questions a
front end asks while reading its options. The CLI, the magics, the widgets and ``display``
import only this package, ``model``, ``events``, ``errors`` and ``display``.
"""

from __future__ import annotations

import typing as _typing

from kubenb.lazy import lazy_attributes as _lazy_attributes

if _typing.TYPE_CHECKING:  # the names for type checkers; at run time __getattr__ imports each on first use
    from kubenb.builders import BuildOptions
    from kubenb.builders.options import CloudOptions
    from kubenb.engine.facade import Engine
    from kubenb.engine.images import list_images, list_plan_images, with_base_images
    from kubenb.engine.interrupt import until_interrupted, wait_out
    from kubenb.engine.queries import (
        expand_kubefile,
        load_kubefile,
        parse_kubefile,
        parse_platform,
        undeclared_arguments,
        why,
    )
    from kubenb.engine.rebuild import unchanged_build
    from kubenb.engine.transfers import image_refs, pull_image, push_image, save_images
    from kubenb.engine.verify import CheckResult, check
    from kubenb.hosts import mirror_host
    from kubenb.registry_folder import SaveResult

#: Name -> the module that defines it, imported on first use (PEP 562): a command loads only the
#: parts of the engine it calls (``kubenb images`` never loads the registry client or the builders).
_LAZY = {
    "BuildOptions": "kubenb.builders",
    "CloudOptions": "kubenb.builders.options",
    "Engine": "kubenb.engine.facade",
    **dict.fromkeys(("list_images", "list_plan_images", "with_base_images"), "kubenb.engine.images"),
    **dict.fromkeys(("until_interrupted", "wait_out"), "kubenb.engine.interrupt"),
    "mirror_host": "kubenb.hosts",
    "unchanged_build": "kubenb.engine.rebuild",
    **dict.fromkeys(("expand_kubefile", "load_kubefile", "parse_kubefile", "parse_platform",
                     "undeclared_arguments", "why"), "kubenb.engine.queries"),
    **dict.fromkeys(("image_refs", "pull_image", "push_image", "save_images"), "kubenb.engine.transfers"),
    **dict.fromkeys(("CheckResult", "check"), "kubenb.engine.verify"),
    "SaveResult": "kubenb.registry_folder",
}


__getattr__ = _lazy_attributes(__name__, _LAZY)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "BuildOptions",
    "CheckResult",
    "CloudOptions",
    "Engine",
    "SaveResult",
    "check",
    "expand_kubefile",
    "image_refs",
    "list_images",
    "list_plan_images",
    "load_kubefile",
    "mirror_host",
    "parse_kubefile",
    "parse_platform",
    "pull_image",
    "push_image",
    "save_images",
    "unchanged_build",
    "undeclared_arguments",
    "until_interrupted",
    "wait_out",
    "why",
    "with_base_images",
]
