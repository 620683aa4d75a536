"""Fuzzing in CI: thousands of generated inputs each for the parsers that read user text.

What tests/test_kubefile.py already fuzzes (arbitrary text through parse + expand; Kubefile-like
lines round-tripping through to_text) and tests/test_reference.py (arbitrary text and
grammatical references, with its default example count) is not repeated here. This adds:
the Kubefile loader on arbitrary *bytes* (encodings, BOMs, NULs), line spans and error lines
within the text, ARG/--build-arg expansion; references at 2000 examples with normalisation
properties; and the imageList reader, which had no property test.
"""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kubenb.discover.imagelist import read_image_list
from kubenb.errors import InvalidReferenceError, KubefileError, KubenbError
from kubenb.kubefile import expand, load, parse
from kubenb.reference import familiar, is_valid_reference, parse_reference

MANY = settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

KEYWORDS = ["FROM", "COPY", "RUN", "CMD", "ARG", "ENV", "LABEL", "from", "copy", "FORM", "#", ""]
LINE_ALPHABET = st.sampled_from([*list('ab $\\{}[]"=:-#\t/.\r'), "${X}", "$X", "${X:-d}", "\ufeff", "é"])
LINES = st.lists(st.tuples(st.sampled_from(KEYWORDS), st.lists(LINE_ALPHABET, max_size=14).map("".join)),
                 max_size=10)


def kubefile_text(lines: list[tuple[str, str]]) -> str:
    return "".join(f"{keyword} {text}\n" for keyword, text in lines)


# -- Kubefile ------------------------------------------------------------------------------------


@MANY
@given(LINES)
def test_kubefile_instructions_carry_line_spans_within_the_text(lines: list[tuple[str, str]]) -> None:
    text = kubefile_text(lines)
    last_line = max(1, len(text.splitlines()))  # the lexer counts lines as str.splitlines does
    try:
        kubefile = parse(text)
    except KubefileError as error:
        # last_line + 1 is the end of the file, where "no FROM instruction" is reported
        assert error.line is not None and 1 <= error.line <= last_line + 1, (error.line, last_line)
        return
    previous_end = 0
    for instruction in kubefile.instructions:
        assert previous_end < instruction.line <= instruction.end_line <= last_line
        previous_end = instruction.end_line
        assert instruction.keyword == instruction.keyword.upper()
        assert instruction.original.split("\n")[0].strip() in text


@MANY
@given(st.binary(max_size=300), st.sampled_from([b"", b"\xef\xbb\xbf", b"\xff\xfe", b"FROM scratch\n"]))
def test_kubefile_loader_on_arbitrary_bytes_raises_only_kubefile_errors(data: bytes, prefix: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "Kubefile"
        path.write_bytes(prefix + data)
        _load_or_kubefile_error(path)


def _load_or_kubefile_error(path: Path) -> None:
    try:
        load(path)
    except KubefileError as error:
        assert "\n" not in error.message


ARG_VALUES = st.text(alphabet=st.sampled_from(list("ab $\\{}'\"=:-")), max_size=10)


@MANY
@given(LINES, st.dictionaries(st.sampled_from(["X", "Y", "A_1"]), ARG_VALUES, max_size=3))
def test_expansion_with_build_args_raises_only_kubefile_errors_and_keeps_lines(
    lines: list[tuple[str, str]], build_args: dict[str, str],
) -> None:
    text = "ARG X=default\nFROM scratch\n" + kubefile_text(lines)
    try:
        kubefile = parse(text)
        expanded = expand(kubefile, build_args)
    except KubefileError as error:
        assert error.line is not None and error.line >= 1
        return
    assert [i.line for i in expanded.instructions] == [i.line for i in kubefile.instructions]


# -- references ----------------------------------------------------------------------------------


REFERENCE_PIECES = st.sampled_from(["docker.io", "localhost:5000", "[::1]:5000", "quay.io", "library", "nginx",
                                    "a.b", "a_b", "a__b", "a--b", "UP", "x" * 130, ":", "@", "/", "sha256:",
                                    "a" * 64, "1.25", "latest", "..", "-", " ", "\t", "\n", "%"])
REFERENCES = st.one_of(st.text(max_size=60), st.lists(REFERENCE_PIECES, max_size=8).map("".join))


@MANY
@given(REFERENCES)
def test_references_either_normalise_idempotently_or_raise_one_line_errors(text: str) -> None:
    try:
        ref = parse_reference(text)
    except InvalidReferenceError as error:
        assert isinstance(error, ValueError) and "\n" not in error.message
        assert not is_valid_reference(text)
        return
    assert is_valid_reference(text)
    normal = str(ref)
    assert str(parse_reference(normal)) == normal  # normalising is idempotent
    assert parse_reference(familiar(ref)) == ref
    assert ref.domain and ref.path and (ref.tag or ref.digest)
    assert normal.startswith(f"{ref.domain}/{ref.path}")


# -- imageList -----------------------------------------------------------------------------------


LIST_ALPHABET = st.sampled_from([*list("ab:/.@# \t\r\n-"), "\ufeff", "nginx:1.25", "\u2028", "\x85", "\x0c"])


@MANY
@given(st.lists(LIST_ALPHABET, max_size=60).map("".join))
def test_image_list_hits_are_stripped_commentless_and_on_lines_of_the_text(text: str) -> None:
    lines = text.removeprefix("\ufeff").splitlines()
    for hit in read_image_list(text, "manifests/imageList"):
        written = hit.written
        assert written and written == written.strip() and "#" not in written
        assert hit.location.file == "manifests/imageList"
        assert hit.location.line is not None and 1 <= hit.location.line <= len(lines)
        assert written in lines[hit.location.line - 1]
        with contextlib.suppress(KubenbError):  # an invalid line is reported by the caller, at this location
            parse_reference(written)


@MANY
@given(st.lists(st.sampled_from(["nginx:1.25", "busybox", "quay.io/a/b:1", "# c", "", "  x  # y"]), max_size=12),
       st.sampled_from(["\n", "\r\n"]))
def test_image_list_counts_each_image_line_once_whatever_the_line_endings(lines: list[str], newline: str) -> None:
    hits = list(read_image_list(newline.join(lines)))
    expected = [(n, line.split("#")[0].strip()) for n, line in enumerate(lines, 1) if line.split("#")[0].strip()]
    assert [(h.location.line, h.written) for h in hits] == expected
