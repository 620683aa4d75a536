"""``Engine``: the one door to kubenb, one method per thing a user asks for.

The CLI, the magics and the widgets each make an ``Engine`` from their options (store root,
registry options, where events go) and call one method per user action; they import nothing
below the engine. So a second front end repeats no logic, and a change below (a plan read once,
a token passed down) changes one place.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kubenb.events import CancelToken, EventSink, ignore
from kubenb.model import ClusterImage, ImageList
from kubenb.store import Store, default_root

if TYPE_CHECKING:
    from kubenb.builders import BuildOptions
    from kubenb.engine.verify import CheckResult
    from kubenb.kubefile import BuildPlan
    from kubenb.registry_folder import SaveResult

# Each verb imports the layers below it where it runs (the PLC0415 exemptions): the builders, the
# registry client (requests) and discovery (yaml) cost a quarter of a second to import, which a
# ``kubenb images`` or ``kubenb tag`` must not pay (bench/startup.py).


__all__ = ["Engine"]


class Engine:
    """kubenb for one store, one set of registry options and one listener.

    ``root`` is the store (default ``$KUBENB_ROOT``, else ``$XDG_DATA_HOME/kubenb``).
    ``mirrors``, ``insecure`` and ``ca_files`` are ``--registry-mirror``,
    ``--insecure-registry`` and ``--registry-ca``: every verb that talks to a registry applies
    them. ``events`` receives the progress of every call; the engine never prints.
    ``cancel_token`` (a fresh one by default) asks the work to stop: :meth:`cancel` sets it
    from any thread (a Cancel button), and the running call raises ``Cancelled``.
    """

    def __init__(
        self,
        root: str | Path | None = None,
        *,
        mirrors: Mapping[str, str] | None = None,
        insecure: Collection[str] = (),
        ca_files: Sequence[str | Path] = (),
        events: EventSink = ignore,
        cancel_token: CancelToken | None = None,
    ) -> None:
        self._named_root = Path(root) if root else None  # a named store must exist for check
        self.root = self._named_root or default_root()
        self.mirrors = dict(mirrors or {})
        self.insecure = tuple(insecure)
        self.ca_files = tuple(Path(path) for path in ca_files)
        self.events = events
        self.cancel_token = cancel_token or CancelToken()

    def with_events(self, events: EventSink) -> Engine:
        """The same store and registry options reporting to ``events``, with a fresh cancel
        token: a panel's second build must not start out cancelled by its first."""
        return Engine(self._named_root, mirrors=self.mirrors, insecure=self.insecure, ca_files=self.ca_files,
                      events=events)

    def cancel(self) -> None:
        """Ask the running call to stop; safe from any thread, and more than once."""
        self.cancel_token.cancel()

    # -- images in a context ------------------------------------------------------------------

    def list_images(self, context: str | Path = ".", *, kubefile: str | Path | None = None,
                    build_args: Mapping[str, str] | None = None, **options: Any) -> ImageList:
        """The image list of a lite build of ``context`` (``options``: ``values``, ``set``,
        ``kube_version``, ``helm_backend``), with the images its base cluster image carries."""
        from kubenb.engine.images import list_images  # noqa: PLC0415

        return list_images(context, kubefile=kubefile, root=self.root, build_args=build_args, **options)

    def plan(self, context: str | Path = ".", *, kubefile: str | Path | None = None,
             build_args: Mapping[str, str] | None = None) -> BuildPlan:
        """The Kubefile of ``context`` read, expanded and its COPY sources resolved, once: a
        preview and the build after it both take this plan, so they see the same Kubefile."""
        from kubenb.kubefile import plan_build  # noqa: PLC0415

        return plan_build(context, kubefile, build_args)

    def list_plan_images(self, plan: BuildPlan, **options: Any) -> ImageList:
        """``list_images`` of a plan already made (a preview that may then build it)."""
        from kubenb.engine.images import list_plan_images  # noqa: PLC0415

        return list_plan_images(plan, root=self.root, **options)

    def save_choice(self, context: str | Path, found: ImageList, chosen: Iterable[str]) -> list[Path]:
        """Make ``chosen`` the images a build of ``context`` carries (a review); the files written."""
        from kubenb.discover import save_choice  # noqa: PLC0415

        return save_choice(Path(context), found, chosen)

    def build(self, options: BuildOptions, *, builder: str = "lite") -> ClusterImage:
        """Build ``options.kubefile`` into the image ``options.tag``; this engine's registry
        options are added to those of ``options``. A cancel leaves the store as it was."""
        from kubenb.builders import build as run_builder  # noqa: PLC0415

        self.cancel_token.check()
        merged = replace(
            options,
            mirrors={**self.mirrors, **options.mirrors},
            insecure=tuple(dict.fromkeys([*self.insecure, *options.insecure])),
            ca_files=tuple(dict.fromkeys([*self.ca_files, *options.ca_files])),
        )
        return run_builder(merged, builder=builder, store=self._store(), events=self.events, cancel=self.cancel_token)

    # -- the store ----------------------------------------------------------------------------

    def _store(self) -> Store:
        return Store(self.root)

    def images(self) -> list[ClusterImage]:
        """Every named image in the store."""
        return self._store().images()

    def inspect(self, name: str) -> dict[str, Any]:
        """``kubenb inspect``: the image's record, layers, config and annotations as JSON values."""
        return self._store().inspect(name)

    def tag(self, source: str, target: str) -> ClusterImage:
        """Give the image ``source`` the name ``target`` too."""
        return self._store().tag(source, target)

    def rmi(self, name: str) -> None:
        """Remove the name ``name``, and the blobs no other image uses."""
        self._store().remove(name)

    def save(self, name: str, file: str | Path) -> None:
        """Write the image ``name`` to the OCI archive ``file``."""
        self._store().save(name, Path(file))

    def load(self, file: str | Path) -> list[ClusterImage]:
        """Read every image of the OCI archive ``file`` into the store."""
        return self._store().load(Path(file))

    def export(self, name: str, destination: str | Path) -> None:
        """Write the merged rootfs of ``name`` to the folder ``destination``."""
        self._store().export(name, Path(destination))

    def check(self, registry_folder: str | Path | None = None) -> CheckResult:
        """Verify the store and, if given, a registry folder; problems are returned, not raised."""
        from kubenb.engine.verify import check  # noqa: PLC0415

        return check(self._named_root, registry_folder)

    # -- registries ---------------------------------------------------------------------------

    def _registry_options(self) -> dict[str, Any]:
        return {"mirrors": self.mirrors, "insecure": self.insecure, "ca_files": self.ca_files, "events": self.events,
                "cancel": self.cancel_token}

    def save_images(self, output: str | Path, images: Sequence[str] = (), *, list_file: str | Path | None = None,
                    platforms: Collection[str] | None = None, skip_missing_platform: bool = False) -> SaveResult:
        """Pull ``images`` (and those of ``list_file``) into the registry folder ``output``."""
        from kubenb.engine.transfers import save_images  # noqa: PLC0415

        return save_images(output, images, list_file=list_file, platforms=platforms,
                           skip_missing_platform=skip_missing_platform, **self._registry_options())

    def push(self, name: str, destination: str | None = None) -> str:
        """Push the stored image ``name`` to ``destination`` (default: ``name``); the manifest digest."""
        from kubenb.engine.transfers import push_image  # noqa: PLC0415

        return push_image(name, destination, root=self.root, **self._registry_options())

    def pull(self, reference: str, *, name: str | None = None, platform: str | None = None) -> ClusterImage:
        """Pull the cluster image ``reference`` into the store (from an index, ``platform``'s child)."""
        from kubenb.engine.transfers import pull_image  # noqa: PLC0415

        return pull_image(reference, root=self.root, name=name, platform=platform, **self._registry_options())

    def login(self, registry: str, username: str, password: str) -> Path:
        """Check the credentials against ``registry``, then save them; the credentials file.

        Plain HTTP (or unverified TLS) only when ``registry`` is one of this engine's insecure hosts.
        """
        from kubenb.registry import login  # noqa: PLC0415
        from kubenb.registry.credentials import registry_host  # noqa: PLC0415

        insecure = registry_host(registry) in {registry_host(host) for host in self.insecure}
        return login(registry, username, password, insecure=insecure, ca_files=self.ca_files)

    def logout(self, registry: str) -> bool:
        """Forget the saved credentials of ``registry``; False when there were none."""
        from kubenb.registry import logout  # noqa: PLC0415

        return logout(registry)
