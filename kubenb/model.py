"""Frozen records that flow one way through kubenb (see docs/architecture.md, "The way data travels").

Nothing here does I/O or imports from other kubenb modules but ``errors``: these are the
values the layers hand to each other, so they must be cheap to build, compare and hash.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from kubenb.errors import InvalidReferenceError

if TYPE_CHECKING:
    import pandas

__all__ = ["CLUSTER_IMAGES_ANNOTATION", "IMAGES_ANNOTATION", "KEYWORDS", "ClusterImage", "Flag", "ImageRef",
           "Instruction", "Kubefile", "Layer", "Place"]

#: The instructions a Kubefile may hold, in the order users meet them in the docs.
KEYWORDS: tuple[str, ...] = ("FROM", "COPY", "RUN", "CMD", "ARG", "ENV", "LABEL")


@dataclass(frozen=True)
class Flag:
    """A ``--name=value`` option written before an instruction's arguments."""

    name: str
    value: str

    def __str__(self) -> str:
        return f"--{self.name}={self.value}"


@dataclass(frozen=True)
class Instruction:
    """One instruction of a Kubefile, as written and (after expansion) as meant.

    ``args`` is the shell-form text (continuations joined) or, for the JSON (exec) form, the
    tuple of strings. ``original`` keeps the exact source lines so errors and reprs can quote
    the user's own text, and ``line``/``end_line`` say where it stands (1-based, inclusive).
    """

    keyword: str
    args: str | tuple[str, ...]
    line: int
    end_line: int
    original: str
    flags: tuple[Flag, ...] = ()

    @property
    def exec_form(self) -> bool:
        return isinstance(self.args, tuple)

    def flag(self, name: str) -> str | None:
        """The value of flag ``name``, or None when it was not given."""
        return next((f.value for f in self.flags if f.name == name), None)

    def to_text(self) -> str:
        """One canonical line that parses back to an equal instruction."""
        parts = [self.keyword, *(str(f) for f in self.flags)]
        if isinstance(self.args, tuple):
            parts.append(json.dumps(list(self.args)))
        elif self.args:
            parts.append(self.args)
        return " ".join(parts)

    def to_dict(self) -> dict[str, object]:
        """The JSON shape of ``kubenb parse -o json`` (a stable contract)."""
        return {
            "instruction": self.keyword,
            "args": list(self.args) if isinstance(self.args, tuple) else self.args,
            "flags": {f.name: f.value for f in self.flags},
            "line": self.line,
            "end_line": self.end_line,
            "original": self.original,
        }


@dataclass(frozen=True)
class Kubefile:
    """A parsed Kubefile: its instructions in order and the path they were read from."""

    instructions: tuple[Instruction, ...]
    path: str = "Kubefile"

    def to_text(self) -> str:
        return "".join(instruction.to_text() + "\n" for instruction in self.instructions)

    def of_kind(self, keyword: str) -> tuple[Instruction, ...]:
        return tuple(i for i in self.instructions if i.keyword == keyword)

    @property
    def base(self) -> str:
        """The FROM image as written (after expansion when the Kubefile was expanded)."""
        (from_,) = self.of_kind("FROM")
        assert isinstance(from_.args, str)
        return from_.args


@dataclass(frozen=True, order=True)
class ImageRef:
    """A normalised container image reference (docker's rules).

    ``domain`` is the registry host (with port), ``path`` the repository without the domain
    (``library/nginx``), which is also the repository name in a registry folder (mirror
    semantics). ``tag`` is None only when a digest pins the image.
    """

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None
    written: str = field(default="", compare=False, hash=False)

    @property
    def name(self) -> str:
        """``domain/path``: the repository as a registry client names it."""
        return f"{self.domain}/{self.path}"

    @property
    def repository(self) -> str:
        """The repository inside a registry folder: the path without the source domain."""
        return self.path

    def __str__(self) -> str:
        text = self.name
        if self.tag is not None:
            text += f":{self.tag}"
        if self.digest is not None:
            text += f"@{self.digest}"
        return text


#: Where an image can be found, in the order a lite build looks (see docs/discovery.md); ``cluster``:
#: pulled by the cluster of a container or cloud build (docs/build.md), never seen by a lite one.
SOURCES: tuple[str, ...] = ("base", "imageList", "manifest", "chart", "review", "cluster")


@dataclass(frozen=True, order=True)
class Location:
    """Where one image reference was written: enough for a user to open the file and see it.

    ``path`` is the YAML path inside the document (``spec.template.spec.containers[0].image``),
    ``object`` the Kubernetes object (``Deployment/web``), ``chart`` the chart that rendered it.
    ``reason`` says why a potential image is listed (``flag --engine-image``, ``env KAFKA_IMAGES
    line 2``): a person reviewing the list needs it to decide; other places have none.
    """

    source: str
    file: str
    line: int | None = None
    path: str | None = None
    object: str | None = None
    chart: str | None = None
    written: str = ""
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source, "file": self.file, "line": self.line, "path": self.path,
            "object": self.object, "chart": self.chart, "reason": self.reason,
        }

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        details = [d for d in (self.object, self.path) if d]
        chart = f" (chart {self.chart})" if self.chart else ""
        reason = f" [{self.reason}]" if self.reason else ""
        return " ".join([where, *details]) + chart + reason


@dataclass(frozen=True, order=True)
class Place(Location):
    """A place :meth:`ImageList.why` answers with: the location, and what the image is there
    (``image``, ``potential``, ``test``, ``excluded`` or ``invalid``): whoever asks where an image
    comes from also needs to know whether a build carries it."""

    kind: str = "image"

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "kind": self.kind}


#: Turns a written reference into its ``ImageRef`` (docker's rules), raising
#: ``InvalidReferenceError`` for a non-reference. ``kubenb.reference`` installs its parser when
#: it is imported (and ``import kubenb`` imports it): records cannot import the layer above
#: them, yet ``ImageList.why("busybox")`` must normalise as ``kubenb list-images --why`` does.
_NORMALISE: list[Callable[[str], ImageRef]] = []


def use_normaliser(normalise: Callable[[str], ImageRef]) -> None:
    """Install the one reference normalisation ``ImageList.why`` uses (called by kubenb.reference)."""
    _NORMALISE[:] = [normalise]


@dataclass(frozen=True)
class FoundImage:
    """One normalised image and every place it was written."""

    image: ImageRef
    locations: tuple[Location, ...]

    @property
    def written(self) -> str:
        """The reference as first written (``nginx``), before normalisation."""
        return self.locations[0].written if self.locations else str(self.image)

    def to_dict(self) -> dict[str, Any]:
        return {
            "image": str(self.image),
            "written": self.written,
            "found_in": [location.to_dict() for location in self.locations],
        }


@dataclass(frozen=True)
class InvalidImage:
    """A reference written where an image belongs that is not a valid reference."""

    written: str
    location: Location
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"written": self.written, "reason": self.reason, "found_in": [self.location.to_dict()]}


@dataclass(frozen=True)
class ImageList:
    """What a lite build will carry, and what it will not, each with provenance.

    ``images`` are cached by a build; ``potential`` (image-looking strings in env values, flags,
    ConfigMap data) and ``test`` (images only Helm test hooks use) are shown apart so a person
    can opt them in; ``invalid`` stops a build unless skipped; ``excluded`` were found but a
    review (``.kubenb/exclude`` in the context) left them out; ``warnings`` explain files that
    were skipped.
    """

    images: tuple[FoundImage, ...] = ()
    potential: tuple[FoundImage, ...] = ()
    test: tuple[FoundImage, ...] = ()
    invalid: tuple[InvalidImage, ...] = ()
    warnings: tuple[str, ...] = ()
    excluded: tuple[FoundImage, ...] = ()

    def __len__(self) -> int:
        return len(self.images)

    def __iter__(self) -> Any:
        return iter(self.images)

    @property
    def references(self) -> tuple[ImageRef, ...]:
        return tuple(found.image for found in self.images)

    def why(self, image: str | ImageRef) -> tuple[Place, ...]:
        """Every place ``image`` was found, each with its kind; empty when nowhere. ``image`` may
        be given in any spelling of the reference (``busybox`` finds ``docker.io/library/busybox:latest``),
        or as written (an invalid reference is found by its text)."""
        wanted = _normalised(image)
        places = [
            _place(location, kind)
            for kind, group in (("image", self.images), ("potential", self.potential), ("test", self.test),
                                ("excluded", self.excluded))
            for found in group
            if _matches(found, image, wanted)
            for location in found.locations
        ]
        places += [_place(invalid.location, "invalid") for invalid in self.invalid if invalid.written == image]
        return tuple(places)

    def to_dict(self) -> dict[str, Any]:
        """The JSON of ``kubenb list-images -o json`` (a stable contract, see docs/architecture.md)."""
        return {
            "images": [found.to_dict() for found in self.images],
            "potential": [found.to_dict() for found in self.potential],
            "test": [found.to_dict() for found in self.test],
            "invalid": [invalid.to_dict() for invalid in self.invalid],
            "excluded": [found.to_dict() for found in self.excluded],
            "warnings": list(self.warnings),
        }

    def rows(self) -> list[dict[str, Any]]:
        """One row per image and place found, the shape tables and DataFrames show."""
        return [
            _row(found, location, kind)
            for kind, group in (("image", self.images), ("potential", self.potential), ("test", self.test),
                                ("excluded", self.excluded))
            for found in group
            for location in found.locations
        ]

    def to_dataframe(self, *, include: Iterable[str] = ("image",)) -> pandas.DataFrame:
        """A pandas DataFrame of :meth:`rows` for the kinds in ``include`` (image, potential, test,
        excluded, invalid); an invalid row holds the reference as written and its ``reason``."""
        import pandas  # noqa: PLC0415  (pandas is slow to import; only tables need it)

        kinds = set(include)
        rows = [row for row in self.rows() if row["kind"] in kinds]
        if "invalid" in kinds:
            rows += [_invalid_row(invalid) for invalid in self.invalid]
        return pandas.DataFrame(rows, columns=list(ROW_COLUMNS))


#: Every kind of row :meth:`ImageList.to_dataframe` can hold, in the order it lists them.
ROW_KINDS: tuple[str, ...] = ("image", "potential", "test", "excluded", "invalid")

ROW_COLUMNS: tuple[str, ...] = (
    "image", "registry", "repository", "tag", "digest", "kind", "source", "file", "line", "path",
    "object", "chart", "written", "reason",
)


def _row(found: FoundImage, location: Location, kind: str) -> dict[str, Any]:
    ref = found.image
    return {
        "image": str(ref), "registry": ref.domain, "repository": ref.path, "tag": ref.tag,
        "digest": ref.digest, "kind": kind, "source": location.source, "file": location.file,
        "line": location.line, "path": location.path, "object": location.object,
        "chart": location.chart, "written": location.written, "reason": location.reason,
    }


def _invalid_row(invalid: InvalidImage) -> dict[str, Any]:
    location = invalid.location
    return {
        "image": invalid.written, "registry": None, "repository": None, "tag": None, "digest": None,
        "kind": "invalid", "source": location.source, "file": location.file, "line": location.line,
        "path": location.path, "object": location.object, "chart": location.chart,
        "written": invalid.written, "reason": invalid.reason,
    }


def _normalised(image: str | ImageRef) -> ImageRef | None:
    """The reference ``image`` names, or None for text that is no reference (found as written)."""
    if isinstance(image, ImageRef):
        return image
    if not _NORMALISE:
        return None
    try:
        return _NORMALISE[0](image)
    except InvalidReferenceError:
        return None


def _matches(found: FoundImage, image: str | ImageRef, wanted: ImageRef | None) -> bool:
    if wanted is not None:
        return found.image == wanted
    return image == str(found.image) or any(image == location.written for location in found.locations)


def _place(location: Location, kind: str) -> Place:
    return Place(**{f.name: getattr(location, f.name) for f in fields(Location)}, kind=kind)


# -- the local store's records: what the front ends show of a cluster image -------------------

#: The annotation of a cluster image's manifest that maps each image it carries to its digest.
IMAGES_ANNOTATION = "io.kubenb.images"

#: The annotation of an image a container or cloud build made: each image its cluster pulled that
#: no file named (reference -> the pods that ran it, ``namespace/name``).
CLUSTER_IMAGES_ANNOTATION = "io.kubenb.cluster-images"


def _frozen(mapping: Mapping[str, str]) -> Mapping[str, str]:
    """A read-only copy, so a frozen record cannot be changed through its mappings."""
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True)
class Layer:
    """One layer blob: ``digest`` of the gzip blob, ``diff_id`` of the plain tar, ``size`` of
    the blob. The two digests differ because registries move the compressed form while the
    config (and so the image id) records the uncompressed one."""

    digest: str
    diff_id: str
    size: int

    def to_dict(self) -> dict[str, Any]:
        return {"digest": self.digest, "diff_id": self.diff_id, "size": self.size}


@dataclass(frozen=True)
class ClusterImage:
    """A named image in the store; ``id`` is the config digest, as docker's image ID is.

    A cluster image is an ordinary single-platform OCI image; this record names only the parts
    the rest of kubenb needs (id, digests, labels, annotations), so nobody parses OCI JSON to
    show one. The store makes them; every front end shows them.
    """

    name: str
    id: str
    manifest_digest: str
    created: str
    size: int
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    platform: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", _frozen(self.labels))
        object.__setattr__(self, "annotations", _frozen(self.annotations))

    @property
    def short_id(self) -> str:
        """The 12 hex digits ``kubenb images`` shows, enough to name the image again."""
        return self.id.removeprefix("sha256:")[:12]

    @property
    def carried_images(self) -> dict[str, str]:
        """The images the cluster image carries in its registry folder (reference -> digest),
        read from its manifest's annotation here only. An image from elsewhere may hold
        anything there: what is not a JSON object counts as nothing carried."""
        try:
            carried = json.loads(self.annotations.get(IMAGES_ANNOTATION, "{}"))
        except (ValueError, RecursionError):
            return {}
        if not isinstance(carried, dict):
            return {}
        return {str(ref): str(digest) for ref, digest in carried.items()}

    @property
    def cluster_images(self) -> dict[str, tuple[str, ...]]:
        """The images a container or cloud build's cluster pulled (reference -> the pods that
        ran it), from the manifest's annotation; nothing for a lite build or anything unreadable."""
        try:
            pulled = json.loads(self.annotations.get(CLUSTER_IMAGES_ANNOTATION, "{}"))
        except (ValueError, RecursionError):
            return {}
        if not isinstance(pulled, dict):
            return {}
        return {str(ref): tuple(str(p) for p in pods) if isinstance(pods, list) else ()
                for ref, pods in pulled.items()}

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of ``kubenb images -o json`` (a stable contract)."""
        return {
            "name": self.name,
            "id": self.id,
            "manifest_digest": self.manifest_digest,
            "created": self.created,
            "size": self.size,
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "platform": self.platform,
        }
