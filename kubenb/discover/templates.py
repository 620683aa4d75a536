"""Whether a file under manifests/ is a Helm template that was copied there instead of a chart.

``{{`` alone does not say so: Prometheus alert annotations (``{{ $labels.pod }}``), Argo
workflow parameters (``{{inputs.parameters.x}}``) and Grafana legends are written that way
inside ordinary string values of real manifests, and skipping such a file would silently drop
its images. A file is a template when a ``{{`` stands where YAML structure goes (outside every
scalar value, as ``{{- if .Values.x }}`` lines and ``image: {{ .Values.image }}`` do), when it
uses one of Helm's own objects or functions inside a value (``.Values``, ``include``), or when it is no YAML at all.
"""

from __future__ import annotations

import re
from bisect import bisect_right

import yaml

__all__ = ["helm_template_line"]

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

#: Helm's built-in objects and the functions only Helm adds to Go templates. Go's own actions
#: (``if``, ``with``, ``range``, ``end``) are not among them: Prometheus alert texts use them too.
_HELM_ACTION = re.compile(
    r"\{\{-?\s*(?:\.(?:Values|Release|Chart|Capabilities|Template|Files)\b"
    r"|(?:include|tpl|toYaml|required)\b)")


_LONE_BRACES = 64


def helm_template_line(text: str) -> int:
    """The line of the first Helm template action in ``text``, or 0 when it has none."""
    first = _first_double_brace(text)
    if first < 0:
        return 0
    helm = _HELM_ACTION.search(text, first)
    if helm is not None:
        return _line(text, helm.start())
    try:
        spans = _scalar_spans(text)
    except yaml.YAMLError:
        return _line(text, first)
    starts = [start for start, _ in spans]
    for match in re.finditer(r"\{\{", text):
        at = bisect_right(starts, match.start()) - 1
        if at < 0 or not spans[at][0] <= match.start() < spans[at][1]:
            return _line(text, match.start())
    return 0


def _scalar_spans(text: str) -> list[tuple[int, int]]:
    """Where each scalar value of every document starts and ends, in order; a node reached
    again through an alias (even its own, or a billion times) is visited once."""
    spans: list[tuple[int, int]] = []
    seen: set[int] = set()
    for root in yaml.compose_all(text, Loader=_LOADER):
        pending = [root] if root is not None else []
        while pending:
            node = pending.pop()
            if id(node) in seen:
                continue
            seen.add(id(node))
            if isinstance(node, yaml.ScalarNode):
                spans.append((node.start_mark.index, node.end_mark.index))
            elif isinstance(node, yaml.SequenceNode):
                pending.extend(node.value)
            elif isinstance(node, yaml.MappingNode):
                pending.extend(item for pair in node.value for item in pair)
    return sorted(spans)


def _first_double_brace(text: str) -> int:
    """``text.find("{{")``, five times faster on manifests: ``find`` of one character is a
    ``memchr`` and a lone ``{`` is rare in YAML, where a two-character ``find`` crawls (41 ms
    against 6 ms on the 49 MB of bench/discovery.py). Text with many lone braces (a JSON
    manifest) goes back to the plain ``find`` after a few, so the loop stays short."""
    at = text.find("{")
    for _ in range(_LONE_BRACES):
        if at < 0 or text.startswith("{", at + 1):
            return at
        at = text.find("{", at + 1)
    return text.find("{{", at)


def _line(text: str, index: int) -> int:
    return text.count("\n", 0, index) + 1
