"""Manifest text -> YAML documents: Helm's splitting, PyYAML's values, errors with lines, safety.

Every document is read once on libyaml: by kubenb's reader (``_yaml_values.c``, held to PyYAML
in tests/test_yaml_values.py), else by PyYAML's C composer with the values built from its node
tree by ``documents.build_value``. The corpus (tests/corpus, read only) and the tables below
(the YAML 1.1 / 1.2 differences, merges, tags) prove the values are PyYAML's own.
"""

from __future__ import annotations

import gc
import io
import json
import math
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from kubenb.discover.documents import (
    Document,
    _read_at_most,
    is_crd,
    load_documents,
    read_input_file,
    split_documents,
)
from kubenb.errors import DiscoveryError
from tests.support.corpus import CORPUS

MANIFESTS = sorted((CORPUS / "manifests").glob("*"))
PEER_MANIFESTS = sorted(p for p in CORPUS.glob("peers/*/manifests/*") if "invalid-manifest" not in str(p))
BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + n)}: &{chr(98 + n)} [{', '.join(['*' + chr(97 + n)] * 9)}]\n" for n in range(8))


def same(a: Any, b: Any) -> bool:
    """Equal and of the same types all the way down (1 == 1.0 == True would hide differences)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return len(a) == len(b) and all(k in b and same(v, b[k]) for k, v in a.items()) and all(
            same(k, next(j for j in b if j == k)) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(map(same, a, b))
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return bool(a == b)


def pyyaml(text: str) -> list[Any]:
    """The reference: PyYAML's C loader over the whole stream, empty documents dropped."""
    return [doc for doc in yaml.load_all(text, Loader=yaml.CSafeLoader) if doc is not None]


def values(text: str) -> list[Any]:
    return [value for _, value in load_documents(split_documents(text, "f.yaml"))]


# --- splitting -------------------------------------------------------------------------------

SPLITS = [
    ("a: 1\n---\nb: 2\n", [(1, "a: 1\n"), (3, "b: 2\n")]),
    ("---\na: 1\n", [(2, "a: 1\n")]),
    ("a: 1\n--- # Source: chart/templates/x.yaml\nb: 2\n",
     [(1, "a: 1\n"), (2, "# Source: chart/templates/x.yaml\nb: 2\n")]),
    ("a: 1\n---# Permission to approve\nkind: Role\n",  # cert-manager's rbac.yaml, rendered
     [(1, "a: 1\n"), (2, "# Permission to approve\nkind: Role\n")]),
    ("a: |\n  x\n-----END CERTIFICATE-----\n", [(1, "a: |\n  x\n-----END CERTIFICATE-----\n")]),
    ("---\n---\n# only a comment\n---\n\n\n  \nb: 2\n---\n", [(8, "b: 2\n")]),
    ("a: 1\r\n---\r\nb: 2\r\n", [(1, "a: 1\n"), (3, "b: 2\n")]),
    ("a: 1\rb: 2\r", [(1, "a: 1\nb: 2\n")]),
    ("\ufeffa: 1\n", [(1, "a: 1\n")]),
    ("a: 1\n...\nb: 2\n... # end\n---\nc: 3", [(1, "a: 1\n"), (3, "b: 2\n"), (6, "c: 3")]),
    ("--- |\n  text\n", [(1, "|\n  text\n")]),
    ("--- {a: 1}\n--- [1]\n", [(1, "{a: 1}\n"), (2, "[1]\n")]),
    ("%YAML 1.1\n---\na: 1\n", [(1, "%YAML 1.1\n---\na: 1\n")]),
    ("  indented: 1\n  again: 2\n", [(1, "  indented: 1\n  again: 2\n")]),
    ("a: 1\n  ---\n", [(1, "a: 1\n  ---\n")]),
    ("", []),
    ("# nothing\n\n", []),
]


@pytest.mark.parametrize(("text", "expected"), SPLITS)
def test_split_documents(text: str, expected: list[tuple[int, str]]) -> None:
    docs = split_documents(text, "manifests/x.yaml", chart="c")
    assert [(doc.line, doc.text) for doc in docs] == expected
    assert [doc.index for doc in docs] == list(range(len(expected)))
    assert all(doc.file == "manifests/x.yaml" and doc.chart == "c" for doc in docs)


CRD = "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nspec: {}\n"


@pytest.mark.parametrize("text", [
    f"{CRD}---\n{CRD}---\n# x\nkind: Pod\n",
    f"kind: A\n---\n{CRD}---\n\nkind: B\n",
    f"%YAML 1.1\n---\n{CRD}---\nkind: C\n",
    f"a: 1\n--- {CRD}--- b: 2\n",
    "a: 1\n--- kind: CustomResourceDefinition\nspec: {}\n--- b: 2\n",  # starts on its marker's line
    "a: 1\n--- x: 'kind: CustomResourceDefinition'\n",
    f"{CRD}...\n{CRD}",
])
def test_split_without_crds_drops_them_and_keeps_every_other_place(text: str) -> None:
    """Left out of the split, a CRD moves nothing: each other document keeps its line, text
    and index in the file, exactly as a full split then ``is_crd`` gives them."""
    kept = [(d.index, d.line, d.text) for d in split_documents(text, "f") if not is_crd(d.text)]
    assert [(d.index, d.line, d.text) for d in split_documents(text, "f", without_crds=True)] == kept
    assert all("CustomResourceDefinition\n" not in d.text for d in split_documents(text, "f", without_crds=True))


def test_split_without_crds_on_the_corpus() -> None:
    for path in MANIFESTS + PEER_MANIFESTS:
        text = path.read_text(encoding="utf-8")
        kept = [(d.index, d.line, d.text) for d in split_documents(text, path.name) if not is_crd(d.text)]
        assert [(d.index, d.line, d.text) for d in split_documents(text, path.name, without_crds=True)] == kept


def test_split_matches_pyyaml_on_the_corpus() -> None:
    for path in MANIFESTS:
        text = path.read_text(encoding="utf-8")
        assert same(values(text), pyyaml(text)), path.name


def test_start_lines_point_at_the_document() -> None:
    text = "# header\n---\n\n\nkind: A\n---\n# Source: x\nkind: B\n"
    docs = split_documents(text, "f")
    assert [(d.line, text.splitlines()[d.line - 1]) for d in docs] == [(5, "kind: A"), (7, "# Source: x")]


# --- one parser: PyYAML's documents -------------------------------------------------------------


@pytest.mark.parametrize("path", MANIFESTS + PEER_MANIFESTS, ids=lambda p: p.parent.parent.name + "/" + p.name)
def test_corpus_documents_are_pyyamls(path: Path) -> None:
    """Every document of every corpus manifest: identical to PyYAML's C loader's value."""
    for doc in split_documents(path.read_text(encoding="utf-8"), path.name):
        loaded = load_documents([doc])
        assert same(loaded[0][1] if loaded else None, yaml.load(doc.text, Loader=yaml.CSafeLoader)), doc.index


def test_discovery_has_one_parser(tmp_path: Path) -> None:
    """The discovery path imports no second YAML parser: PyYAML and kubenb's own reader, both
    on libyaml (tests/test_yaml_values.py holds the reader to PyYAML's values). A document that
    YAML 1.1 and 1.2 read differently gives PyYAML's (1.1) values: ``on`` and ``yes`` are True,
    ``0644`` is 420, ``12:30`` is 750, ``<<`` merges."""
    text = "on: yes\nmode: 0644\nat: 12:30\nbase: &b {x: 0x1F}\nmerged: {<<: *b, y: 1e3}\n"
    assert values(text) == [yaml.load(text, Loader=yaml.CSafeLoader)]
    assert values(text) == [{True: True, "mode": 420, "at": 750, "base": {"x": 31},
                             "merged": {"x": 31, "y": "1e3"}}]
    probe = ("import sys; from pathlib import Path; import kubenb.discover as d; "
             "from kubenb.kubefile import plan_build; "
             "d.context_images(plan_build(Path(sys.argv[1]))); "
             "print(sorted(m for m in sys.modules if 'yaml' in m and not m.startswith(('yaml', '_yaml'))))")
    shutil.copytree(CORPUS / "manifests", tmp_path / "manifests")
    result = subprocess.run([sys.executable, "-c", probe, str(tmp_path)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "['kubenb.discover._yaml_values']"


def test_rendered_corpus_charts_are_pyyamls() -> None:
    """Rendered charts too (Helm's output has its own shapes: an empty ``|`` at the end...)."""
    helm = pytest.importorskip("helm_python")
    checked = 0
    for expected in sorted((CORPUS / "expected").glob("*.json")):
        entry = json.loads(expected.read_text())
        if not entry["source"].startswith("charts/"):
            continue
        values_ = yaml.safe_load((CORPUS / entry["values"]).read_text()) if entry["values"] else None
        with helm.Chart.load(CORPUS / entry["source"]) as chart:
            rendered = chart.render(values_, name="release", namespace="default", is_install=True)
        for template, text in rendered.items():
            for doc in split_documents(text, template) if not template.endswith("NOTES.txt") else ():
                loaded = load_documents([doc])
                expected_ = yaml.load(doc.text, Loader=yaml.CSafeLoader)
                assert same(loaded[0][1] if loaded else None, expected_), template
                checked += 1
    assert checked > 200


TRICKY = [
    "a: yes", "a: No", "a: on", "a: OFF", "on: 1", "[yes, no]", "{x: off}", '{"a":on}', "[a: on]",
    "key:\n  yes", "a: Off # comment", "- &anchor on", "a: 'yes'", 'a: "on"',
    "a: 0644", "a: 09", "a: 0o17", "a: 0X1F", "a: 0B1", "a: 0x1F", "a: _1", "a: +_1", "a: 1_000",
    "a: 1e3", "a: 1E3", "a: 1.5e3", "a: 1.5e+3", "a: 0e0", "a: 1.0e+1_0", "a: .5", "a: +.5", "a: -.5",
    "a: ._5", "a: .inf", "a: .InF", "a: -.Inf", "a: .NaN", "a: 1.", "a: 12:30", "a: 1:20.5",
    "a: 190:20:30", "a: 2024-01-01", "a: 2001-12-14t21:59:43.10-05:00", "a: 2001-12-14 21:59:43.10 -5",
    "a: 2024-1-1", "build-timestamp: 2024-10-04 - 07:10:18 +0000", "a: '2024-01-01'",
    "a: &x {b: 1}\nc:\n  <<: *x\n  d: 2", "a: !!binary aGVsbG8=", "a: !!int '0644'", "a: !!str 12",
    "a: ! 12", "a: !!set {x, y}", "a: 1\na: 2", "a: 123456789012345678901234567890",
    "a: &x.y 1\nb: *x.y", "[?a]", "a: |\n", "a: |\n  x", "a: >\n  x\n  ", "- |+\n", "|\n  x\n#\n",
    "a: |\n  text\n\n", "a: >-\n  folded\n  text\n", "a: 'multi\n\n line'", "a: \"x\\/y\"",
    "image: nginx:1.25 # trailing comment", "image: registry.k8s.io/x@sha256:0103abc",
    "a: &a {x: 1, y: 1}\nb: &b {x: 2, z: 2}\nc: {<<: [*a, *b], w: 3, x: 4}",
    "a: &a {x: 1}\nb: {<<: *a, <<: {x: 2}}", "b:\n  <<: [1]", "=: 1", "a: =",
    "a: !!omap [{x: 1}, {y: 2}]", "a: !!pairs [{x: 1}]", "? !!str 1\n: x", "? [a]\n: x",
    "1: x\n1.5: y\nnull: z\nyes: w\n~: v\n2024-01-01: d", "a: !!float 1", "a: !!null ''",
    "- &s x\n- *s\n- {*s : 1}", "a: !custom x", "a: !custom {b: 1}", "[1, 2]: 3",
]


@pytest.mark.parametrize("text", TRICKY)
def test_tricky_scalars_read_as_pyyaml_reads_them(text: str) -> None:
    try:
        expected: Any = pyyaml(text)
    except yaml.YAMLError:
        with pytest.raises(DiscoveryError):
            values(text)
        return
    assert same(values(text), expected)


def test_duplicate_keys_last_wins_as_in_pyyaml() -> None:
    assert values("a: b\na: c") == [{"a": "c"}]


@pytest.mark.parametrize(("text", "message", "line"), [
    ("kind: Pod\na: !custom x", "could not determine a constructor for the tag '!custom'", 2),
    ("kind: Pod\n[1, 2]: 3", "found unhashable key", 2),
    ("kind: Pod\nb:\n  <<: [1]", "expected a mapping for merging", 3),
])
def test_what_pyyaml_refuses_is_an_error_at_its_line(text: str, message: str, line: int) -> None:
    """One parser, so no leniency: a tag PyYAML does not know, a list as a key, a merge of a
    scalar are errors, named at the line PyYAML names."""
    with pytest.raises(DiscoveryError, match=message) as error:
        values(text)
    assert error.value.line == line


def test_load_documents_leaves_the_collector_as_it_finds_it() -> None:
    """gc is process-wide (a notebook's kernel): parsing never switches it on or off
    (tests/test_provenance.py checks that it stays on through a whole discovery)."""
    assert gc.isenabled()
    values("a: 1")
    assert gc.isenabled()
    gc.disable()
    try:
        values("a: 1")
        assert not gc.isenabled()
    finally:
        gc.enable()


# --- errors name the file and the line ----------------------------------------------------------


def test_broken_yaml_names_file_and_line_of_the_peer_case() -> None:
    (path,) = (CORPUS / "peers" / "zarf-invalid-manifest-yaml" / "manifests").glob("*.yaml")
    with pytest.raises(DiscoveryError) as error:
        load_documents(split_documents(path.read_text(), "manifests/deployment.yaml"))
    assert (error.value.file, error.value.line) == ("manifests/deployment.yaml", 12)
    assert "could not find expected ':'" in str(error.value)


def test_error_line_is_absolute_in_a_later_document() -> None:
    text = "a: 1\n---\n# c\nb:\n  - x\n  y: 2\n"
    with pytest.raises(DiscoveryError) as error:
        values(text)
    assert error.value.line == 6 and str(error.value).startswith("f.yaml:6: invalid YAML")


@pytest.mark.parametrize(("text", "message"), [
    ("a: 2024-13-45", "invalid YAML value"),
    ("a: !!int ''", "invalid YAML value"),
    ("a: &x 1\nb: &x 2", "duplicate anchor"),
    ("a: *nowhere", "undefined alias"),
    ("a: &x [*x]", "recursive YAML alias"),
])
def test_values_pyyaml_refuses_are_errors(text: str, message: str) -> None:
    with pytest.raises(DiscoveryError, match=message):
        values(text)


# --- safety -------------------------------------------------------------------------------------


def test_alias_bomb_fails_fast() -> None:
    doc = split_documents(BOMB, "bomb.yaml")[0]
    start = time.perf_counter()
    with pytest.raises(DiscoveryError, match="too many YAML aliases"):
        load_documents([doc])
    assert time.perf_counter() - start < 1


def test_merge_key_bomb_fails_fast() -> None:
    text = "a0: &a0 {k: v}\n" + "".join(
        f"a{n}: &a{n} {{<<: [{', '.join([f'*a{n - 1}'] * 9)}], k{n}: v}}\n" for n in range(1, 9))
    start = time.perf_counter()
    with pytest.raises(DiscoveryError, match="too many YAML aliases"):
        values(text)
    assert time.perf_counter() - start < 1


@pytest.mark.parametrize("text", ["[" * 100_000, "{a: " * 100_000, "- " * 100_000 + "x",
                                  "".join(" " * n + "k:\n" for n in range(3000))])
def test_deep_nesting_is_an_error_not_a_crash(text: str) -> None:
    with pytest.raises(DiscoveryError, match=r"nesting depth|nested"):
        values(text)


def test_the_deepest_document_pyyaml_composes_reads_in_a_thread_too() -> None:
    """libyaml stops at 1000 levels; 999 are beyond a Python recursion, so ``build_value``
    hands them to PyYAML's constructor, which keeps its own stack."""
    outcome: list[object] = []
    thread = threading.Thread(target=lambda: outcome.append(values("- " * 999 + "x")))
    thread.start()
    thread.join()
    levels, deepest = 0, outcome[0]
    while type(deepest) is list and len(deepest) == 1:
        levels, deepest = levels + 1, deepest[0]
    assert (levels, deepest) == (1 + 999, "x")  # the list of documents, then the 999 levels


def test_huge_single_line_file_fails_fast(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_bytes(b"a: " + b"x" * 50_000_000)
    start = time.perf_counter()
    with pytest.raises(DiscoveryError, match="line is longer than") as error:
        read_input_file(path, "manifests/big.yaml")
    assert time.perf_counter() - start < 2
    assert (error.value.file, error.value.line) == ("manifests/big.yaml", 1)


def test_file_over_the_size_limit(tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_text("a: 1\n" * 100)
    with pytest.raises(DiscoveryError, match="larger than 100 bytes"):
        read_input_file(path, "x.yaml", max_bytes=100)


@pytest.mark.parametrize(("data", "message", "line"), [
    (b"a: 1\nb: 2\nc: caf\xe9\n", "not valid UTF-8", 3),
    (b"a: 1\n\x00\x01\x02", "binary file", None),
    (b"\xff\xfea\x00:\x00", "UTF-16", None),
    (b"a: 1\nb: \x07\n", "control character 0x07", 2),
])
def test_unreadable_files(tmp_path: Path, data: bytes, message: str, line: int | None) -> None:
    path = tmp_path / "x.yaml"
    path.write_bytes(data)
    with pytest.raises(DiscoveryError, match=message) as error:
        read_input_file(path, "manifests/x.yaml")
    assert (error.value.file, error.value.line) == ("manifests/x.yaml", line)


@pytest.mark.parametrize(("expected", "limit", "read"), [(3, 100, 10), (50, 100, 10), (3, 6, 6), (10, 10, 10)])
def test_a_file_is_read_whole_whatever_size_its_stat_said(expected: int, limit: int, read: int) -> None:
    """The buffer is sized by the file's stat; a file that grew (or shrank) since is still read
    whole, up to the limit that tells a file too big."""
    assert _read_at_most(io.BytesIO(b"x" * 10), expected, limit) == b"x" * read


def test_read_input_file_refuses_what_is_not_a_file(tmp_path: Path) -> None:
    with pytest.raises(DiscoveryError, match="not a regular file"):
        read_input_file(tmp_path, "manifests/dir")
    with pytest.raises(DiscoveryError, match="cannot read"):
        read_input_file(tmp_path / "missing.yaml", "manifests/missing.yaml")


def test_read_input_file_keeps_text_as_is(tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_bytes("\ufeffa: é\r\n".encode())
    assert read_input_file(path, "x.yaml") == "\ufeffa: é\r\n"


# --- anything at all: documents or DiscoveryError -------------------------------------------------

YAMLISH = st.text(alphabet=st.sampled_from([*" \t\n-:?,[]{}#&*!|>'\"%@`.0123456789abyesnoffx=<_\\",
                                            "\r", "\ufeff", "\u2028", "\x85", "é", "\x00"]),
                  max_size=200)


@settings(max_examples=500, deadline=None)
@given(st.one_of(YAMLISH, st.text(max_size=200)))
def test_any_text_gives_documents_or_a_discovery_error(text: str) -> None:
    try:
        loaded = load_documents(split_documents(text, "f.yaml"))
    except DiscoveryError as error:
        assert error.file == "f.yaml"
        return
    assert all(isinstance(doc, Document) for doc, _ in loaded)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["k", "on", "yes", "0644", "12:30", "'q'", "<<", "1e3"]),
                          st.sampled_from([s.split(": ", 1)[-1] for s in TRICKY if ": " in s])),
                min_size=1, max_size=5))
def test_generated_mappings_read_as_pyyaml_reads_them(pairs: list[tuple[str, str]]) -> None:
    text = "".join(f"{key}: {value}\n" for key, value in pairs)
    try:
        expected = pyyaml(text)
    except yaml.YAMLError:
        return  # PyYAML refuses it: an error or a lenient reading, both fine here
    try:
        assert same(values(text), expected)
    except DiscoveryError:
        pytest.fail(f"{text!r}: PyYAML reads it, kubenb refused it")
