"""Manifest text -> parsed YAML documents: split the way Helm splits, read once by libyaml.

Kubernetes tools read YAML 1.1 (``yes`` is a bool, ``0644`` is octal, ``<<`` merges), as
PyYAML's safe loader does: it is the reference. Both readers below run on libyaml's parser:

- ``_yaml_values`` (C, ``_yaml_values.c``) builds a document's value straight from libyaml's
  events, with a compact tree of node offsets beside it, for the shapes manifests are made of
  (untagged scalars, lists, mappings with scalar keys). It costs a third of PyYAML's composer.
- Anything else (tags, anchors, merge keys, errors), or any document when the extension was not
  built, is composed by PyYAML's C composer; the node tree carries the lines, and
  ``build_value`` builds the value from it as PyYAML's constructor would.

Either way the value is PyYAML's and so are the errors, named by file and line; the lines
provenance needs come from the parser (``kubenb/discover/positions.py``).
"""

from __future__ import annotations

import re
import stat
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, AnyStr, BinaryIO, ClassVar, NoReturn

import yaml
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from kubenb.errors import DiscoveryError

_yaml_values: ModuleType | None
try:
    from kubenb.discover import _yaml_values
except ImportError:  # built without libyaml's headers (libyaml-dev): PyYAML composes everything
    _yaml_values = None

__all__ = [
    "MAX_ALIAS_NODES",
    "MAX_FILE_BYTES",
    "MAX_LINE_BYTES",
    "Document",
    "Parsed",
    "PositionTree",
    "build_value",
    "is_crd",
    "load_documents",
    "parse_documents",
    "read_input_file",
    "split_documents",
]

MAX_FILE_BYTES = 64 * 1024 * 1024
MAX_LINE_BYTES = 4 * 1024 * 1024
#: Nodes that aliases may add to one document; a "billion laughs" bomb needs far more.
MAX_ALIAS_NODES = 100_000
_SYNTAX_HINT = "fix the YAML syntax at that line"
_STR = "tag:yaml.org,2002:str"
_SEQ = "tag:yaml.org,2002:seq"
_MAP = "tag:yaml.org,2002:map"
#: Scalar tags whose PyYAML constructor is a plain function of the node (``yes`` -> True...).
_SCALAR_TAGS = ("null", "bool", "int", "float", "binary", "timestamp")
#: Plain scalars remembered with the tag PyYAML's resolver gave them (keys repeat endlessly).
_RESOLVED_MAX, _RESOLVED_LENGTH = 20_000, 100


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """PyYAML's C safe loader, whose resolver remembers what it resolved.

    The composer asks the resolver for every node's tag, and PyYAML's ``resolve`` tries a few
    regexes per plain scalar in Python: a third of the composing time. A plain scalar's tag
    depends on its text alone (the safe loader has no path resolvers), so the answer for a
    short text is kept (bounded); a quoted scalar is a string, a collection a seq or a map.
    """

    _resolved: ClassVar[dict[str, str]] = {}

    def resolve(self, kind: type, value: Any, implicit: tuple[bool, bool]) -> str:
        if kind is not ScalarNode:
            return _SEQ if kind is SequenceNode else _MAP
        if not implicit[0]:
            return _STR
        tag = self._resolved.get(value)
        if tag is None:
            tag = super().resolve(kind, value, implicit)
            if len(value) <= _RESOLVED_LENGTH and len(self._resolved) < _RESOLVED_MAX:
                self._resolved[value] = tag
        return tag

    # Path resolvers, which the safe loader has none of, are called twice per node: a C callable
    # that ignores its arguments costs no Python frame (no-op methods cost about 5% of the parse).
    descend_resolver = slice
    ascend_resolver = tuple


@dataclass(frozen=True, slots=True)
class Document:
    """One YAML document of a file, with the line its text starts on (errors add to it)."""

    file: str
    index: int
    line: int
    text: str
    chart: str | None = None


#: ``_yaml_values``'s offsets of a document's nodes: a scalar is ``offset << 1 | literal``,
#: a list ``[code, item trees...]``, a mapping ``(code, {key: value tree})``.
PositionTree = int | list[Any] | tuple[int, dict[Any, Any]] | None


@dataclass(frozen=True, slots=True)
class Parsed:
    """A document's value and where its nodes are: PyYAML's node tree, or ``_yaml_values``'s
    position tree (``kubenb.discover.positions.NodeLines`` reads lines from either)."""

    document: Document
    value: object
    tree: yaml.Node | PositionTree


def read_input_file(path: Path, display: str, *, max_bytes: int = MAX_FILE_BYTES,
              max_line: int = MAX_LINE_BYTES) -> str:
    """A manifest file's text; a file that is huge, binary or not UTF-8 is a clear error.

    Limits are checked on the bytes before decoding, so a 50 MB one-line file fails at once;
    C0 control characters are refused here, as PyYAML refuses them (``translate`` is fast).
    """
    try:
        status = path.stat()
        if not stat.S_ISREG(status.st_mode):  # a FIFO would block the open, then the read, forever
            raise DiscoveryError("not a regular file", file=display)
        with path.open("rb", buffering=0) as stream:
            data = _read_at_most(stream, status.st_size, max_bytes + 1)
    except OSError as error:
        raise DiscoveryError(f"cannot read: {error.strerror}", file=display) from None
    if len(data) > max_bytes:
        raise DiscoveryError(f"file is larger than {max_bytes} bytes", file=display,
                             hint="manifests this big are not supported; split the file")
    if data.startswith((b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff")):
        raise DiscoveryError("file is UTF-16/32 encoded", file=display, hint="convert it to UTF-8")
    if b"\x00" in data:
        raise DiscoveryError("binary file, not a manifest", file=display,
                             hint="only YAML and JSON files belong under manifests/")
    bad = next(_long_lines(data, b"\n", max_line), -1)
    if bad >= 0:
        _fail(data, bad, display, f"a line is longer than {max_line} bytes", "is this a manifest?")
    controls = data.translate(None, _NOT_CONTROLS)
    if controls:
        bad = min(data.find(bytes([byte])) for byte in set(controls))
        _fail(data, bad, display, f"control character 0x{data[bad]:02x} is not allowed in YAML",
              "remove it or write it as an escape in a double-quoted string")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        _fail(data, error.start, display, f"not valid UTF-8 (byte 0x{data[error.start]:02x})",
              "save the file as UTF-8")


def _read_at_most(stream: BinaryIO, expected: int, limit: int) -> bytes:
    """Up to ``limit`` bytes of ``stream``, in a buffer of the size the file says it has: asking
    for ``limit`` at once would allocate (and fault in) 64 MB for every small manifest.
    A file that grows while it is read is read on, still up to ``limit``."""
    data = stream.read(min(expected + 1, limit))
    while len(data) < limit and (more := stream.read(limit - len(data))):
        data += more
    return data


_NOT_CONTROLS = bytes(b for b in range(256) if b not in (*range(1, 9), 11, 12, *range(14, 32), 127))


def _fail(data: bytes, offset: int, display: str, message: str, hint: str) -> NoReturn:
    raise DiscoveryError(message, file=display, line=data.count(b"\n", 0, offset) + 1, hint=hint)


def _long_lines(data: AnyStr, newline: AnyStr, limit: int) -> Iterator[int]:
    """Offsets of lines longer than ``limit``; jumps ``limit`` at a time, so it costs little."""
    start = 0
    while len(data) - start > limit:
        cut = data.rfind(newline, start, start + limit + 1)
        if cut < 0:
            yield start
            cut = data.find(newline, start)
            if cut < 0:
                return
        start = cut + 1


# A line starting with "---" then a blank, "#" or the end, or "..." alone, separates documents.
# Like Helm, text after "--- " starts the next document; unlike Helm, "-----END CERT" does not.
_MARKER_BODY = r"(?:---(?=[ \t#\n]|\Z)|\.\.\.(?=[ \t]*(?:#[^\n]*)?(?:\n|\Z)))"
_MARKER = re.compile(r"\n" + _MARKER_BODY)  # the literal "\n" lets re skip ahead fast
_MARKER_AT_START = re.compile(_MARKER_BODY)
_BLANKS = re.compile(r"[ \t]*")
_BLANK_LINES = re.compile(r"(?:[ \t]*\n)*")
_CONTENT = re.compile(r"(?:[ \t]*(?:\#[^\n]*)?\n)*[ \t]*([^ \t\n#])")  # skips comment lines


def split_documents(text: str, file: str, *, chart: str | None = None,
                    without_crds: bool = False) -> list[Document]:
    """Split a manifest stream into documents, dropping those with nothing but comments, and
    with ``without_crds`` the CustomResourceDefinitions too (``is_crd``), which discovery never
    parses: such a document is never copied out of the text, nor its lines counted unless a
    later document needs them (a file of CRDs alone costs one scan for its markers).

    A leading BOM goes and CRLF / CR become LF (YAML's own line-break normalisation), so
    lines count as editors count them; ``%`` directives stay with the document they precede.
    """
    text = text.removeprefix("\ufeff")
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    documents: list[Document] = []
    lines = _LineCounter(text)
    directives: int | None = None  # offset of pending "%" lines
    index = -1  # of the document in the file, counting those left out
    for start, end in _spans(text):
        content = _CONTENT.match(text, start, end)
        if content is None:
            directives = None  # they belonged to this empty document
            continue
        begin = _end_of(_BLANK_LINES, text, start, end)
        if directives is not None:
            begin, directives = directives, None
        elif content.group(1) == "%" and end < len(text):
            directives = begin
            continue
        index += 1
        if without_crds and _is_crd_at(text, begin, end):
            continue
        documents.append(Document(file, index, lines.line_at(begin), text[begin:end], chart))
    return documents


class _LineCounter:
    """Line numbers of increasing offsets of one text, each newline counted once."""

    def __init__(self, text: str) -> None:
        self.text, self.offset, self.line = text, 0, 1

    def line_at(self, offset: int) -> int:
        self.line += self.text.count("\n", self.offset, offset)
        self.offset = offset
        return self.line


def _end_of(pattern: re.Pattern[str], text: str, start: int, end: int) -> int:
    """Where a pattern that may match empty stops matching at ``start``."""
    match = pattern.match(text, start, end)
    return match.end() if match else start


def _spans(text: str) -> Iterator[tuple[int, int]]:
    """(start, end) of the text between markers; each piece keeps its final newline."""
    start = _after_marker(text, 0) if _MARKER_AT_START.match(text) else 0
    for marker in _MARKER.finditer(text):
        yield start, marker.start() + 1
        start = _after_marker(text, marker.start() + 1)
    yield start, len(text)


def _after_marker(text: str, at: int) -> int:
    """Where the document after the marker line at ``at`` begins."""
    if text.startswith("---", at):
        return _end_of(_BLANKS, text, at + 3, len(text))
    end = text.find("\n", at)
    return len(text) if end < 0 else end + 1


_CRD = re.compile(r"""^kind:[ \t]*["']?CustomResourceDefinition["']?[ \t]*(?:#.*)?$""", re.MULTILINE)


def is_crd(text: str) -> bool:
    """Whether a document's text is a CustomResourceDefinition (a type's schema: nothing to walk).
    The plain search first: a multi-line regex scans about ten times slower than ``in``."""
    return "CustomResourceDefinition" in text and _CRD.search(text) is not None


def _is_crd_at(text: str, begin: int, end: int) -> bool:
    """``is_crd`` of ``text[begin:end]`` without copying it out. A search from ``begin`` finds a
    line start there only when ``begin`` is one; a document that starts after ``--- `` on the
    marker's line is checked as a copy."""
    if begin > 0 and text[begin - 1] != "\n":
        return is_crd(text[begin:end])
    return text.find("CustomResourceDefinition", begin, end) >= 0 and _CRD.search(text, begin, end) is not None


def load_documents(docs: Sequence[Document]) -> list[tuple[Document, object]]:
    """Parse each document as PyYAML's safe loader would; empty documents are dropped."""
    return [(parsed.document, parsed.value) for parsed in parse_documents(docs)]


def parse_documents(docs: Iterable[Document]) -> Iterator[Parsed]:
    """As ``load_documents``, one document at a time, each with the node tree its value was
    built from (a tree weighs several times its value: the caller drops it when done).

    The process-wide garbage collector is left alone: in a notebook it is the user's kernel's.
    """
    return (parsed for doc in docs if (parsed := _parse(doc)) is not None and parsed.value is not None)


def _parse(doc: Document) -> Parsed | None:
    """The document read by ``_yaml_values`` when it can, else by ``_compose``."""
    if _yaml_values is not None:
        built = _yaml_values.load(doc.text, _plain_number)
        if built is not NotImplemented:
            return Parsed(doc, *built)
    return _compose(doc)


#: Plain scalars that start like a number, with the value PyYAML gives them (they repeat:
#: ports, replicas, versions), bounded as ``_Loader._resolved`` is.
_NUMBERS: dict[str, object] = {}
_RESOLVER, _CONSTRUCTOR = yaml.resolver.Resolver(), yaml.constructor.SafeConstructor()


def _plain_number(text: str) -> object:
    """What PyYAML's safe loader makes of a plain scalar starting with a digit, a dot or a
    sign and one of those: an int, a float, a timestamp or the text. ``_yaml_values`` asks;
    an error here (``2024-13-45``) sends the document to PyYAML, which reports it."""
    value = _NUMBERS.get(text, _NUMBERS)
    if value is _NUMBERS:
        tag: str = _RESOLVER.resolve(ScalarNode, text, (True, False))  # type: ignore[no-untyped-call]
        value = text if tag == _STR else _CONSTRUCTOR.yaml_constructors[tag](_CONSTRUCTOR, ScalarNode(tag, text))
        if len(text) <= _RESOLVED_LENGTH and len(_NUMBERS) < _RESOLVED_MAX:
            _NUMBERS[text] = value
    return value


def _compose(doc: Document) -> Parsed | None:
    """The document composed once by PyYAML's C composer, refusing alias bombs before anything
    walks the tree, and its value built from that tree (``build_value``)."""
    loader = _Loader(doc.text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if "&" in doc.text and "*" in doc.text:  # an alias needs an anchor in its document
            _check_aliases(node, doc)
        return Parsed(doc, build_value(node, loader), node)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        finding = error.context if error.context and not error.context.startswith("while") else ""
        raise DiscoveryError(f"invalid YAML: {'; '.join(filter(None, (finding, error.problem)))}",
                             file=doc.file, line=_line_of(doc, mark.index if mark else 0),
                             hint=_SYNTAX_HINT) from None
    except yaml.reader.ReaderError as error:
        raise DiscoveryError(f"invalid YAML: character #x{error.character:04x}: {error.reason}",
                             file=doc.file, line=_line_of(doc, error.position),
                             hint="remove the character") from None
    except DiscoveryError:
        raise
    except RecursionError:
        raise DiscoveryError("YAML nested too deeply", file=doc.file, line=doc.line,
                             hint=_SYNTAX_HINT) from None
    except Exception as error:  # PyYAML's constructors fail plainly: 2024-13-45, !!int ''
        raise DiscoveryError(f"invalid YAML value: {error}", file=doc.file, line=doc.line,
                             hint="quote the value to keep it a string") from None
    finally:
        loader.dispose()


def build_value(root: yaml.Node, loader: Any) -> object:
    """The value PyYAML's safe constructor gives for ``root``, built in one recursive pass.

    ``loader`` is the PyYAML loader that composed ``root``: its constructor builds what this
    pass leaves to it (merge keys, ``=`` keys, collection or unknown tags, keys that are not
    scalars, and nesting too deep for a Python recursion), so the result is PyYAML's, errors
    included. Aliased nodes are built once per use (``_check_aliases`` bounds that).
    """
    scalars: dict[str, Callable[[yaml.Node], object]] = {
        f"tag:yaml.org,2002:{name}": getattr(loader, f"construct_yaml_{name}") for name in _SCALAR_TAGS}

    def whole(node: yaml.Node) -> object:
        return loader.construct_object(node, deep=True)

    def value(node: yaml.Node) -> object:
        kind, tag = type(node), node.tag
        if kind is ScalarNode:
            if tag == _STR:
                return node.value
            build = scalars.get(tag)
            return whole(node) if build is None else build(node)
        if kind is SequenceNode and tag == _SEQ:
            return [item.value if type(item) is ScalarNode and item.tag == _STR else value(item)
                    for item in node.value]
        return mapping(node) if kind is MappingNode and tag == _MAP else whole(node)

    def mapping(node: yaml.Node) -> object:
        result: dict[Any, object] = {}
        for key_node, value_node in node.value:
            key_tag = key_node.tag
            if type(key_node) is not ScalarNode or (key_tag != _STR and key_tag not in scalars):
                return whole(node)  # "<<", "=", a tagged or collection key: PyYAML reads it all
            key = key_node.value if key_tag == _STR else scalars[key_tag](key_node)
            result[key] = (value_node.value if type(value_node) is ScalarNode and value_node.tag == _STR
                           else value(value_node))
        return result

    try:
        return value(root)
    except RecursionError:  # PyYAML's constructor keeps its own stack: it reads 999 levels
        loader.constructed_objects, loader.recursive_objects = {}, {}  # as a fresh document
        return loader.construct_document(root)


def _line_of(doc: Document, index: int) -> int:
    """The file line of a character offset in the document (as editors count lines)."""
    return doc.line + doc.text.count("\n", 0, index)


def _check_aliases(root: yaml.Node, doc: Document) -> None:
    """Refuse a document whose aliases, expanded, add over MAX_ALIAS_NODES nodes or loop.

    PyYAML shares an aliased node instead of copying it, so a bomb loads quickly and then
    explodes in whatever walks it (or in merge keys). Sizes are counted once per node.
    """
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            on_path.discard(key)
            sizes[key] = 1 + sum(sizes[id(child)] for child in _children(node))
            if sizes[key] > MAX_ALIAS_NODES + len(sizes):
                raise DiscoveryError(f"too many YAML aliases: expanding them adds over "
                                     f"{MAX_ALIAS_NODES} nodes", file=doc.file, line=doc.line,
                                     hint="is this a YAML bomb?")
        elif key in on_path:
            raise DiscoveryError("recursive YAML alias (an anchor used inside itself)",
                                 file=doc.file, line=doc.line, hint="remove the alias")
        elif key not in sizes:
            on_path.add(key)
            stack.append((node, True))
            stack.extend((child, False) for child in _children(node))


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [item for pair in node.value for item in pair]
    return list(node.value) if isinstance(node, yaml.SequenceNode) else []
