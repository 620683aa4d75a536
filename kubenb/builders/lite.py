"""The lite build: a Kubefile into a cluster image, with no cluster started.

FROM gives the base rootfs (the standard empty folders, or a cluster image from the store);
each COPY and each build-host RUN adds a layer; cluster commands and CMD are recorded; then
discovery lists every image the rootfs needs and the pull writes them into ``registry/``,
which becomes the last layer (each blob straight into that layer: ``registry_layer.py``).
The rootfs is built in a temporary folder inside the store and removed afterwards, whatever
happens, so a failed, cancelled or killed build leaves the store as it was. A cancel token is
checked between steps and passed to what takes time (a RUN, the pulls), which stop at once
and raise ``Cancelled``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from kubenb.builders import unchanged
from kubenb.builders.copy import copy_into_rootfs, explain_sources_run_wrote
from kubenb.builders.fingerprints import Fingerprints
from kubenb.builders.layers import changes, snapshot, write_layer
from kubenb.builders.options import BuildOptions
from kubenb.builders.registry_layer import RegistryLayer
from kubenb.builders.run import run_on_host
from kubenb.builders.steps import needs_cluster
from kubenb.discover import DiscoveryOptions, apply_review, discover, view_of_folder
from kubenb.discover.persist import kubenb_version
from kubenb.errors import BuildError, InvalidReferenceError, StoreError
from kubenb.events import CancelToken, EventSink, Message
from kubenb.kubefile import STANDARD_FOLDERS, BuildPlan, pairs, plan_build
from kubenb.model import ImageList, ImageRef, Instruction, Kubefile
from kubenb.oci import apply_layer, resolve_in_root
from kubenb.oci.platforms import parse_platform, platform_matches
from kubenb.reference import parse_reference
from kubenb.registry_folder import RegistryFolder, save_images, saved_problems
from kubenb.store import IMAGES_ANNOTATION, ClusterImage, Layer, PlacedFile, Store
from kubenb.store.space import translating_disk_full

__all__ = ["LiteBuild", "LiteBuilder", "build_workspace", "image_annotations"]


@dataclass
class _State:
    """What the build has so far: layers, the cache key chain, what is recorded for deploy time."""

    layers: list[Layer] = field(default_factory=list)
    key: str = ""
    arguments: dict[str, str] = field(default_factory=dict)  # ARG values in effect: never recorded
    environment: dict[str, str] = field(default_factory=dict)  # ENV values: recorded for deploy time
    labels: dict[str, str] = field(default_factory=dict)
    deploy_commands: list[str] = field(default_factory=list)
    history: list[str] = field(default_factory=list)
    platform: str | None = None  # FROM --platform, else the base image's
    platform_asked: bool = False  # whether FROM --platform named it
    run_wrote: dict[str, int] = field(default_factory=dict)  # rootfs path -> line of the RUN that wrote it

    @property
    def run_environment(self) -> dict[str, str]:
        """What a build-host RUN sees: the ARG values (``--build-arg`` over the default), then
        ENV, which overrides an ARG of the same name wherever each is written (as in docker)."""
        return {**self.arguments, **self.environment}


class LiteBuilder:
    """Builds without a cluster; the other builders share its interface (``build``)."""

    name = "lite"

    def build(self, options: BuildOptions, store: Store, events: EventSink,
              cancel: CancelToken | None = None, *, found: unchanged.Inputs | None = None) -> ClusterImage:
        """Build ``options.plan``, or the plan of ``options.kubefile`` made here from the bytes
        ``found`` (the inputs of the record of an unchanged rebuild) read: the one read of it."""
        found = found or unchanged.inputs_of(options, store, self.name)
        if found is not None:
            unchanged.walk_context(found)  # before the plan reads the context
        plan = options.plan or plan_build(options.context, options.kubefile, options.build_args,
                                          data=found.kubefile_bytes if found is not None else None)
        kubefile = plan.require_kubefile()
        warnings: list[str] = []
        with translating_disk_full(store.root, f"the build of {options.tag}"), store.lock(), \
                build_workspace(store.root) as work:
            store.remove_leftovers()  # of a killed build: this one holds the lock now
            build = LiteBuild(plan, kubefile, options, store, unchanged.warnings_of(events, warnings), work,
                           cancel or CancelToken(), hashed=unchanged.known(None if options.no_cache else found, store))
            image = build.run()
            unchanged.record(found, store, image, plan=plan, hashed=build.hashed, warnings=warnings)
            return image


@dataclass
class LiteBuild:
    """One build in progress: its inputs, its workspace and what it has so far. The cluster
    build (``builders/cluster.py``) extends it through its hooks, so both lay out the rootfs and
    write the registry layer with the same code."""

    plan: BuildPlan
    kubefile: Kubefile  # the plan's
    options: BuildOptions
    store: Store
    events: EventSink
    work: Path
    cancel: CancelToken
    state: _State = field(default_factory=_State)
    hashed: Fingerprints = field(default_factory=Fingerprints)  # the COPY sources, with their stats
    pull_folder: RegistryFolder | None = None  # the registry folder of the pull that made the registry layer

    @property
    def rootfs(self) -> Path:
        return self.work / "rootfs"

    def run(self) -> ClusterImage:
        total = len(self.kubefile.instructions)
        for number, instruction in enumerate(self.kubefile.instructions, 1):
            self.cancel.check()
            self.events(Message(f"Step {number}/{total}: {instruction.to_text()}"))
            self.step(instruction)
        self.cancel.check()
        self.after_steps()
        self.cancel.check()
        images = self.cache_images()
        self.cancel.check()  # the last moment: once committed, the image is built
        return self.store.commit(
            self.options.tag, self.state.layers, labels=self.state.labels,
            annotations=self.annotations(images), history=self.state.history,
            platform=self.state.platform, created=self.store.creation_time(self.state.key),
        )

    # The three places a cluster build (builders/cluster.py) differs from this one.

    def after_steps(self) -> None:
        """What happens between the Kubefile's steps and the caching of images: nothing here."""

    def more_images(self, found: ImageList) -> ImageList:
        """The images to cache besides what discovery found in the rootfs: none here."""
        return found

    def annotations(self, images: Mapping[str, str]) -> dict[str, str]:
        """The cluster image's annotations (the same keys for every builder)."""
        return image_annotations(self.kubefile, self.state, images)

    def step(self, instruction: Instruction) -> None:
        keyword, state = instruction.keyword, self.state
        if keyword == "FROM":
            base = str(instruction.args)
            platform = _from_platform(instruction, self.kubefile)
            image = _base_image(base, platform, self.options, self.store, self.events, cancel=self.cancel)
            if image is not None and platform is not None and not platform_matches(image.platform, platform):
                raise BuildError(f"the base image {base} in the store is for {image.platform}, not {platform}",
                                 file=self.kubefile.path, line=instruction.line,
                                 hint=f"replace it with: kubenb pull --platform {platform} {base}")
            state.platform = platform or (image.platform if image is not None else None)
            state.platform_asked = platform is not None
            _from(base, image, self.store, self.rootfs, state)
        elif keyword == "ARG":
            given = self.plan.build_args
            state.arguments.update({k: v for k, d in pairs(instruction) if (v := given.get(k, d)) is not None})
        elif keyword == "ENV":
            state.environment.update({k: v for k, v in pairs(instruction) if v is not None})
        elif keyword == "LABEL":
            state.labels.update({k: v or "" for k, v in pairs(instruction)})
        elif keyword == "CMD" or (keyword == "RUN" and needs_cluster(instruction.args)):
            state.deploy_commands.append(instruction.to_text())
            self.events(Message(f"  recorded for deploy time: {instruction.to_text()}"))
        else:
            files = self.copy_files(instruction) if keyword == "COPY" else {}
            before = snapshot(self.rootfs) if keyword == "RUN" else None
            key = _step_key(state.key, instruction, files, self.hashed,
                            environment=state.run_environment if keyword == "RUN" else {})
            self.add_layer(key, instruction.to_text(),
                           lambda: _layer_of(lambda: self.apply(instruction, files), self.store, self.rootfs,
                                             f"the layer of line {instruction.line} ({instruction.keyword})"))
            if before is not None:  # remembered for COPY's message: RUN writes the rootfs, not the context
                state.run_wrote.update(dict.fromkeys(changes(before, snapshot(self.rootfs))[0], instruction.line))

    def add_layer(self, key: str, description: str, make_layer: Callable[[], Layer]) -> bool:
        """Reuse the cached layer of ``key`` (applied to the rootfs) or make the layer (which runs
        the step); True when the cache answered."""
        cached = None if self.options.no_cache else self.store.cached_layer(key)
        if cached is not None:
            with self.store.open_layer(cached) as stream:
                apply_layer(stream, self.rootfs, cached.digest)
            self.events(Message("  using cache"))
            layer = cached
        else:
            layer = make_layer()
            self.store.cache_layer(key, layer)
        self.state.layers.append(layer)
        self.state.key = key
        self.state.history.append(description)
        return cached is not None

    def copy_files(self, instruction: Instruction) -> dict[str, Path]:
        """What the planned COPY writes where, DEST taken as a folder when the rootfs has one
        there (the base image's or a RUN's); a COPY that cannot be done fails here, with the
        RUN that wrote a missing source named when there is one."""
        step = self.plan.copy_step(instruction)
        if step.problem is not None:
            explain_sources_run_wrote(instruction, self.kubefile, self.plan.context, self.state.run_wrote)
        return step.files(lambda target: resolve_in_root(self.rootfs, target).is_dir())

    def apply(self, instruction: Instruction, files: Mapping[str, Path]) -> None:
        if instruction.keyword == "COPY":
            copy_into_rootfs(instruction, files, self.kubefile, self.rootfs)
        else:
            run_on_host(instruction, self.kubefile, self.rootfs, self.state.run_environment, self.events,
                        cancel=self.cancel)

    def cache_images(self) -> dict[str, str]:
        """Discover over the rootfs, then pull every image into ``registry/`` as the last layer."""
        options = self.options
        discovery = DiscoveryOptions(values=options.values, set_values=options.set_values,
                                     kube_version=options.kube_version)
        found = apply_review(self.more_images(discover(view_of_folder(self.rootfs), discovery,
                                                       memo=self.store.memo_folder, refresh=options.no_cache,
                                                       events=self.events)), self.plan.context)
        if found.excluded:
            self.events(Message(f"  left out by the review (.kubenb/exclude): {len(found.excluded)} image(s)"))
        if found.invalid and not options.skip_invalid:
            first = found.invalid[0]
            raise BuildError(f"{len(found.invalid)} invalid image reference(s), first {first.written!r} at "
                             f"{first.location}: {first.reason}", hint="fix it, or build with --skip-invalid")
        refs = [f.image for f in found.images]
        self.events(Message(f"Caching {len(refs)} images into registry/"))
        key = _images_key(self.state.key, [str(ref) for ref in refs], self.platforms, options.skip_missing_platform)
        description = f"cache {len(refs)} images into registry/"
        noted = None if options.no_cache else self.noted_registry(key, description, refs)
        if noted is not None:
            return noted
        if self.add_layer(key, description, lambda: self.pull_layer(refs)):
            self.check_registry(refs, None)  # the build cache answered: check what it gave
        # the pull's (in memory), else the cached layer's, on disk; those --skip-missing-platform left out are not in it
        folder = self.pull_folder or RegistryFolder(self.registry)
        images = {str(ref): digest for ref in refs if (digest := _digest_in(folder, ref)) is not None}
        self.store.note_step(key, {"kubenb": kubenb_version(), "images": images})  # checked: for the next build
        return images

    def noted_registry(self, key: str, description: str, refs: list[ImageRef]) -> dict[str, str] | None:
        """The fast path of an unchanged rebuild: the registry layer of ``key`` is in the build
        cache, and this kubenb version checked it and noted its image digests; the layer is then
        added as it is, never unpacked or read again (its key holds everything it depends on:
        the rootfs before it, the images, the platforms). None when any of that is missing."""
        layer = self.store.cached_layer(key)
        note = self.store.step_note(key) if layer is not None else None
        if layer is None or note is None or note.get("kubenb") != kubenb_version():
            return None
        images, names = note.get("images"), {str(ref) for ref in refs}
        if not isinstance(images, dict) or not all(isinstance(d, str) and r in names for r, d in images.items()):
            return None
        if set(images) != names and not self.options.skip_missing_platform:
            return None  # only --skip-missing-platform leaves an image out: check the layer instead
        for ref in sorted(names - set(images)):  # said again on every build, as the check does
            self.events(Message(f"warning: {ref} lacks every requested platform: left out "
                                "(--skip-missing-platform)", level="warning"))
        self.events(Message("  using cache (checked when it was made)"))
        self.state.layers.append(layer)
        self.state.key = key
        self.state.history.append(description)
        return {str(ref): images[str(ref)] for ref in refs if str(ref) in images}

    def pull_layer(self, refs: list[ImageRef]) -> Layer:
        """Pull every image straight into the registry layer (``builders/registry_layer.py``):
        each blob is written once, into its place in the layer, as it downloads.

        Image layers are compressed already, so this layer is a plain tar: a second gzip would
        cost time and save nothing.
        """
        failures: list[BaseException] = []

        def produce(out: PlacedFile) -> None:
            layer = RegistryLayer(self.rootfs, self.registry, out)
            self.pull_folder = layer.folder

            def pull() -> None:
                try:
                    self.pull(refs, layer)
                except BaseException as error:  # handed to the building thread, which raises it
                    failures.append(error)
                finally:
                    layer.close()

            worker = threading.Thread(target=pull, name="kubenb-pull", daemon=True)
            worker.start()
            try:
                layer.follow()
            finally:
                worker.join()  # every download has stopped: none writes into the file any more
            if failures:
                raise failures[0]
            layer.finish()

        return self.store.place_layer(produce, what="the registry layer")

    @property
    def registry(self) -> Path:
        """The rootfs's ``registry/``, wherever a symlink of the base image puts it inside the rootfs."""
        return resolve_in_root(self.rootfs, "registry")

    @property
    def platforms(self) -> list[str] | None:
        """What the registry folder keeps of multi-platform images: ``--platform``, else the
        platform ``FROM --platform`` asked for, else every platform."""
        if self.options.platforms:
            return [parse_platform(p) for p in self.options.platforms]
        return [self.state.platform] if self.state.platform_asked and self.state.platform else None

    def pull(self, refs: list[ImageRef], layer: RegistryLayer) -> None:
        from kubenb.registry import Registries  # noqa: PLC0415  (an unchanged rebuild never loads the HTTP client)
        options = self.options
        with Registries(mirrors=options.mirrors, insecure=options.insecure, ca_files=options.ca_files,
                        events=self.events, cancel=self.cancel) as registries, \
                translating_disk_full(self.registry, "the images into registry/"):
            result = save_images(refs, layer.folder, registries=registries, platforms=self.platforms,
                                 skip_missing_platform=options.skip_missing_platform, verb="build",
                                 events=self.events, cancel=self.cancel, sink=layer)
        self.check_registry(refs, {saved.image for saved in result.images if saved.left_out}, layer.folder)

    def check_registry(self, refs: list[ImageRef], left_out: set[ImageRef] | None,
                       folder: RegistryFolder | None = None) -> None:
        """Fail unless ``registry/`` serves every image whole (never a silent gap: docs/build.md).
        ``left_out`` None: a cached layer, whose left-out images are those it lacks. ``folder``:
        the pull's, which serves the blobs it wrote into the layer."""
        folder = folder or RegistryFolder(self.registry)
        if left_out is None:
            left_out = {ref for ref in refs if self.options.skip_missing_platform and _digest_in(folder, ref) is None}
            for ref in sorted(left_out, key=str):
                self.events(Message(f"warning: {ref} lacks every requested platform: left out "
                                    "(--skip-missing-platform)", level="warning"))
        if problems := saved_problems(folder, refs, self.platforms, left_out):
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise BuildError(f"the registry layer is not whole: {problems[0]}{more}",
                             hint="nothing was stored; build with --no-cache, and save again a registry folder that "
                                  "the base image or a COPY brings")


def _digest_in(folder: RegistryFolder, ref: ImageRef) -> str | None:
    """The digest ``ref`` has in the registry folder, None when it is not stored there."""
    digest = folder.tag_digest(ref.repository, ref.tag) if ref.tag else ref.digest
    return digest if digest is not None and folder.selection(ref.repository, digest, None) is not None else None


def _images_key(parent: str, images: list[str], platforms: list[str] | None, skip_missing: bool) -> str:
    """The cache key of the registry layer: the rootfs so far, the images, the platforms, and
    whether images lacking one may be left out (a layer that left some out serves only that)."""
    text = json.dumps([parent, sorted(images), sorted(platforms or [])] + (["skip-missing"] if skip_missing else []))
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def _from_platform(instruction: Instruction, kubefile: Kubefile) -> str | None:
    written = instruction.flag("platform")
    if written is None:
        return None
    try:
        return parse_platform(written)
    except InvalidReferenceError as error:
        raise BuildError(error.message, file=kubefile.path, line=instruction.line, hint=error.hint) from None


def _base_image(base: str, platform: str | None, options: BuildOptions, store: Store,
                events: EventSink, *, cancel: CancelToken) -> ClusterImage | None:
    """The FROM image: None for scratch, else from the store, else pulled from its registry."""
    if base == "scratch":
        return None
    try:
        return store.get(base)
    except StoreError:
        events(Message(f"  {base} is not in the store: pulling it"))
    ref = parse_reference(base)
    from kubenb.registry import Registries  # noqa: PLC0415  (loaded only when a pull is needed)
    with Registries(mirrors=options.mirrors, insecure=options.insecure, ca_files=options.ca_files,
                    events=events, cancel=cancel) as registries:
        return store.pull(ref, registries.client_for(ref), name=base, platform=platform, cancel=cancel)


def _from(base: str, image: ClusterImage | None, store: Store, rootfs: Path, state: _State) -> None:
    rootfs.mkdir()
    if image is not None:
        store.export(image.name, rootfs)
        state.layers.extend(store.layers(image.name))
        state.key = image.id
    for folder in STANDARD_FOLDERS:  # through the base image's symlinks, inside the rootfs
        path = resolve_in_root(rootfs, folder)
        if os.path.lexists(path) and not path.is_dir():
            raise BuildError(f"{folder} in the base image {base} is not a folder",
                             hint="a cluster image keeps manifests, charts, etc and registry as folders")
        path.mkdir(parents=True, exist_ok=True)
    state.history.append(f"FROM {base}")


def _layer_of(action: Callable[[], None], store: Store, rootfs: Path, what: str) -> Layer:
    """Run ``action`` and keep what it changed in the rootfs as a layer, streamed into the store."""
    before = snapshot(rootfs)
    with translating_disk_full(rootfs, what, lambda: _size_of(rootfs, changes(before, snapshot(rootfs))[0])):
        action()
    changed, deleted = changes(before, snapshot(rootfs))
    return store.write_layer(lambda out: write_layer(rootfs, changed, deleted, out), what=what,
                             expected=_size_of(rootfs, changed))


def _size_of(rootfs: Path, paths: list[str]) -> int:
    """Bytes of the regular files among ``paths``: what a layer of them about takes."""
    return sum(info.st_size for path in paths if stat.S_ISREG((info := os.lstat(rootfs / path)).st_mode))


def _step_key(parent: str, instruction: Instruction, files: Mapping[str, Path], hashed: Fingerprints,
              *, environment: Mapping[str, str] | None = None) -> str:
    """The build-cache key: the parent's key, the instruction, for RUN the ARG/ENV values it
    sees (hashed: another --build-arg runs it again, and a token is written nowhere), and for
    COPY where each file goes, its permission bits (COPY keeps them) and its bytes (``hashed``
    reads them 1 MiB at a time and keeps each file's stat for the next build)."""
    digest = hashlib.sha256(f"{parent}\n{instruction.to_text()}".encode())
    if environment:
        digest.update(json.dumps(sorted(environment.items())).encode())
    for target, source in sorted(files.items()):
        content = hashed.digest(source)
        mode = stat.S_IMODE(hashed.seen[str(source)].signature[0])
        digest.update(target.encode() + f"\0{mode:o}\0".encode() + content)
    return "sha256:" + digest.hexdigest()


def image_annotations(kubefile: Kubefile, state: _State, images: Mapping[str, str],
                      builder: str = "lite") -> dict[str, str]:
    return {
        "io.kubenb.kubefile": "".join(f"{i.original}\n" for i in kubefile.instructions),
        IMAGES_ANNOTATION: json.dumps(dict(sorted(images.items()))),
        "io.kubenb.deploy-commands": json.dumps(state.deploy_commands),
        # what recorded commands see at deploy time: ENV only, never an ARG (a --build-arg may be a token)
        "io.kubenb.environment": json.dumps(state.environment),
        "io.kubenb.builder": builder,
    }


@contextmanager
def build_workspace(root: Path) -> Iterator[Path]:
    """A fresh build folder in the store, removed afterwards. Called under the store lock, so
    any other build folder is left over from a killed build and can go."""
    (root / "tmp").mkdir(parents=True, exist_ok=True)
    for stale in (root / "tmp").glob("build-*"):
        shutil.rmtree(stale, ignore_errors=True)
    work = Path(tempfile.mkdtemp(prefix="build-", dir=root / "tmp"))
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)
