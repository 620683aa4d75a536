"""Lines of values in a YAML document, as the parser placed them: never a search of the text.

Discovery reports where each image was written. ``parse_documents`` reads each document once
and keeps, beside its value, where its nodes start: ``_yaml_values``'s position tree, or
PyYAML's node tree for the documents PyYAML composed. A hit's steps lead to the node its value
came from. In a node tree aliases share their anchor's node, and ``<<`` merge keys are followed
as PyYAML's constructor follows them, so the line is where the value is written; a position
tree has neither (such documents go to PyYAML).
"""

from __future__ import annotations

import yaml

from kubenb.discover.documents import Document, PositionTree

__all__ = ["NodeLines"]

_STR = "tag:yaml.org,2002:str"
_MERGE = "tag:yaml.org,2002:merge"


class NodeLines:
    """Answers "on which file line is the value at these steps?" for one document."""

    def __init__(self, document: Document, root: yaml.Node | PositionTree) -> None:
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
        place = self._place(steps)
        if place is None:
            return None
        offset, literal = place
        line = self.document.line + self.document.text.count("\n", 0, offset)
        if value_line is not None and literal:
            return line + value_line  # the header "|" is on the node's first line
        return line

    def _place(self, steps: tuple[object, ...]) -> tuple[int, bool] | None:
        """The offset of the node at ``steps``, and whether it is a literal block."""
        if not isinstance(self._root, yaml.Node):
            code = _code_at(self._root, steps)
            return None if code is None else (code >> 1, bool(code & 1))
        node: yaml.Node | None = self._root
        for step in steps:
            if node is None:
                return None
            node = _child(node, step)
        if node is None:
            return None
        return node.start_mark.index, isinstance(node, yaml.ScalarNode) and node.style == "|"


def _code_at(tree: PositionTree, steps: tuple[object, ...]) -> int | None:
    """The offset code of the node at ``steps`` of a position tree (its layout is described at
    ``PositionTree``): a list's items follow its own code, a mapping's are by key."""
    for step in steps:
        if type(tree) is list:
            tree = tree[step + 1] if type(step) is int and 0 <= step < len(tree) - 1 else None
        elif type(tree) is tuple:
            tree = tree[1].get(step)  # steps are keys of the value's dicts: hashable
        else:
            return None
    if tree is None or type(tree) is int:
        return tree
    return tree[0]  # type: ignore[index]


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
    ``yes:``, rare in manifests) are constructed as PyYAML's safe loader would, and compare as
    the value's dict compared them (``yes`` and ``1`` are one key: the later one's value won)."""
    if not isinstance(key, yaml.ScalarNode):
        return False
    if type(step) is str:
        return key.tag == _STR and key.value == step
    try:
        value = yaml.SafeLoader("").construct_object(key, deep=True)
    except yaml.YAMLError:
        return False
    return bool(value == step)
