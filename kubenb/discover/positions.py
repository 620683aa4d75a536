"""Lines of values in a YAML document, as the parser placed them: never a search of the text.

Discovery reports where each image was written. ``parse_documents`` composes each document
once with PyYAML's C composer and builds its value from that node tree; the same nodes carry
their start and end marks, so a hit's steps lead to the node its value came from. Aliases
share their anchor's node, and ``<<`` merge keys are followed as PyYAML's constructor follows
them, so the line is where the value is written.
"""

from __future__ import annotations

import yaml

from kubenb.discover.documents import Document

__all__ = ["NodeLines"]

_STR = "tag:yaml.org,2002:str"
_MERGE = "tag:yaml.org,2002:merge"


class NodeLines:
    """Answers "on which file line is the value at these steps?" for one document."""

    def __init__(self, document: Document, root: yaml.Node) -> None:
        self.document = document
        self._root = root

    def line_of(self, steps: tuple[object, ...], value_line: int | None = None) -> int | None:
        """The line of the value node at ``steps``; None when the document has no such node.

        ``value_line`` places a piece of a multi-line value (a ConfigMap entry, an env list):
        the line within the value that holds it. A literal block (``|``) keeps its lines as
        written, one per source line after its header, so that line is exact; a folded,
        quoted or plain value joins its source lines, so the value's first line is given.

        Lines are counted from the node's character offset, as editors count them ("\\n"
        only): PyYAML's own line numbers also count U+2028 and NEL as line breaks."""
        node = self._node_at(steps)
        if node is None:
            return None
        line = self.document.line + self.document.text.count("\n", 0, node.start_mark.index)
        if value_line is not None and isinstance(node, yaml.ScalarNode) and node.style == "|":
            return line + value_line  # the header "|" is on the node's first line
        return line

    def _node_at(self, steps: tuple[object, ...]) -> yaml.Node | None:
        node: yaml.Node | None = self._root
        for step in steps:
            if node is None:
                return None
            node = _child(node, step)
        return node


def _child(node: yaml.Node, step: object) -> yaml.Node | None:
    """The node one step below: a list index, or a mapping key (the last of equal keys wins,
    then ``<<`` merges, the earlier merged mapping first, as PyYAML constructs them)."""
    if isinstance(node, yaml.SequenceNode):
        items: list[yaml.Node] = node.value
        return items[step] if type(step) is int and 0 <= step < len(items) else None
    if not isinstance(node, yaml.MappingNode):
        return None
    merges: list[yaml.Node] = []
    for key, value in reversed(node.value):
        if _is_key(key, step):
            return value  # type: ignore[no-any-return]
        if key.tag == _MERGE:
            merges.append(value)
    for merged in reversed(merges):  # reversed twice: the first "<<" of the mapping first
        sources = merged.value if isinstance(merged, yaml.SequenceNode) else [merged]
        for source in sources:
            found = _child(source, step)
            if found is not None:
                return found
    return None


def _is_key(key: yaml.Node, step: object) -> bool:
    """Whether a key node constructs to ``step``: text keys compare as written, others (``1:``,
    ``yes:``, rare in manifests) are constructed as PyYAML's safe loader would."""
    if not isinstance(key, yaml.ScalarNode):
        return False
    if type(step) is str:
        return key.tag == _STR and key.value == step
    try:
        value = yaml.SafeLoader("").construct_object(key, deep=True)
    except yaml.YAMLError:
        return False
    return type(value) is type(step) and bool(value == step)
