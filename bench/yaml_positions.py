"""Where provenance lines can come from: YAML parsers that give node positions, on the corpus.

    .venv/bin/python bench/yaml_positions.py [--copies 20] [--rounds 5]

Discovery needs each document's value and, for each image found, the line its value is
written on. Each document is parsed once, on libyaml: kubenb's reader (the C extension
kubenb/discover/_yaml_values.c) builds its value and node offsets, and leaves the shapes it does
not handle to PyYAML's C composer (kubenb/discover/documents.py). This measures it and the
other candidates on the documents discovery parses (every corpus manifest ``--copies``
times, CustomResourceDefinitions skipped as discovery skips them, plus every rendered corpus
chart once per copy), in CPU seconds, best of ``--rounds``, against yaml-rs loading the same
documents (values only, no positions: the floor):

    kubenb       ``parse_documents`` (values and position trees), then the same with the walk and
                 every hit's line (``NodeLines``): what discovery does with YAML
    PyYAML       CSafeLoader ``compose`` (nodes with start marks) of every document, and of
                 only those that hold an image; the full CSafeLoader load, for scale
    rapidyaml    ``ryml.parse_in_place`` (if the ``rapidyaml`` package is installed): every
                 document, and the image documents with each image's line. Its Python binding
                 has no node-position call: the line is worked out from the address of the
                 value's bytes inside the parsed buffer (via numpy), which is why it is only
                 measured here
    lines        ``NodeLines`` (kubenb/discover/positions.py) answering every hit's line from
                 the trees ``parse_documents`` kept
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
import yaml_rs

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from table import Row, show

from kubenb.discover.charts import charts_in, render_chart
from kubenb.discover.documents import Document, is_crd, parse_documents, read_input_file, split_documents
from kubenb.discover.hits import Hit
from kubenb.discover.positions import NodeLines
from kubenb.discover.walk import ObjectContext, walk_object
from tests.support.corpus import CORPUS

#: rapidyaml and numpy, if both are installed (neither is a kubenb dependency).
RYML: Any = importlib.import_module("ryml") if importlib.util.find_spec("ryml") else None
NUMPY: Any = importlib.import_module("numpy") if RYML and importlib.util.find_spec("numpy") else None
_NONE = 2**64 - 1  # rapidyaml's "no node"
CHART_VALUES = {"apollo-portal": "apollo-portal.yaml", "apollo-service": "apollo-service.yaml"}


def corpus_documents() -> list[Document]:
    """Every document discovery parses in the corpus: manifests, then rendered charts."""
    docs: list[Document] = []
    for path in sorted((CORPUS / "manifests").iterdir()):
        docs += split_documents(read_input_file(path, path.name), path.name)
    files = {p.relative_to(CORPUS / "charts").as_posix(): p for p in (CORPUS / "charts").rglob("*") if p.is_file()}
    for source in charts_in(files):
        values = CHART_VALUES.get(source.name)
        for rendered in render_chart(source, values_files=(CORPUS / "values" / values,) if values else ()):
            docs += split_documents(rendered.text, rendered.template, chart=rendered.chart)
    return [doc for doc in docs if not is_crd(doc.text)]


def with_hits(docs: list[Document]) -> list[tuple[Document, object, list[Hit]]]:
    found = []
    for parsed in parse_documents(docs):
        hits = list(walk_object(parsed.value, ObjectContext("manifest", parsed.document.file)))
        if hits:
            found.append((parsed.document, parsed.tree, hits))
    return found


def each(docs: list[Document], parse: Callable[[str], object]) -> Callable[[], None]:
    """Parse every document, dropping each result at once: keeping millions of nodes alive
    would time the garbage collector walking them, not the parser."""
    def run() -> None:
        for doc in docs:
            parse(doc.text)
    return run


def each_document(docs: list[Document]) -> Callable[[], None]:
    """kubenb's values, document by document (as ``each``)."""
    def run() -> None:
        for _ in parse_documents(docs):
            pass
    return run


def with_lines(docs: list[Document]) -> Callable[[], None]:
    """What discovery does with YAML: values, the walk, and every hit's line."""
    def run() -> None:
        for parsed in parse_documents(docs):
            hits = list(walk_object(parsed.value, ObjectContext("manifest", parsed.document.file)))
            if hits:
                lines = NodeLines(parsed.document, parsed.tree)
                for hit in hits:
                    lines.line_of(hit.steps, hit.value_line)
    return run


def compose(text: str) -> object:
    return yaml.compose(text, Loader=yaml.CSafeLoader)


def cpu_best(rounds: int, run: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = time.process_time()
        run()
        best = min(best, time.process_time() - started)
    return best


def ryml_lines(work: list[tuple[Document, yaml.Node, list[Hit]]]) -> Callable[[], None] | None:
    """rapidyaml's lines for every hit, or None if it is not installed."""
    if RYML is None or NUMPY is None:
        return None

    def address(buffer: Any) -> int:
        return int(NUMPY.frombuffer(buffer, NUMPY.uint8).ctypes.data)

    def run() -> None:
        for doc, _, hits in work:
            buffer = bytearray(doc.text.encode())
            tree = RYML.parse_in_place(buffer)
            for hit in hits:
                node = tree.root_id()
                for step in hit.steps:
                    if isinstance(step, int):
                        node = tree.child(node, step)
                    else:
                        node = tree.find_child(node, str(step).encode())
                    if node == _NONE:
                        break  # an alias or a merge: rapidyaml leaves them unresolved
                value = tree.val(node) if node != _NONE and tree.has_val(node) else b""
                if len(value):
                    _ = doc.line + buffer.count(b"\n", 0, address(value) - address(buffer))
    return run


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--copies", type=int, default=20)
    options.add_argument("--rounds", type=int, default=5)
    options.add_argument("--json", action="store_true")
    args = options.parse_args()
    docs = corpus_documents() * args.copies
    # The node trees of the image documents are kept only for the rows that need them, after
    # the others: millions of live nodes make every collection of the (untouched) garbage
    # collector slower, which would time the collector, not the parsers.
    hit_docs = [doc for doc, _, _ in with_hits(docs)]
    size = sum(len(d.text.encode()) for d in docs) / 1e6
    hit_size = sum(len(d.text.encode()) for d in hit_docs) / 1e6
    floor = cpu_best(args.rounds, each(docs, lambda text: yaml_rs.loads(text, parse_datetime=False)))
    rows = [
        Row("yaml", "kubenb parse_documents (values+nodes)", cpu_best(args.rounds, each_document(docs)),
            "yaml-rs loads, no positions", floor),
        Row("yaml", "kubenb values, walk, every hit's line", cpu_best(args.rounds, with_lines(docs)),
            "yaml-rs loads, no positions", floor),
        Row("yaml", "PyYAML C compose, every document",
            cpu_best(args.rounds, each(docs, compose)),
            "yaml-rs loads, no positions", floor),
        Row("yaml", "PyYAML C compose, image documents",
            cpu_best(args.rounds, each(hit_docs, compose)),
            "yaml-rs loads, no positions", floor),
        Row("yaml", "PyYAML C load, every document",
            cpu_best(max(1, args.rounds // 2), each(docs, lambda text: yaml.load(text, Loader=yaml.CSafeLoader))),
            "yaml-rs loads, no positions", floor),
    ]
    work = with_hits(hit_docs)
    ryml_run = ryml_lines(work)
    if ryml_run is not None:
        rows += [
            Row("yaml", "rapidyaml parse, every document",
                cpu_best(args.rounds, each(docs, lambda text: RYML.parse_in_place(bytearray(text.encode())))),
                "yaml-rs loads, no positions", floor),
            Row("yaml", "rapidyaml parse + lines, image docs", cpu_best(args.rounds, ryml_run),
                "yaml-rs loads, no positions", floor),
        ]

    def lines_only() -> None:
        for doc, node, hits in work:
            lines = NodeLines(doc, node)
            for hit in hits:
                lines.line_of(hit.steps, hit.value_line)

    rows.append(Row("yaml", "NodeLines alone, image docs", cpu_best(args.rounds, lines_only),
                    "yaml-rs loads, no positions", floor))
    show(rows, as_json=args.json,
         title=f"{len(docs)} documents, {size:.1f} MB; {len(hit_docs)} hold images, {hit_size:.1f} MB; "
               f"CPU seconds, best of {args.rounds}")


if __name__ == "__main__":
    main()
