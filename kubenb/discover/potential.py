"""Potential images: strings an operator may pull at run time, each with the reason it is listed.

A lite build carries what pod specs name; operators pull more when they run: images passed as
flags, listed in env values, written in helper-pod templates kept in ConfigMaps, or given as
defaults of a custom resource's parameters. Those strings are only *potential* images: a
person decides. This module holds the rules as small pure functions: each candidate says
where it came from (``flag --engine-image``, ``env KAFKA_IMAGES line 2``...), and the noise
rules drop strings that read as references but are something else, judged by the render they
came from (a Service name with a port, a Role name, a recording rule) rather than by a list
of strings. ``walk.py`` calls these rules; nothing here knows about hits or lines.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from kubenb.discover.documents import parse_documents, split_documents
from kubenb.discover.positions import NodeLines
from kubenb.errors import KubenbError
from kubenb.reference import DEFAULT_TAG, is_valid_reference

__all__ = ["Candidate", "Embedded", "RenderNames", "embedded_objects", "flag_values", "is_custom_resource",
           "is_potential", "names_image", "noise", "param_values", "render_names", "text_candidates"]

#: A piece of free text that may be a reference: no spaces, quotes, brackets or ``=``.
_TOKEN = re.compile(r"[^\s\"',;=`()\[\]{}<>|]+")
#: What follows a metric name in PromQL (``rate(x:y[5m])``, ``sum(x:y{a="b"})``), never a reference.
_EXPRESSION_AFTER = ("{", "[", "(")
#: A key right before a value: ``image: ``, ``"image": "``, ``image=``.
_KEY_BEFORE = re.compile(r"""([\w.-]+)["']?\s*[:=]\s*["']?$""")
_WORD = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|[0-9]+")
_FLAG = re.compile(r"--?[A-Za-z][\w.-]*")
#: A number with a unit (durations, Kubernetes quantities, percentages): ``30s``, ``512Mi``, ``80%``.
_QUANTITY = re.compile(r"[0-9]+(?:\.[0-9]+)?(?:ns|us|ms|s|m|h|d|w|y|[kKMGTPE]i?|%)")
_HEX = re.compile(r"[0-9a-f]{32,}")
_RBAC_KINDS = frozenset({"Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"})
_PARAM_LISTS = ("params", "parameters")
_PARAM_VALUES = ("default", "value")


@dataclass(frozen=True)
class Candidate:
    """A string that may name an image, and why it is listed.

    ``named``: the place names an image (a flag, env variable, key or parameter whose name
    says ``image``): a bare ``postgres:16`` there is an image, not a host and port.
    ``structural``: an ``image`` key of an embedded pod spec or manifest, an image whatever
    its shape (``busybox`` means ``busybox:latest``). ``expression``: the text around it is a
    PromQL expression (``sum(a:b{...})``).
    """

    written: str
    reason: str
    named: bool = False
    structural: bool = False
    expression: bool = False
    value_line: int | None = None  # the line of a multi-line value that holds it


@dataclass(frozen=True)
class RenderNames:
    """Names the render defines, which strings shaped like references often are instead."""

    services: frozenset[str] = frozenset()
    rbac: frozenset[str] = frozenset()
    recording_rules: frozenset[str] = frozenset()
    config_map_keys: Mapping[str, frozenset[str]] = field(default_factory=dict)


# -- where candidates come from ------------------------------------------------------------


def names_image(name: str) -> bool:
    """Whether a flag, variable, key or parameter name says it holds images (``--engine-image``,
    ``STRIMZI_KAFKA_IMAGES``, ``gitInitImage``, ``RELATED_IMAGE_X``)."""
    return any(word.lower() in ("image", "images") for word in _WORD.findall(name))


def flag_values(words: list[Any]) -> Iterator[tuple[int, str, str]]:
    """(index of the value, flag name, value) of each flag of a command or args list: written
    as ``--name=value`` or as two items (``--engine-image`` then the value)."""
    for index, word in enumerate(words):
        if not isinstance(word, str) or not _FLAG.match(word):
            continue
        name, equals, value = word.partition("=")
        if equals:
            yield index, name, value
            continue
        following = words[index + 1] if index + 1 < len(words) else None
        if isinstance(following, str) and not following.startswith("-"):
            yield index + 1, name, following


def text_candidates(text: str, label: str, name: str = "") -> Iterator[Candidate]:
    """Each reference-shaped piece of a value, once: one value (``label``), one of several on
    a line (``label item 2``), or on a line of a multi-line value (``label line 3``): the
    lines of ``key=image`` pairs, comma- or space-separated lists and scripts alike."""
    lines = text.strip("\n").split("\n")
    multi_line = len(lines) > 1
    skipped = len(text) - len(text.lstrip("\n"))  # blank lines the value starts with
    named = names_image(name)
    seen: set[str] = set()
    shaped = 0
    for number, line in enumerate(lines, 1):
        for match in _TOKEN.finditer(line):
            written = match.group().rstrip(".:")
            if written in seen or not _shaped(written, named):
                continue
            seen.add(written)
            shaped += 1
            where = f" line {number}" if multi_line else "" if written == text.strip() else f" item {shaped}"
            yield Candidate(
                written, label + where, named=named or names_image(_key_before(line, match.start())),
                expression=_in_expression(line, match.start(), match.end()),
                value_line=skipped + number if multi_line else None,
            )


def is_custom_resource(obj: Mapping[str, Any]) -> bool:
    """Whether an object is a custom resource: its API group has a dot and is not one of
    Kubernetes' own (``tekton.dev/v1``, not ``apps/v1`` or ``rbac.authorization.k8s.io/v1``)."""
    api_version = obj.get("apiVersion")
    if not isinstance(api_version, str) or "/" not in api_version:
        return False
    group = api_version.split("/", 1)[0]
    return "." in group and not group.endswith(".k8s.io") and group != "k8s.io"


def param_values(node: Any, steps: tuple[object, ...] = ()) -> Iterator[tuple[tuple[object, ...], str, str, str]]:
    """(steps, reason, parameter name, value) of each custom-resource parameter's default or value
    (``spec.params[].default`` of a Tekton Task, ``arguments.parameters[].value``)."""
    if isinstance(node, Mapping):
        for key, value in node.items():
            if key in _PARAM_LISTS and isinstance(value, list):
                yield from _params(value, (*steps, key))
            elif isinstance(value, (Mapping, list)):
                yield from param_values(value, (*steps, key))
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from param_values(item, (*steps, index))


def _params(items: list[Any], steps: tuple[object, ...]) -> Iterator[tuple[tuple[object, ...], str, str, str]]:
    for index, item in enumerate(items):
        if not isinstance(item, Mapping):
            continue
        name = item.get("name")
        for key in _PARAM_VALUES:
            value = item.get(key)
            if isinstance(value, str) and isinstance(name, str):
                yield (*steps, index, key), f"CR parameter {key}: {name}", name, value
        yield from param_values(item, (*steps, index))


@dataclass(frozen=True)
class Embedded:
    """A manifest or pod spec found inside a ConfigMap value.

    ``obj`` is walked like any manifest (a bare pod spec as a Pod's ``spec``: ``drop`` is the
    path prefix that walk adds and the value does not have); ``lines`` gives the line within
    the value of each found image, from the parser's node tree of the value.
    """

    obj: Mapping[str, Any]
    drop: str
    lines: NodeLines

    def value_line(self, steps: tuple[object, ...]) -> int | None:
        """The line within the ConfigMap value of what walk found at ``steps`` of ``obj``."""
        return self.lines.line_of(steps[1:] if self.drop else steps)


def embedded_objects(value: str, file: str) -> list[Embedded]:
    """The manifests or pod specs a ConfigMap value holds as YAML or JSON, parsed as discovery
    parses manifests. A value that is no YAML (a script, nginx.conf) holds none; only text
    that mentions ``image`` is parsed, so other values cost nothing."""
    if "image" not in value:
        return []
    try:
        parsed = list(parse_documents(split_documents(value, file)))
    except (KubenbError, RecursionError):
        return []
    found: list[Embedded] = []
    for item in parsed:
        obj, lines = item.value, NodeLines(item.document, item.tree)
        if not isinstance(obj, Mapping):
            continue
        if "kind" not in obj and isinstance(obj.get("containers"), list):
            found.append(Embedded({"kind": "Pod", "spec": obj}, "spec.", lines))
        elif "kind" not in obj and isinstance(obj.get("spec"), Mapping) and "containers" in obj["spec"]:
            found.append(Embedded({**obj, "kind": "Pod"}, "", lines))
        else:
            found.append(Embedded(obj, "", lines))
    return found


def _shaped(written: str, named: bool) -> bool:
    """Shaped like a reference worth a look: an explicit tag or digest on a name with a letter
    (``alpine:3.23``, not ``10:30`` or ``/etc``), or, where the name says image, a repository
    path (``longhornio/longhorn-engine``)."""
    if ":" not in written and "@" not in written:
        return named and "/" in written and is_valid_reference(written)
    return any(c.isalpha() for c in _name(written)) and is_valid_reference(written)


def _key_before(line: str, start: int) -> str:
    """The key a value on a line is written under (``image`` of ``image: x``, ``"sidecarImage": "x"``,
    ``agent_image=x``), or "" when the piece follows no key."""
    key = _KEY_BEFORE.search(line, 0, start)
    return key.group(1) if key else ""


def _in_expression(line: str, start: int, end: int) -> bool:
    return line[end:end + 1] in _EXPRESSION_AFTER or line[start - 1:start] == "("


# -- the render's names ----------------------------------------------------------------------


def render_names(objects: Iterable[Any]) -> RenderNames:
    """The Services, RBAC names, recording rules and ConfigMap keys of one render."""
    services: set[str] = set()
    rbac: set[str] = set()
    rules: set[str] = set()
    keys: dict[str, frozenset[str]] = {}
    for obj in _objects(objects):
        kind, name = obj.get("kind"), _name_of(obj)
        if kind == "Service" and name:
            services.add(name)
        elif kind in _RBAC_KINDS:
            rbac.update(_rbac_names(obj))
        elif kind == "PrometheusRule":
            rules.update(_recording_rules(obj))
        elif kind == "ConfigMap" and name and isinstance(obj.get("data"), Mapping):
            keys[name] = frozenset(str(k) for k in obj["data"])
    return RenderNames(frozenset(services), frozenset(rbac), frozenset(rules), keys)


def _objects(objects: Iterable[Any]) -> Iterator[Mapping[str, Any]]:
    for obj in objects:
        if isinstance(obj, Mapping):
            items = obj.get("items")
            if str(obj.get("kind", "")).endswith("List") and isinstance(items, list):
                yield from _objects(items)
            else:
                yield obj


def _rbac_names(obj: Mapping[str, Any]) -> Iterator[str]:
    """A Role's or binding's own name, the role it binds and the users and groups it names."""
    subjects = obj.get("subjects")
    for name in (_name_of(obj), _dig(obj, "roleRef", "name"),
                 *(_dig(s, "name") for s in (subjects if isinstance(subjects, list) else ()))):
        if isinstance(name, str):
            yield name


def _recording_rules(obj: Mapping[str, Any]) -> Iterator[str]:
    groups = _dig(obj, "spec", "groups")
    for group in groups if isinstance(groups, list) else ():
        rules = group.get("rules") if isinstance(group, Mapping) else None
        for rule in rules if isinstance(rules, list) else ():
            if isinstance(rule, Mapping) and isinstance(rule.get("record"), str):
                yield rule["record"]


# -- noise: reference-shaped strings that are something else ---------------------------------


def is_potential(candidate: Candidate, names: RenderNames) -> bool:
    """Whether a candidate is listed: an embedded ``image`` key always (when valid), any other
    when it is shaped like a reference and no noise rule claims it."""
    if candidate.structural:
        return is_valid_reference(candidate.written)
    return _shaped(candidate.written, candidate.named) and noise(candidate, names) is None


def noise(candidate: Candidate, names: RenderNames) -> str | None:
    """What a reference-shaped string is instead of an image, or None when nothing says so."""
    for rule in _NOISE_RULES:
        verdict = rule(candidate, names)
        if verdict is not None:
            return verdict
    return None


def host_port(candidate: Candidate, names: RenderNames) -> str | None:
    """``localhost:5001``, ``my-release-redis:6379``: a numeric tag on a name without a registry
    domain or path is a port, unless the place names an image (``POSTGRES_IMAGE=postgres:16``);
    on a Service of the render, or ``localhost``, it is a port wherever it is written."""
    name, tag = _bare_name_and_tag(candidate.written)
    if name is None or tag is None or not tag.isdigit():
        return None
    host = name.split(".", 1)[0]
    if host in names.services or name == "localhost":
        return f"host:port (Service {host})" if host in names.services else "host:port"
    return None if candidate.named else "host:port (a numeric tag on a bare name)"


def rbac_name(candidate: Candidate, names: RenderNames) -> str | None:
    """``release-x:admission-controller`` where a Role or ClusterRole (or a binding or its
    subject) of the render has that name; ``system:nodes``: Kubernetes reserves ``system:``
    for its own users, groups and roles."""
    if candidate.written in names.rbac:
        return "RBAC name in this render"
    name, _tag = _bare_name_and_tag(candidate.written)
    return "RBAC name (system: prefix)" if name == "system" else None


def promql(candidate: Candidate, names: RenderNames) -> str | None:
    """``node_namespace_pod_container:container_memory_rss``: a recording rule of the render,
    or a name used in a PromQL expression (``sum(a:b{...})``, ``rate(a:b[5m])``)."""
    if candidate.written in names.recording_rules:
        return "recording rule in this render"
    return "PromQL expression" if candidate.expression else None


def config_map_key(candidate: Candidate, names: RenderNames) -> str | None:
    """``settings:config.yaml``, a ConfigMap of the render and one of its keys."""
    name, tag = _bare_name_and_tag(candidate.written)
    return "ConfigMap key" if name is not None and tag in names.config_map_keys.get(name, ()) else None


def quantity_or_hash(candidate: Candidate, names: RenderNames) -> str | None:
    """``timeout:30s``, ``memory:512Mi``: a number with a unit is a setting; ``sha256:e3b0...``:
    a hex string of 32 digits or more is a digest or checksum written alone, not a tag."""
    name, tag = _bare_name_and_tag(candidate.written)
    if name is None or tag is None:
        return None
    if _HEX.fullmatch(tag):
        return "a digest or checksum"
    return "a quantity" if _QUANTITY.fullmatch(tag) and not candidate.named else None


def word_pair(candidate: Candidate, names: RenderNames) -> str | None:
    """``role:master``, ``metric:container_memory_rss``: two words joined by a colon, with no
    registry, no path and no version, where nothing names an image. ``nginx:latest`` (docker's
    default tag) stays."""
    name, tag = _bare_name_and_tag(candidate.written)
    if name is None or tag is None or candidate.named or tag == DEFAULT_TAG:
        return None
    return None if any(c.isdigit() for c in tag) else "word:word with no version"


_NOISE_RULES: tuple[Callable[[Candidate, RenderNames], str | None], ...] = (
    host_port, rbac_name, promql, config_map_key, quantity_or_hash, word_pair,
)


def _bare_name_and_tag(written: str) -> tuple[str | None, str | None]:
    """(name, tag) of a reference with no registry and no path (``redis:6379``); (None, None)
    for any other (``quay.io/x/y:1``, ``bitnami/redis:7``), which no host or rule name is."""
    name = written.split("@", 1)[0]
    if "/" in name:
        return None, None
    base, colon, tag = name.partition(":")
    return base, tag if colon else None


def _name(written: str) -> str:
    """The repository part of a reference, without tag and digest."""
    rest = written.split("@", 1)[0]
    head, slash, last = rest.rpartition("/")
    return head + slash + last.split(":", 1)[0]


def _name_of(obj: Mapping[str, Any]) -> str | None:
    name = _dig(obj, "metadata", "name")
    return name if isinstance(name, str) else None


def _dig(node: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(node, Mapping):
            return None
        node = node.get(key)
    return node
