"""kubenb's own YAML reader (``kubenb/discover/_yaml_values.c``) against PyYAML, its reference.

The reader builds a document's value and its node offsets straight from libyaml's events and
hands every shape it does not handle back to PyYAML. These tests hold it to three promises:
where it reads a document, the value and every line are PyYAML's; what it does not handle it
recognises (and PyYAML then reads, errors included); and no path through it leaks or swallows
an interrupt.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from kubenb import list_images
from kubenb.discover import clear_memo, documents
from kubenb.discover.documents import Document, load_documents, split_documents
from kubenb.discover.positions import NodeLines
from kubenb.errors import DiscoveryError
from tests.support.corpus import CORPUS, context_for, expected_cases, load_expected, peer_cases, runtime_cases
from tests.test_documents import TRICKY, same

_yaml_values = documents._yaml_values


def test_the_reader_is_built() -> None:
    """Without it discovery still works, composing everything with PyYAML, but several times
    slower: `make test` installs libyaml-dev so that the package builds it."""
    assert _yaml_values is not None, "kubenb/discover/_yaml_values.c was not built: install libyaml-dev, reinstall"
    assert _yaml_values.libyaml_version().startswith("0.2.")


def read(text: str) -> Any:
    return _yaml_values.load(text, documents._plain_number)


def paths(value: object, steps: tuple[object, ...] = ()) -> Iterator[tuple[object, ...]]:
    yield steps
    if isinstance(value, dict):
        for key, item in value.items():
            yield from paths(item, (*steps, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from paths(item, (*steps, index))


def assert_as_pyyaml(doc: Document) -> bool:
    """The reader's value and lines for ``doc`` are those PyYAML's composer gives; False when
    the reader leaves the document to PyYAML."""
    built = read(doc.text)
    if built is NotImplemented:
        return False
    composed = documents._compose(doc)
    value, tree = built
    if composed is None:
        assert value is None
        return True
    assert same(value, composed.value)
    ours, theirs = NodeLines(doc, tree), NodeLines(doc, composed.tree)
    for steps in paths(composed.value):
        assert ours.line_of(steps) == theirs.line_of(steps), steps
        assert ours.line_of(steps, 3) == theirs.line_of(steps, 3), steps
    return True


def corpus_documents() -> Iterator[Document]:
    for path in sorted(CORPUS.rglob("*.y*ml")):
        if "templates" in path.parts:  # Helm templates are not YAML until rendered
            continue
        try:
            yield from split_documents(path.read_text(encoding="utf-8"), str(path.relative_to(CORPUS)))
        except UnicodeDecodeError:
            continue


def test_every_corpus_document_reads_as_pyyaml_reads_it() -> None:
    """Values and the line of every node, on every manifest, values file and peer case of the
    corpus; the reader must take the documents without tags, anchors or merge keys."""
    read_by_us = left = 0
    for doc in corpus_documents():
        if assert_as_pyyaml(doc):
            read_by_us += 1
        else:
            left += 1
            try:
                documents._compose(doc)
            except Exception:
                continue  # broken on purpose: PyYAML reports it
            assert any(mark in doc.text for mark in ("!", "&", "<<")), doc.file
    assert read_by_us > 500 and left < read_by_us / 20, (read_by_us, left)


CONTEXTS = ([("expected", case) for case in expected_cases()] + [("peer", case) for case in peer_cases()]
            + [("runtime", case) for case in runtime_cases()])


@pytest.mark.parametrize(("kind", "case"), CONTEXTS, ids=lambda c: getattr(c, "name", c))
def test_discovery_finds_the_same_with_and_without_the_reader(kind: str, case: Path, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Every corpus context: the same image list, every location and line included, whether
    the reader or PyYAML alone (a machine that could not build it) reads the documents."""
    context = context_for(load_expected(case), tmp_path) if kind == "expected" else case

    def discovered() -> object:
        clear_memo()
        try:
            return list_images(context)
        except DiscoveryError as error:
            return str(error), error.file, error.line

    with_reader = discovered()
    monkeypatch.setattr(documents, "_yaml_values", None)
    assert discovered() == with_reader
    clear_memo()


@pytest.mark.parametrize("text", TRICKY)
def test_tricky_documents_read_as_pyyaml_or_go_to_it(text: str) -> None:
    """The YAML 1.1 table of tests/test_documents.py: resolved here exactly as PyYAML does,
    or left to it (test_documents checks the value discovery then gives)."""
    try:
        assert_as_pyyaml(Document("t.yaml", 0, 1, text))
    except yaml.YAMLError:
        assert read(text) is NotImplemented


@pytest.mark.parametrize("text", [
    "a: &x 1\nb: *x",  # anchors and aliases
    "a: &x 1",  # an anchor alone: PyYAML refuses a duplicate, so anchors are its to check
    "a: !!str 1", "a: ! x", "a: !custom {b: 1}", "!!map {a: 1}",  # tags
    "a: {<<: {b: 1}}", "=: 1", "a: =",  # merge and value keys
    "? [a]\n: 1", "? {a: 1}\n: 1",  # collection keys
    "%YAML 1.1\n---\na: 1", "%TAG !e! tag:example.com,2000:\n---\na: 1",  # directives
    "a: 1\n---\nb: 2",  # two documents (split_documents never gives one such text)
    "a: [1, 2", "a: b: c", "a:\n\tb: 1",  # syntax errors
    "a: 2024-13-45",  # a timestamp PyYAML's constructor refuses
    "a:\n" + "".join("  " * n + "- \n" for n in range(1, 260)),  # nesting deeper than 200
])
def test_shapes_the_reader_leaves_to_pyyaml(text: str) -> None:
    assert read(text) is NotImplemented
    doc = Document("t.yaml", 0, 1, text)
    try:
        expected = yaml.load(text, Loader=yaml.CSafeLoader)
    except (yaml.YAMLError, ValueError):  # broken, or 2024-13-45
        expected = None
    if expected is not None:
        assert same(load_documents([doc])[0][1], expected)


def test_an_interrupt_in_the_resolver_is_not_swallowed() -> None:
    """A Ctrl-C while a number is resolved stops the parse; an ordinary error sends the
    document to PyYAML."""
    def interrupted(text: str) -> object:
        raise KeyboardInterrupt

    def broken(text: str) -> object:
        raise ValueError(text)

    with pytest.raises(KeyboardInterrupt):
        _yaml_values.load("a: {b: [1]}", interrupted)
    assert _yaml_values.load("a: {b: [1]}", broken) is NotImplemented
    # offsets: the inner mapping at 3, the list at 7, "x" at 8; codes are offset * 2
    assert _yaml_values.load("a: {b: [x]}", interrupted) == ({"a": {"b": ["x"]}}, (0, {"a": (6, {"b": [14, 16]})}))


def test_no_path_through_the_reader_leaks() -> None:
    """Every way out (read, left to PyYAML at each depth, a failing resolver) frees what it
    built: memory after thousands of reads is what it was after the first hundred."""
    texts = ["a: {b: [1, x, yes], c: |\n  z\n}", "a: {b: [1, &x y]}", "a: {b: [1, 2]\n", "a:\n  ? [x]\n  : 1",
             "a: [2024-13-45]", "a: [{b: c}, !!str d]", "- - - - x\n  - *y"]
    def run(times: int) -> None:
        for _ in range(times):
            for text in texts:
                read(text)
    run(100)
    tracemalloc.start()
    try:
        run(100)
        before = tracemalloc.get_traced_memory()[0]
        run(3000)
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert after - before < 64 * 1024, after - before


SCALAR_TEXT = st.text(alphabet="0123456789.-+_:eExXoObBtTrRuUfFaAlLsSnNyYiI~<= ", min_size=0, max_size=12)


@settings(max_examples=1500, deadline=None)
@given(SCALAR_TEXT)
def test_plain_scalars_resolve_as_pyyaml_resolves_them(text: str) -> None:
    """Words that look like bools, nulls, numbers or dates, as keys and as values."""
    for document in (f"k: {text}\n", f"{text}: v\n", f"- [{text}]\n"):
        try:
            expected = yaml.load(document, Loader=yaml.CSafeLoader)
        except (yaml.YAMLError, ValueError):
            assert read(document) is NotImplemented
            continue
        built = read(document)
        if built is NotImplemented:  # a valid document of plain scalars: only "<<" and "=" go to PyYAML
            assert "<<" in document or "=" in document, document
        else:
            assert same(built[0], expected), document


LEAVES = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                   st.text(max_size=20), st.sampled_from(["yes", "0644", "1e3", "|x", "a: b", "- x", "#c"]))
VALUES = st.recursive(LEAVES, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
    st.text(max_size=8) | st.integers(), inner, max_size=4), max_leaves=30)


@settings(max_examples=400, deadline=None)
@given(VALUES, st.sampled_from([None, False, True]), st.sampled_from([None, "|", '"', "'"]))
def test_dumped_documents_read_as_pyyaml_reads_them(value: object, flow: bool | None, style: str | None) -> None:
    """Whatever PyYAML writes, in block or flow style, with any scalar style, reads back with
    PyYAML's value and lines."""
    text = yaml.safe_dump(value, default_flow_style=flow, default_style=style, allow_unicode=True)
    doc = Document("t.yaml", 0, 1, text)
    if read(text) is NotImplemented:  # a quoted default style tags what is not text ("!!null")
        assert "!!" in text, text
        expected = yaml.load(text, Loader=yaml.CSafeLoader)
        assert same(load_documents([doc])[0][1] if expected is not None else None, expected)
    else:
        assert assert_as_pyyaml(doc), text


def test_lines_of_a_literal_block_count_within_it() -> None:
    """A literal block keeps its lines: the line of its third line is two below its first."""
    text = "kind: ConfigMap\ndata:\n  run.sh: |\n    one\n    two\n    three\n"
    value, tree = read(text)
    assert value == {"kind": "ConfigMap", "data": {"run.sh": "one\ntwo\nthree\n"}}
    lines = NodeLines(Document("c.yaml", 0, 10, text), tree)
    assert lines.line_of(("data", "run.sh")) == 12
    assert lines.line_of(("data", "run.sh"), 2) == 14
    assert lines.line_of(("data", "missing")) is None
    assert lines.line_of(("kind", 0)) is None
