"""Limits that keep hostile or huge input from holding a build: Kubefile expansion and words,
the COPY cache key's memory, and a registry that trickles bytes (docs/reliability.md, "Limits").

No test here asserts a duration: speed is measured in bench/kubefile_parse.py. A subprocess
timeout is only a safety net against a hang (the code these tests replaced never finished).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubenb.errors import KubefileError, RegistryError
from kubenb.kubefile import expand, parse
from kubenb.kubefile.expand import MAX_INSTRUCTION_BYTES
from kubenb.kubefile.parser import split_words
from kubenb.registry import Registries, RegistryClient, SpeedLimit
from kubenb.registry.deadline import Watch
from tests.support.events import Recorder
from tests.support.faulty import Fault, FaultyProxy, Trickle, TrickleHead
from tests.support.oci import make_image, make_layer, push, single_image
from tests.support.registry import Registry
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


# -- the COPY cache key hashes files as a stream ------------------------------------------------

STEP_KEY = """
import sys
from pathlib import Path
from kubenb.builders.fingerprints import Fingerprints
from kubenb.builders.lite import _step_key
from kubenb.kubefile import plan_build
context = Path(sys.argv[1])
plan = plan_build(context)  # its Kubefile: FROM scratch, COPY big.bin manifests/
copy = plan.require_kubefile().instructions[1]
def peak_kib():  # VmHWM starts anew at exec; ru_maxrss would keep the forking parent's peak
    status = Path("/proc/self/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")))
before = peak_kib()
key = _step_key("sha256:parent", copy, plan.copy_step(copy).files(lambda target: True), Fingerprints())
print(key, before, peak_kib())
"""


def test_the_copy_cache_key_of_a_huge_file_takes_little_memory(tmp_path: Path) -> None:
    """A 1.5 GB COPY source (sparse: no disk used) is hashed in chunks, not read whole."""
    context = tmp_path / "context"
    context.mkdir()
    (context / "Kubefile").write_text("FROM scratch\nCOPY big.bin manifests/\n")
    size = 1536 * 2**20
    with (context / "big.bin").open("wb") as big:
        big.truncate(size)
    result = subprocess.run([sys.executable, "-c", STEP_KEY, str(context)],
                            capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    key, before_kib, peak_kib = result.stdout.split()
    assert key.startswith("sha256:")
    assert int(peak_kib) - int(before_kib) < 64 * 1024, f"hashing took {int(peak_kib) - int(before_kib)} KiB"
    assert int(peak_kib) * 1024 < size // 8


# -- a registry that trickles: every request has an overall deadline ---------------------------



#: Small enough that a test trickle trips it within seconds (3 s for anything, plus 1 s per kB),
#: large enough that the untrickled retry of a tiny blob or manifest passes on a loaded machine.
TIGHT = SpeedLimit(min_speed=1000, floor=3)


@pytest.fixture
def front(registry: Registry) -> Iterator[FaultyProxy]:
    with FaultyProxy(registry.url) as proxy:
        yield proxy


def test_a_trickled_blob_is_given_up_as_too_slow_and_fetched_again(
    front: FaultyProxy, registry: Registry, repo_name: str, tmp_path: Path,
) -> None:
    """One byte every 50 ms: the read timeout (30 s) never fires, the deadline (about 5 s) does."""
    layer = make_layer({"data/blob": bytes(range(256)) * 8})
    image = make_image([layer])
    push(registry, repo_name, "v1", image)
    front.add(Fault(f"/blobs/{layer.digest}", Trickle(pieces=len(layer.data), pause=0.05)))
    events = Recorder()
    with RegistryClient(front.host, events=events, speed_limit=TIGHT) as client:
        client.download_blob(repo_name, layer.digest, tmp_path / "blob", expected_size=len(layer.data))
    assert (tmp_path / "blob").read_bytes() == layer.data
    (retry,) = events.retries
    assert "too slowly" in retry.reason and "1000 bytes/s after the first 3 s" in retry.reason
    assert len(front.requests_to(f"/blobs/{layer.digest}")) == 2


def test_trickled_headers_are_given_up_too(front: FaultyProxy, registry: Registry, repo_name: str) -> None:
    image = single_image("head")
    push(registry, repo_name, "v1", image)
    front.add(Fault("/manifests/v1", TrickleHead(pause=0.2)))
    events = Recorder()
    # headers cut mid-way read as a complete answer with an empty body: still reported as too slow
    with RegistryClient(front.host, events=events, speed_limit=TIGHT) as client:
        assert client.get_manifest(repo_name, "v1").digest == image.digest
    assert [r.reason.split(" (")[0] for r in events.retries] == [
        f"registry {front.host} sent manifest {repo_name}:v1 too slowly"]


def test_a_registry_that_always_trickles_fails_with_one_clear_line(
    front: FaultyProxy, registry: Registry, repo_name: str, tmp_path: Path,
) -> None:
    image = single_image("always-slow")
    push(registry, repo_name, "v1", image)
    front.add(Fault("/blobs/", Trickle(pieces=10_000, pause=0.05), times=1000))
    environment = {**os.environ, "KUBENB_MIN_SPEED": "1000", "KUBENB_DEADLINE_FLOOR": "0.3"}
    result = subprocess.run(
        [sys.executable, "-m", "kubenb", "--root", str(tmp_path / "store"), "save-images", "-o",
         str(tmp_path / "out"), f"{front.host}/{repo_name}:v1"],
        capture_output=True, text=True, timeout=300, check=False, env=environment,
    )
    assert_one_clear_line(result, "too slowly", "1000 bytes/s after the first 0.3 s", "KUBENB_MIN_SPEED")
    assert len(front.requests_to("/blobs/")) >= 6  # the first try and five retries, each cut short


def test_the_minimum_speed_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBENB_MIN_SPEED", "2048")
    monkeypatch.setenv("KUBENB_DEADLINE_FLOOR", "5")
    assert Registries().speed_limit == SpeedLimit(2048, 5)
    assert Registries(min_speed=0).speed_limit == SpeedLimit(0, 5)
    monkeypatch.setenv("KUBENB_MIN_SPEED", "fast")
    with pytest.raises(RegistryError, match="KUBENB_MIN_SPEED='fast' is not a number"):
        Registries()


def test_the_deadline_counts_the_body_at_the_minimum_speed() -> None:
    """With an injected clock: the floor, then the announced size (or what came) at min_speed."""
    now = [100.0]
    watch = Watch(SpeedLimit(min_speed=1000, floor=2), clock=lambda: now[0])
    assert watch.deadline() == 102.0
    watch.expect(5000)
    assert watch.deadline() == 107.0
    watch.received = 8000  # a server that sends more than it announced gets the time for it
    assert watch.deadline() == 110.0
