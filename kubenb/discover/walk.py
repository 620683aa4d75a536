"""Find images in parsed Kubernetes objects: a typed walk, never a text scan.

Pod specs are found by kind (Deployment -> ``spec.template.spec``...), and their containers,
init and ephemeral containers and image volumes hold the images a cluster will pull. Any
other ``image`` key whose value is a valid reference is an image too (custom resources: an
operator will run it). Image-looking strings in env values, flags, ConfigMap data (and the
manifests embedded there) and custom-resource parameters are only *potential*, each with its
reason: a person decides (the rules are in ``potential.py``). Objects whose Helm hooks are only
tests are reported apart, since an install never runs them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from kubenb.discover import potential
from kubenb.discover.hits import Hit, Kind, Steps
from kubenb.discover.potential import Candidate, RenderNames
from kubenb.model import Location

__all__ = ["POD_SPEC_PATHS", "ObjectContext", "may_hold_image_keys", "walk_object"]

#: Where each workload kind keeps its pod spec.
POD_SPEC_PATHS: dict[str, tuple[str, ...]] = {
    "Pod": ("spec",),
    "ReplicationController": ("spec", "template", "spec"),
    "Deployment": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
_CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")
_TEST_HOOKS = frozenset({"test", "test-success"})


@dataclass(frozen=True)
class ObjectContext:
    """What a location needs from the document an object came from."""

    source: str
    file: str
    chart: str | None = None
    render: RenderNames = field(default_factory=RenderNames)  # names of the whole render, for noise rules
    #: False when the document's text cannot hold an ``image`` key: it has neither the word nor
    #: a backslash (only a double-quoted escape can spell the key otherwise), so no node needs a visit.
    image_keys: bool = True


def walk_object(obj: Any, context: ObjectContext, prefix: Steps = ()) -> Iterator[Hit]:
    """Hits for one parsed document (recursing into ``items`` of ``*List`` kinds); each hit
    keeps the keys and indexes that lead to its value, so the parser can say on which line
    it was written."""
    if not isinstance(obj, Mapping):
        return
    kind = obj.get("kind")
    items = obj.get("items")
    if isinstance(kind, str) and kind.endswith("List") and isinstance(items, list):
        for index, item in enumerate(items):
            yield from walk_object(item, context, (*prefix, "items", index))
        return
    if kind == "CustomResourceDefinition":
        return  # a type's schema, never a workload: its "image" properties are field names
    yield from _Walker(obj, context, prefix).hits()


class _Walker:
    """Walks one Kubernetes object; knows its name, kind and hook class for every hit."""

    def __init__(self, obj: Mapping[str, Any], context: ObjectContext, prefix: Steps) -> None:
        self.obj = obj
        self.context = context
        self.prefix = prefix
        self.kind: Kind = "test" if _is_test_hook(obj) else "image"
        self.name = _object_name(obj)
        self.claimed: set[Steps] = set()

    def hits(self) -> Iterator[Hit]:
        pod_spec_path = POD_SPEC_PATHS.get(str(self.obj.get("kind")))
        if pod_spec_path is not None:
            spec = _dig(self.obj, pod_spec_path)
            if isinstance(spec, Mapping):
                yield from self._pod_spec(spec, pod_spec_path)
        if self.obj.get("kind") == "ConfigMap" and isinstance(self.obj.get("data"), Mapping):
            yield from self._config_map(self.obj["data"])
        if self.obj.get("kind") == "OCIRepository":
            yield from self._oci_repository()
        yield from self._image_keys(self.obj)
        if potential.is_custom_resource(self.obj):
            for steps, reason, name, value in potential.param_values(self.obj):
                yield from self._potential(potential.text_candidates(value, reason, name), steps)

    def _hit(self, kind: Kind, written: Any, steps: Steps, *, strict: bool) -> Hit:
        """A hit at ``steps``; in a pod spec, a value that is not text is invalid as it stands."""
        text = written if isinstance(written, str) else _yaml_text(written)
        location = Location(
            self.context.source, self.context.file, path=_path_text(self.prefix, self.obj, steps),
            object=self.name, chart=self.context.chart, written=text,
        )
        problem = None if isinstance(written, str) else f"an image must be a string, not {type(written).__name__}"
        return Hit(kind, text, location, strict=strict, problem=problem, steps=(*self.prefix, *steps))

    def _pod_spec(self, spec: Mapping[str, Any], base: Steps) -> Iterator[Hit]:
        for list_name in _CONTAINER_LISTS:
            containers = spec.get(list_name)
            for index, container in enumerate(containers if isinstance(containers, list) else ()):
                if isinstance(container, Mapping):
                    yield from self._container(container, (*base, list_name, index))
        volumes = spec.get("volumes")
        for index, volume in enumerate(volumes if isinstance(volumes, list) else ()):
            reference = _dig(volume, ("image", "reference"))
            if reference is not None:
                steps = (*base, "volumes", index, "image", "reference")
                self.claimed.add(steps)
                yield self._hit(self.kind, reference, steps, strict=True)

    def _container(self, container: Mapping[str, Any], steps: Steps) -> Iterator[Hit]:
        if "image" in container:
            self.claimed.add((*steps, "image"))
            yield self._hit(self.kind, container["image"], (*steps, "image"), strict=True)
        env = container.get("env")
        for index, variable in enumerate(env if isinstance(env, list) else ()):
            value = variable.get("value") if isinstance(variable, Mapping) else None
            if isinstance(value, str):
                name = str(variable.get("name"))
                yield from self._potential(potential.text_candidates(value, f"env {name}", name),
                                           (*steps, "env", index, "value"))
        for key in ("command", "args"):
            words = container.get(key)
            for index, flag, value in potential.flag_values(words if isinstance(words, list) else []):
                yield from self._potential(potential.text_candidates(value, f"flag {flag}", flag), (*steps, key, index))

    def _config_map(self, data: Mapping[str, Any]) -> Iterator[Hit]:
        for key, value in data.items():
            if not isinstance(value, str):
                continue
            embedded = list(self._embedded(str(key), value))
            yield from embedded
            seen = {hit.written for hit in embedded}
            candidates = potential.text_candidates(value, f"ConfigMap {key}", str(key))
            yield from self._potential((c for c in candidates if c.written not in seen), ("data", key))

    def _embedded(self, key: str, value: str) -> Iterator[Hit]:
        """Images of a manifest or pod spec written inside a ConfigMap value (a helper pod
        template): potential, with the embedded path and the outer value's line."""
        for embedded in potential.embedded_objects(value, f"{self.context.file} data.{key}"):
            for hit in walk_object(embedded.obj, self.context):
                place = hit.location.reason or ("pod spec" if hit.strict else "image key")
                structural = Candidate(hit.written, place, structural=True)
                kept = hit.kind == "potential" or potential.is_potential(structural, self.context.render)
                if hit.problem is None and kept:  # inner potential hits passed the rules already
                    inner = (hit.location.path or "").removeprefix(embedded.drop)
                    outer = self._hit("potential", hit.written, ("data", key), strict=False)
                    location = replace(outer.location, path=f"{outer.location.path} > {inner}",
                                       reason=f"ConfigMap {key}: {place}")
                    yield replace(outer, location=location, value_line=embedded.value_line(hit.steps))

    def _potential(self, candidates: Iterator[Candidate], steps: Steps) -> Iterator[Hit]:
        """A potential hit at ``steps`` for each candidate the noise rules leave."""
        for candidate in candidates:
            if potential.is_potential(candidate, self.context.render):
                hit = self._hit("potential", candidate.written, steps, strict=False)
                yield replace(hit, location=replace(hit.location, reason=candidate.reason),
                              value_line=candidate.value_line)

    def _oci_repository(self) -> Iterator[Hit]:
        """Flux pulls ``spec.url`` at ``spec.ref.digest``, else at the tag a ``semver`` range picks
        at run time (no reference can be named before: nothing is reported), else at
        ``spec.ref.tag``, which defaults to ``latest``. The location is the value that picks
        the artifact: the digest's or tag's line, or the url's when the tag is implied."""
        url = _dig(self.obj, ("spec", "url"))
        ref = _dig(self.obj, ("spec", "ref"))
        if not isinstance(url, str) or not url.startswith("oci://") or not isinstance(ref, Mapping | None):
            return
        name = url.removeprefix("oci://")
        ref = ref or {}
        if isinstance(ref.get("digest"), str):
            yield self._hit(self.kind, f"{name}@{ref['digest']}", ("spec", "ref", "digest"), strict=False)
        elif ref.get("semver") is not None:
            return
        elif isinstance(ref.get("tag"), str):
            yield self._hit(self.kind, f"{name}:{ref['tag']}", ("spec", "ref", "tag"), strict=False)
        elif ref.get("tag") is None:
            yield self._hit(self.kind, f"{name}:latest", ("spec", "url"), strict=False)

    def _image_keys(self, node: Any) -> Iterator[Hit]:
        """Any other ``image`` key holding a valid reference (custom resources, operators)."""
        found: list[tuple[Steps, str]] = []
        if self.context.image_keys:
            _collect_image_keys(node, (), found)
        for steps, value in found:
            if steps not in self.claimed:
                yield self._hit(self.kind, value, steps, strict=False)


def may_hold_image_keys(text: str) -> bool:
    """Whether YAML ``text`` can hold a key ``image``: a key is spelled out in the text (an
    anchor merged by ``<<`` is in the same document) unless a double-quoted escape writes it."""
    return "image" in text or "\\" in text


def _collect_image_keys(node: Any, steps: Steps, found: list[tuple[Steps, str]]) -> None:
    """(steps, value) of every string ``image`` key below ``node``.

    This visits every node of every object, so it is a plain recursion that tests exact
    types (parsers give plain dicts and lists) and extends the steps only for containers.
    """
    if type(node) is dict:
        for key, value in node.items():
            kind = type(value)
            if kind is dict or kind is list:
                _collect_image_keys(value, (*steps, key), found)
            elif kind is str and key == "image":
                found.append(((*steps, key), value))
    else:
        for index, item in enumerate(node):
            if type(item) is dict or type(item) is list:
                _collect_image_keys(item, (*steps, index), found)


def _path_text(prefix: Steps, obj: Any, steps: Steps) -> str:
    """``spec.containers[0].image`` for steps taken from ``obj``: the value tells whether a
    step is a list index or a mapping key (a key may be a number too)."""
    text = "".join(f"{step}[{index}]." for step, index in zip(prefix[::2], prefix[1::2], strict=True))
    parts: list[str] = []
    node = obj
    for step in steps:
        if isinstance(node, list) and isinstance(step, int):
            parts.append(f"[{step}]")
            node = node[step]
        else:
            parts.append(f".{step}" if parts else str(step))
            node = node.get(step) if isinstance(node, Mapping) else None
    return text + "".join(parts)


def _dig(node: Any, keys: tuple[str, ...]) -> Any:
    for key in keys:
        if not isinstance(node, Mapping):
            return None
        node = node.get(key)
    return node


def _yaml_text(value: Any) -> str:
    """How a non-string value reads in the YAML, for messages (``42``, ``null``, ``true``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _object_name(obj: Mapping[str, Any]) -> str | None:
    kind, name = obj.get("kind"), _dig(obj, ("metadata", "name"))
    if not kind:
        return None
    return f"{kind}/{name}" if name else str(kind)


def _is_test_hook(obj: Mapping[str, Any]) -> bool:
    hooks = _dig(obj, ("metadata", "annotations", "helm.sh/hook"))
    if not isinstance(hooks, str):
        return False
    names = {hook.strip() for hook in hooks.split(",") if hook.strip()}
    return bool(names) and names <= _TEST_HOOKS
