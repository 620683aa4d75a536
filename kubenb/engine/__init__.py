"""The engine (layer 6): the one door the front ends go through.

``Engine`` holds the store root, the registry options, an event sink and a cancel token, and
has one method per user verb. The functions next to it are the same work for callers that
hold no engine (the public ``kubenb.list_images``, benchmarks) and the small pure questions a
front end asks while reading its options. The CLI, the magics, the widgets and ``display``
import only this package, ``model``, ``events``, ``errors`` and ``display``.
"""

from __future__ import annotations

from kubenb.builders import BuildOptions
from kubenb.engine.facade import Engine
from kubenb.engine.images import list_images, list_plan_images, with_base_images
from kubenb.engine.queries import (
    expand_kubefile,
    load_kubefile,
    mirror_host,
    parse_kubefile,
    parse_platform,
    undeclared_arguments,
    why,
)
from kubenb.engine.transfers import image_refs, pull_image, push_image, save_images
from kubenb.engine.verify import CheckResult, check
from kubenb.registry_folder import SaveResult

__all__ = [
    "BuildOptions",
    "CheckResult",
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
    "undeclared_arguments",
    "why",
    "with_base_images",
]
