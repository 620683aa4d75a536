"""Small questions the front ends ask while reading options: pure, no store and no network.

They sit behind the engine's door so that the CLI, the magics and the widgets never import the
layers below it: an argparse type checks a platform or a mirror with the same parser a build
uses, and ``kubenb parse`` reads a Kubefile with the same reader.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from kubenb.hosts import mirror_host
from kubenb.kubefile import declared_arguments, expand, load, parse, read_kubefile
from kubenb.model import ImageList, Kubefile, Place
from kubenb.oci.platforms import parse_platform

__all__ = ["expand_kubefile", "load_kubefile", "mirror_host", "parse_kubefile", "parse_platform",
           "undeclared_arguments", "why"]


def parse_kubefile(path: str | Path, *, text: str | None = None) -> Kubefile:
    """The Kubefile at ``path`` parsed (not expanded); ``text``, when given, is its content
    (``kubenb parse -f -`` reads standard input and names it ``path``)."""
    return parse(read_kubefile(path) if text is None else text, path=str(path))


def load_kubefile(path: str | Path, build_args: Mapping[str, str] | None = None) -> Kubefile:
    """The Kubefile at ``path`` parsed and expanded for ``build_args``: what a preview shows."""
    return load(path, build_args)


def expand_kubefile(kubefile: Kubefile, build_args: Mapping[str, str] | None = None) -> Kubefile:
    """``kubefile`` with its ARG and ENV variables substituted for ``build_args``."""
    return expand(kubefile, build_args)


def undeclared_arguments(kubefile: Kubefile, build_args: Mapping[str, str]) -> list[str]:
    """The ``--build-arg`` names no ARG declares, sorted: they have no effect, worth a warning."""
    return sorted(set(build_args) - declared_arguments(kubefile))


def why(images: ImageList, image: str) -> tuple[Place, ...]:
    """Every place ``image`` was found, each with its kind, whether it is given normalised, as
    written, or in any spelling of the same reference (``nginx`` finds
    ``docker.io/library/nginx:latest``): ``ImageList.why`` itself, one normalisation for both."""
    return images.why(image)
