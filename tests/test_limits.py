"""Limits that keep hostile or huge input from holding a build: Kubefile expansion and words,
the COPY cache key's memory, and a registry that trickles bytes (docs/reliability.md, "Limits").

No test here asserts a duration: speed is measured in bench/kubefile_parse.py. A subprocess
timeout is only a safety net against a hang (the code these tests replaced never finished).
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from kubenb.errors import KubefileError
from kubenb.kubefile import expand, parse
from kubenb.kubefile.expand import MAX_INSTRUCTION_BYTES
from kubenb.kubefile.parser import split_words
from tests.test_hostile import assert_one_clear_line, kubenb

# -- Kubefile: expansion is capped, words are split in linear time ------------------------------


def doubling_chain(links: int) -> str:
    """ARG A1=${A0}${A0} and so on: 16 bytes doubled ``links`` times (16 GiB at 30 links)."""
    chain = "".join(f"ARG A{n + 1}=${{A{n}}}${{A{n}}}\n" for n in range(links))
    return f"FROM scratch\nARG A0=0123456789abcdef\n{chain}LABEL all=${{A{links}}}\n"


def test_an_arg_doubling_chain_stops_at_the_cap_naming_file_and_line(tmp_path: Path) -> None:
    kubefile = tmp_path / "Kubefile"
    kubefile.write_text(doubling_chain(30))
    assert kubefile.stat().st_size < 900
    # A15 holds 16 * 2**15 = 512 KiB; "A16=" and its 1 MiB value are the first over: line 18.
    result = kubenb("list-images", "-f", str(kubefile), str(tmp_path))
    assert_one_clear_line(result, f"{kubefile}:18:", "more than 1 MiB", "limit of one instruction")


def test_the_cap_holds_for_each_instruction_and_the_whole_kubefile() -> None:
    just_under = "FROM scratch\nARG A=" + "a" * (MAX_INSTRUCTION_BYTES - 32) + "\nLABEL x=$A\n"
    assert expand(parse(just_under)).instructions[-1].args == "x=" + "a" * (MAX_INSTRUCTION_BYTES - 32)
    with pytest.raises(KubefileError, match=r"^Kubefile:3: the instruction expands to more than 1 MiB"):
        expand(parse("FROM scratch\nARG A=" + "a" * 600_000 + "\nLABEL x=$A$A\n"))
    exec_form = 'FROM scratch\nARG A=' + "a" * 600_000 + '\nCOPY ["$A", "$A", "manifests/"]\n'
    with pytest.raises(KubefileError, match=r"^Kubefile:3: .*more than 1 MiB"):
        expand(parse(exec_form))
    many = "FROM scratch\nARG A=" + "a" * 1_000_000 + "\n" + "LABEL x=$A\n" * 17
    with pytest.raises(KubefileError, match=r"^Kubefile:18: the Kubefile expands to more than 16 MiB"):
        expand(parse(many))


def test_a_build_arg_cannot_bypass_the_cap() -> None:
    text = "FROM scratch\nARG A\nLABEL x=${A}${A}\n"
    with pytest.raises(KubefileError, match=r"^Kubefile:3: .*1 MiB"):
        expand(parse(text), {"A": "b" * 700_000})


def test_a_one_megabyte_line_parses_and_expands(tmp_path: Path) -> None:
    word = "w" * 1_000_000
    kubefile = expand(parse(f"FROM scratch\nARG A={word}\nLABEL big=$A\nRUN echo {word}\n"))
    assert kubefile.instructions[2].args == f"big={word}"
    sources = " ".join(f"file{n}" for n in range(100_000))
    (tmp_path / "Kubefile").write_text(f"FROM scratch\nLABEL one={word}\nCOPY {sources} manifests/\n")
    assert len((tmp_path / "Kubefile").read_bytes()) > 1_500_000
    result = kubenb("parse", "-f", str(tmp_path / "Kubefile"), "-o", "json")
    assert result.returncode == 0, result.stderr[-500:]
    assert sources.split()[-1] in result.stdout and word in result.stdout


@pytest.mark.parametrize("text", [
    "", "  ", "a b\tc\r\nd", "'a b' \"c d\"", "a'b'c", "''", "a '' b", '""', r'"a\"b"', r'"a\b"', r'"a\\b"',
    r"a\ b", r"\'", r"'\'", "\"it's\"", "a=\"x y\" b='z'", "\u00a0x y\x0b", "$A ${B:-c d}",
])
def test_words_are_split_as_shlex_splits_them(text: str) -> None:
    assert split_words(text) == tuple(shlex.split(text))


@pytest.mark.parametrize(("text", "message"), [
    ("'open", "no closing quotation"), ('"open', "no closing quotation"), ("end\\", "no escaped character"),
    ('"end\\', "no escaped character"),
])
def test_broken_quoting_is_named_as_shlex_names_it(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        split_words(text)
    with pytest.raises(ValueError, match=message.capitalize()):
        shlex.split(text)


def test_shell_punctuation_splits_as_shlex_does() -> None:
    line = "FOO=1 sudo kubectl apply -f x.yaml&&echo 'a;b'|tee \"c && d\" >out; (helm list)"
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    assert split_words(line, punctuation=True) == tuple(lexer)


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False)


# -- the COPY cache key hashes files as a stream ------------------------------------------------

STEP_KEY = """
import resource, sys
from pathlib import Path
from kubenb.build.lite import _step_key
from kubenb.kubefile import parse
context, rootfs = Path(sys.argv[1]), Path(sys.argv[2])
kubefile = parse("FROM scratch\\nCOPY big.bin manifests/\\n", path=str(context / "Kubefile"))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
key = _step_key("sha256:parent", kubefile.instructions[1], context, kubefile, rootfs)
print(key, before, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def test_the_copy_cache_key_of_a_huge_file_takes_little_memory(tmp_path: Path) -> None:
    """A 1.5 GB COPY source (sparse: no disk used) is hashed in chunks, not read whole."""
    context, rootfs = tmp_path / "context", tmp_path / "rootfs"
    context.mkdir()
    (rootfs / "manifests").mkdir(parents=True)
    size = 1536 * 2**20
    with (context / "big.bin").open("wb") as big:
        big.truncate(size)
    result = subprocess.run([sys.executable, "-c", STEP_KEY, str(context), str(rootfs)],
                            capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    key, before_kib, peak_kib = result.stdout.split()
    assert key.startswith("sha256:")
    assert int(peak_kib) - int(before_kib) < 64 * 1024, f"hashing took {int(peak_kib) - int(before_kib)} KiB"
    assert int(peak_kib) * 1024 < size // 8
