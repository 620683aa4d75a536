"""Manifest text -> parsed YAML documents: split the way Helm splits, parsed fast, judged by PyYAML.

Kubernetes tools read YAML 1.1 (``yes`` is a bool, ``0644`` is octal, ``<<`` merges), as
PyYAML's C loader does; it is the reference for the corpus, and ten times slower than
yaml-rs, a YAML 1.2 parser. So each document is parsed with yaml-rs and kept only when
nothing in it can read differently under the two; everything else, errors included, goes to
PyYAML, whose messages name the line. That decision must cost little next to yaml-rs, and
Python scans text fast only for literals, so it takes two steps: cheap signs (the parsed value
written by ``marshal`` and scanned for the few values that differ, literal-led searches for
``0644``-like numbers, ``!!`` tags, anchors), then, only on a sign, a regex for the scalars
concerned, each checked to really start a plain scalar.
"""

from __future__ import annotations

import marshal
import re
import stat
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AnyStr, NoReturn

import yaml
import yaml_rs

from kubenb.errors import DiscoveryError

__all__ = ["MAX_ALIAS_NODES", "MAX_FILE_BYTES", "MAX_LINE_BYTES", "Document", "Parsed", "load_documents",
           "parse_documents", "read_input_file", "split_documents"]

MAX_FILE_BYTES = 64 * 1024 * 1024
MAX_LINE_BYTES = 4 * 1024 * 1024
#: Nodes that aliases may add to one document; a "billion laughs" bomb needs far more.
MAX_ALIAS_NODES = 100_000
#: Block nesting takes a column per level, so a line with a 2000-column indentation/indicator
#: prefix goes to PyYAML (it stops at 1000 levels): yaml-rs recurses without limit, about 1 kB
#: of stack a level (Linux gives threads 8 MB; 4000 levels need about 4 MB).
_DEEP = 2000
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_RS_ALIAS_LIMITS = yaml_rs.AliasLimits(max_total_replayed_events=MAX_ALIAS_NODES)
_SYNTAX_HINT = "fix the YAML syntax at that line"


@dataclass(frozen=True, slots=True)
class Document:
    """One YAML document of a file, with the line its text starts on (errors add to it)."""

    file: str
    index: int
    line: int
    text: str
    chart: str | None = None


@dataclass(frozen=True, slots=True)
class Parsed:
    """A document's value and, when PyYAML read it, PyYAML's node tree (it has the lines)."""

    document: Document
    value: object
    node: yaml.Node | None = None


def read_input_file(path: Path, display: str, *, max_bytes: int = MAX_FILE_BYTES,
              max_line: int = MAX_LINE_BYTES) -> str:
    """A manifest file's text; a file that is huge, binary or not UTF-8 is a clear error.

    Limits are checked on the bytes before decoding, so a 50 MB one-line file fails at once;
    C0 control characters are refused here, as PyYAML refuses them (``translate`` is fast).
    """
    try:
        if not stat.S_ISREG(path.stat().st_mode):  # a FIFO would block the read forever
            raise DiscoveryError("not a regular file", file=display)
        with path.open("rb") as stream:
            data = stream.read(max_bytes + 1)
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


def split_documents(text: str, file: str, *, chart: str | None = None) -> list[Document]:
    """Split a manifest stream into documents, dropping those with nothing but comments.

    A leading BOM goes and CRLF / CR become LF (YAML's own line-break normalisation), so
    lines count as editors count them; ``%`` directives stay with the document they precede.
    """
    text = text.removeprefix("\ufeff")
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    documents: list[Document] = []
    counted, line = 0, 1
    directives: tuple[int, int] | None = None  # (offset, line) of pending "%" lines
    for start, end in _spans(text):
        line += text.count("\n", counted, start)
        counted = start
        content = _CONTENT.match(text, start, end)
        if content is None:
            directives = None  # they belonged to this empty document
            continue
        begin = _end_of(_BLANK_LINES, text, start, end)
        begin_line = line + text.count("\n", start, begin)
        if directives is not None:
            (begin, begin_line), directives = directives, None
        elif content.group(1) == "%" and end < len(text):
            directives = (begin, begin_line)
            continue
        documents.append(Document(file, len(documents), begin_line, text[begin:end], chart))
    return documents


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


def load_documents(docs: Sequence[Document]) -> list[tuple[Document, object]]:
    """Parse each document as PyYAML's safe loader would; empty documents are dropped."""
    return [(parsed.document, parsed.value) for parsed in parse_documents(docs)]


def parse_documents(docs: Iterable[Document]) -> Iterator[Parsed]:
    """As ``load_documents``, one document at a time, with PyYAML's node tree where PyYAML read
    the document (a tree weighs several times its value: the caller drops it when done).

    The process-wide garbage collector is left alone: in a notebook it is the user's kernel's.
    """
    return (parsed for doc in docs if (parsed := _load(doc)).value is not None)


def _load(doc: Document) -> Parsed:
    """yaml-rs when it surely agrees with PyYAML, else PyYAML (which also words the errors).
    One document per call: its value is checked while still in the CPU cache."""
    if _fast_path_open(doc.text):
        try:
            value = _parse_fast(doc.text)
        except Exception:  # any failure at all: PyYAML judges the document
            return _parse_judged(doc)
        if value is not None and not _differs(doc.text, value):
            return Parsed(doc, value)
    return _parse_judged(doc)


def _parse_fast(text: str) -> object:
    """yaml-rs with PyYAML's duplicate-key rule and tight alias limits (bombs fail fast)."""
    return yaml_rs.loads(text, parse_datetime=False, alias_limits=_RS_ALIAS_LIMITS,
                         duplicate_key_policy=yaml_rs.DuplicateKeyPolicy.LastWins)


_PREFIX = re.compile(r"[ \t?:-]*")
_ROOT_BLOCK = re.compile(r"(?:[ \t]*(?:#[^\n]*)?\n)*[ \t]*(?:[!&]\S*[ \t]+)*[|>]")
_BLOCK_HEADER = re.compile(r"(?:^|[ \t])[|>][-+0-9]*(?:[ \t]+#.*)?$", re.M)
_ODD_UTF8 = [re.compile(p) for p in (rb"\xc2[\x80-\x9f]", rb"\xe2\x80[\xa8\xa9]",
                                     rb"\xef(?:\xbb\xbf|\xbf[\xbe\xbf])")]


def _fast_path_open(text: str) -> bool:
    """False for what yaml-rs must not see: directives, deep nesting, a block scalar as the
    whole document (a "#" line at column 0 is a comment to PyYAML, text to yaml-rs), some block
    scalars at the very end, and characters that are line breaks or errors to PyYAML but text
    to yaml-rs (C1 controls, U+2028/2029, inner BOMs: looked for in non-ASCII text only)."""
    if text.startswith("%") or _ROOT_BLOCK.match(text) or _ends_in_block_scalar(text):
        return False
    if any(_end_of(_PREFIX, text, start, len(text)) - start >= _DEEP
           for start in _long_lines(text, "\n", _DEEP)):
        return False
    if text.isascii():
        return True
    try:
        return not any(pattern.search(text.encode("utf-8")) for pattern in _ODD_UTF8)
    except UnicodeEncodeError:  # lone surrogates
        return False


def _ends_in_block_scalar(text: str) -> bool:
    """Whether the text may end in a block scalar yaml-rs reads wrongly at the end of a stream:
    left empty, or without a final line break (``a: |`` is "" and ``a: |\\n  x`` is "x" to
    PyYAML and the spec; yaml-rs adds a "\\n"). Walks back from the last line to the line it
    hangs from; past 10000 lines it gives up and lets PyYAML read the document."""
    end = len(text)
    while end and text[end - 1] in " \t\n":
        end -= 1
    stop = text.rfind("\n", 0, end) + 1
    if _BLOCK_HEADER.search(text, stop, end):
        return True
    if text.endswith("\n"):
        return False
    least = len(text[stop:end]) - len(text[stop:end].lstrip(" "))  # of the lines after
    for _ in range(10_000):
        if stop == 0 or least == 0:
            return False
        start = text.rfind("\n", 0, stop - 1) + 1
        line = text[start:stop - 1]
        indent = len(line) - len(line.lstrip(" "))
        if indent < least and line.strip():
            if _BLOCK_HEADER.search(line):
                return True  # every line after it is more indented: its content
            least = indent
        stop = start
    return True


# Signs in the marshal (format 1) bytes of a yaml-rs value, each pass led by a literal so it
# is fast: floats are written as text (b"f", length, repr); strings as b"u"/b"t", 4-byte
# length, UTF-8. Short strings YAML 1.1 reads as bool, merge or value; strings opening like a
# timestamp (1999-12-31) or a base-60 number (12:30, 190:20:30); any float.
_VALUE_SIGNS = [re.compile(pattern, re.S) for pattern in (
    rb"f[\x01-\x18](?:[-0-9]|inf|nan)",
    rb"\x01\x00\x00\x00=(?<=[ut]\x01\x00\x00\x00=)",
    rb"\x02\x00\x00\x00(?<=[ut]\x02\x00\x00\x00)(?:[oOnN][nNoO]|<<)",
    rb"\x03\x00\x00\x00(?<=[ut]\x03\x00\x00\x00)(?:[yY][eE][sS]|[oO][fF][fF])",
    rb"-(?<=[ut][\x08-\xff]\x00\x00\x00[0-9]{4}-)",
    rb":(?<=[0-9_]:)(?:(?<=[0-9_]{8}:)|" + b"|".join(
        rb"(?<=[ut][\x02-\xff]\x00\x00\x00%s[0-9][0-9_]{%d}:)" % (sign, n)
        for sign in (b"", b"[-+]") for n in range(8)) + rb")",
)]
# Signs in the text: numbers led by 0 or _ (0644 is 420 in YAML 1.1 but 644 in 1.2; 0o17,
# 0X1F, _1 are numbers only in 1.2); node properties and flow keys: "!!binary", "! 12" (12 to
# PyYAML), anchors (&a:b ends at ":" in 1.1; an alias inside its own anchor is None to
# yaml-rs), "[?a]" (a key to PyYAML). A "!custom" tag is kept by yaml-rs where PyYAML refuses
# it: a leniency.
_TEXT_SIGNS = {char: re.compile(re.escape(char) + r"(?<![^\s\[{,:+\-\"'].)" + after)
               for char, after in (("0", "(?:[0-9_oOXB]|[xb]_)"), ("_", "[0-9_.]"),
                                   ("!", r"(?<![^\s\[{,].)[!<\s]"), ("&", r"(?<![^\s\[{,].)[^\s,\[\]{}&]"),
                                   ("?", r"(?<![^\s\[{,].)\S"))}
_END = r"(?=[ \t]*(?:$|\#|,|:(?:[ \t]|$)|[\]}][ \t]*(?:$|[,\]}\#:])))"
#: Plain scalars that YAML 1.1 and 1.2 read differently, as (first character, rest): bools,
#: "=", "<<", octal and 0o/0X/0B/_ numbers, exponents without "." or sign, ".5" forms, base 60,
#: timestamps, signed numbers; then tags, anchors and flow keys as above.
_SCALARS = [("[yY]", "(?:es|ES)"), ("[nN]", "[oO]"), ("[oO]", "(?:[nN]|[fF][fF])"), ("=", ""),
            ("<", "<"), ("0", "(?:[0-9_oOXB]|[xb]_)[0-9a-zA-Z_]*"), ("_", "[0-9_.eE+-]+"),
            ("[0-9_.]", "[0-9_.]*[eE][-+]?[0-9_]+"), (r"\.", "(?:[0-9_]+|[iI][nN][fF]|[nN][aA][nN])"),
            ("[0-9]", r"[0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?"),
            ("[0-9]", r"[0-9]{3}-[0-9]{1,2}-[0-9]{1,2}(?:(?:[Tt]|[ \t]+)[0-9]{1,2}:[0-9]{2}:[0-9]{2}"
                      r"(?:\.[0-9]*)?(?:[ \t]*(?:Z|[-+][0-9]{1,2}(?::[0-9]{2})?))?)?")]
_SCALARS += [("[-+]", "(?:" + "|".join(first + rest for first, rest in _SCALARS[5:10]) + ")")]
#: A character set first, so re skips ahead fast; the character must follow a blank, a flow
#: indicator, ":" or the start (not be inside a word); then a branch checks which it was.
_DIFFERENT = re.compile(
    r"[yYnNoO=<0-9_.+\-!&?](?<=(?<![^\s\[{,:]).)(?:"
    + "|".join(f"(?<={first}){rest}{_END}" for first, rest in _SCALARS)
    + r"|(?<=!)[!<\s]|(?<=&)[^\s,\[\]{}&]|(?<=\?)[^\s])", re.M)


def _differs(text: str, value: Any) -> bool:
    """Whether PyYAML could read ``text`` otherwise than yaml-rs did (``value``): cheap signs
    first, then, only on a sign, the precise search."""
    try:
        dumped = marshal.dumps(value, 1)
    except ValueError:  # nested too deeply for marshal: let PyYAML decide
        return True
    floats, equals, two, three, dates, base60 = _VALUE_SIGNS
    zero, underscore, tag, anchor, key = _TEXT_SIGNS.values()
    signs = (floats.search(dumped) or equals.search(dumped) or two.search(dumped)
             or three.search(dumped) or dates.search(dumped) or base60.search(dumped)
             or zero.search(text) or ("_" in text and underscore.search(text))
             or ("!" in text and tag.search(text)) or ("&" in text and anchor.search(text))
             or ("?" in text and key.search(text)))
    return bool(signs) and any(_starts_plain_scalar(text, match.start())
                               for match in _DIFFERENT.finditer(text))


def _starts_plain_scalar(text: str, at: int) -> bool:
    """Whether a plain scalar can start at ``at``: after indentation, "- ", ": ", "? ", a flow
    indicator opening a token, a JSON-like key ("a":1) or an anchor. Prose ("depending on")
    and brackets inside a scalar (``conditions[?(@.type)]``) do not count."""
    line = text[max(text.rfind("\n", 0, at) + 1, at - 512):at]  # a window: long lines stay cheap
    before = line.rstrip(" \t")
    spaced = len(before) < len(line)
    last = before[-1:]
    if last in ("", ","):
        return True
    if last in "[{":
        return before[-2:-1] in ("", " ", "\t", "[", "{", ",", ":")
    if (last in "-?:" and spaced) or before[-2:] in ('":', "':"):
        return True
    return spaced and before.rsplit(None, 1)[-1][:1] in "&!"


def _parse_judged(doc: Document) -> Parsed:
    """PyYAML's reading of a document, refusing alias bombs before they are built."""
    loader = _SAFE_LOADER(doc.text)
    try:
        node = loader.get_single_node()
        if node is not None and "*" in doc.text:
            _check_aliases(node, doc)
        return Parsed(doc, None if node is None else loader.construct_document(node), node)
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
