"""What a build is asked to do: the parsed options every builder takes."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # an unchanged rebuild never loads the Kubefile parser
    from kubenb.kubefile import BuildPlan

__all__ = ["BuildOptions", "CloudOptions"]


@dataclass(frozen=True)
class CloudOptions:
    """Where a cloud build's node is (docs/build.md, "The cloud build"): an existing machine
    (``host``, ``ssh://user@host[:port]``) or one provisioned for the build (``provider``,
    ``region``, ``size``, ``image``; credentials only from the environment, never here)."""

    host: str | None = None
    provider: str | None = None
    region: str | None = None
    size: str | None = None
    image: str | None = None
    user: str = "root"  # who logs in to a provisioned machine (--host names its own)
    ssh_key: Path | None = None
    known_hosts: Path | None = None
    k3s_binary: Path | None = None
    ssh_port: int = 22  # of a provisioned machine
    create_arguments: tuple[tuple[str, str], ...] = ()  # --cloud-arg ex_NAME=VALUE: the provider's own


@dataclass(frozen=True)
class BuildOptions:
    """What to build and how. ``plan``, when given, is what is built (``context``, ``kubefile``
    and ``build_args`` are then what it was made from): a preview's plan, built as it was shown
    even if the Kubefile changed on disk since. Without it the builder makes the plan once."""

    tag: str
    context: Path = Path(".")
    kubefile: Path = Path("Kubefile")
    build_args: Mapping[str, str] = field(default_factory=dict)
    values: Mapping[str, tuple[Path, ...]] = field(default_factory=dict)
    set_values: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    kube_version: str | None = None
    platforms: Collection[str] | None = None
    mirrors: Mapping[str, str] = field(default_factory=dict)
    insecure: Collection[str] = ()
    ca_files: tuple[Path, ...] = ()
    no_cache: bool = False
    skip_invalid: bool = False
    skip_missing_platform: bool = False  # an image lacking a requested platform: warn, not fail
    plan: BuildPlan | None = field(default=None, repr=False)
    # the container and cloud builds (docs/build.md): the node container's image (None: the pinned
    # k3s release), keep the node afterwards (debugging), how long the cluster may take to settle
    node_image: str | None = None
    keep_node: bool = False
    wait_timeout: float = 600.0
    cloud: CloudOptions = field(default_factory=CloudOptions)
