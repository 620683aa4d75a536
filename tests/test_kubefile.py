"""The Kubefile language: lexer, parser, checks, expansion, round trip."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kubenb.errors import KubefileError
from kubenb.kubefile import expand, lex, load, pairs, parse, words
from kubenb.model import Flag, Kubefile

DESIGN_KUBEFILES = Path(__file__).parent / "data" / "kubefiles"


def test_the_three_design_kubefiles_parse() -> None:
    dashboard = parse((DESIGN_KUBEFILES / "dashboard.Kubefile").read_text())
    assert [(i.keyword, i.line) for i in dashboard.instructions] == [("FROM", 1), ("RUN", 3), ("CMD", 5)]
    assert dashboard.base == "registry.cn-qingdao.aliyuncs.com/sealer-io/kubernetes:v1.19.9"
    assert dashboard.instructions[2].args == "kubectl apply -f recommended.yaml"

    config = parse((DESIGN_KUBEFILES / "registry-config.Kubefile").read_text())
    assert words(config.instructions[1]) == ("registry_config.yaml", "etc/registry_config.yaml")

    lite = parse((DESIGN_KUBEFILES / "lite-build.Kubefile").read_text())
    assert [i.keyword for i in lite.instructions] == ["FROM", "COPY", "COPY", "RUN", "RUN", "COPY", "RUN"]
    assert [words(c) for c in lite.of_kind("COPY")] == [
        ("imageList", "manifests"), ("apollo", "charts"), ("recommended.yaml", "manifests"),
    ]
    assert lite.of_kind("RUN")[0].args == "helm install charts/apollo"


def test_line_spans_continuations_and_comments() -> None:
    text = "# header\n\nFROM scratch\nRUN a && \\\n  # inside\n\tb \\\n  c\nCMD x\n"
    kubefile = parse(text)
    run = kubefile.instructions[1]
    assert (run.line, run.end_line) == (4, 7)
    assert run.args == "a && \tb   c"
    assert run.original == "RUN a && \\\n  # inside\n\tb \\\n  c"
    assert (kubefile.instructions[2].line, kubefile.instructions[2].end_line) == (8, 8)


def test_crlf_bom_and_case_insensitive_keywords() -> None:
    kubefile = parse("\ufefffrom scratch\r\nCopy a b\r\nrun echo hi\r\n")
    assert [i.keyword for i in kubefile.instructions] == ["FROM", "COPY", "RUN"]
    assert kubefile.instructions[2].args == "echo hi"
    assert all("\r" not in i.original for i in kubefile.instructions)


def test_exec_form_and_flags() -> None:
    kubefile = parse(
        'FROM --platform=linux/arm64 k8s:v1\nCOPY --chmod=644 ["a b", "dest/"]\nCMD ["kubectl", "apply"]\n'
    )
    from_, copy, cmd = kubefile.instructions
    assert from_.flags == (Flag("platform", "linux/arm64"),)
    assert from_.flag("platform") == "linux/arm64"
    assert copy.args == ("a b", "dest/") and copy.exec_form
    assert cmd.to_dict() == {
        "instruction": "CMD", "args": ["kubectl", "apply"], "flags": {}, "line": 3, "end_line": 3,
        "original": 'CMD ["kubectl", "apply"]',
    }


def test_key_value_instructions() -> None:
    kubefile = parse('ARG VERSION\nARG CHANNEL=stable\nFROM k8s:v1\nENV A=1 B="two words"\n'
                     'ENV LEGACY value with spaces\nLABEL "org.example/team"="ops team" tier=infra\n')
    assert pairs(kubefile.instructions[0]) == (("VERSION", None),)
    assert pairs(kubefile.instructions[1]) == (("CHANNEL", "stable"),)
    assert pairs(kubefile.instructions[3]) == (("A", "1"), ("B", "two words"))
    assert pairs(kubefile.instructions[4]) == (("LEGACY", "value with spaces"),)
    assert pairs(kubefile.instructions[5]) == (("org.example/team", "ops team"), ("tier", "infra"))


@pytest.mark.parametrize(
    ("text", "build_args", "expected_base"),
    [
        ("ARG V=1.19\nFROM k8s:v${V}\n", {}, "k8s:v1.19"),
        ("ARG V=1.19\nFROM k8s:v$V\n", {"V": "1.20"}, "k8s:v1.20"),
        ("ARG V\nFROM k8s:${V:-1.21}\n", {}, "k8s:1.21"),
        ("ARG V\nFROM k8s${V:+-custom}\n", {"V": "x"}, "k8s-custom"),
        ("ARG V\nFROM k8s${V:+-custom}\n", {}, "k8s"),
        ("ARG R=reg.local\nARG IMG=${R}/k8s\nFROM $IMG:1\n", {}, "reg.local/k8s:1"),
        ("FROM k8s\\$V\n", {}, "k8s$V"),
    ],
)
def test_variable_expansion(text: str, build_args: dict[str, str], expected_base: str) -> None:
    assert expand(parse(text), build_args).base == expected_base


def test_env_is_expanded_in_copy_but_run_is_left_to_the_shell() -> None:
    kubefile = expand(parse("FROM scratch\nENV DIR=charts\nCOPY app $DIR/\nRUN echo $DIR\n"))
    assert words(kubefile.instructions[2]) == ("app", "charts/")
    assert kubefile.instructions[3].args == "echo $DIR"
    assert kubefile.instructions[2].original == "COPY app $DIR/"


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("FROM scratch\nFORM x\n", 2, "unknown instruction FORM, did you mean FROM?"),
        ("FROM scratch\nCOPPY a b\n", 2, "did you mean COPY?"),
        ("FROM scratch\nXYZZY a\n", 2, "unknown instruction XYZZY"),
        ("FROM scratch\nADD a b\n", 2, "ADD is a Dockerfile instruction"),
        ("# nothing\n\n", 1, "no FROM instruction"),
        ("ARG A=1\nCOPY a b\nFROM x\n", 2, "the first instruction must be FROM"),
        ("FROM a\nFROM b\n", 2, "one FROM"),
        ("FROM scratch\nCOPY onlyone\n", 2, "COPY needs at least one source and a destination"),
        ("FROM scratch\nCOPY [\"a\"]\n", 2, "COPY needs at least one source"),
        ('FROM scratch\nCMD ["kubectl", apply]\n', 2, "broken JSON form"),
        ("FROM scratch\nRUN [1, 2]\n", 2, "broken JSON form"),
        ("FROM scratch\nRUN a \\\n", 2, "continuation"),
        ("FROM scratch\nRUN a \\\n\nCMD b\n", 2, "continuation"),
        ("ARG V\nFROM k8s:${V:?set the version}\n", 2, "variable V is not set: set the version"),
        ("FROM k8s:${V\n", 1, "bad variable substitution"),
        ("FROM a b\n", 1, "FROM takes exactly one image"),
        ("FROM\n", 1, "FROM needs arguments"),
        ("FROM scratch\nRUN\n", 2, "RUN needs arguments"),
        ("FROM --plat=x a\n", 1, "does not accept the flag"),
        ("FROM scratch\nCOPY 'a b\n", 2, "no closing quotation"),
        ("FROM scratch\nLABEL novalue\n", 2, "LABEL expects KEY=VALUE"),
        ("FROM scratch\nENV 1X=a\n", 2, "not a valid variable name"),
    ],
)
def test_bad_kubefiles_name_their_line(text: str, line: int, fragment: str) -> None:
    with pytest.raises(KubefileError) as caught:
        expand(parse(text, path="ctx/Kubefile"))
    assert caught.value.line == line
    assert str(caught.value).startswith(f"ctx/Kubefile:{line}: ")
    assert fragment in str(caught.value)
    assert "\n" not in str(caught.value)


def test_round_trip_of_the_design_kubefiles_and_tricky_text() -> None:
    texts = [p.read_text() for p in sorted(DESIGN_KUBEFILES.glob("*.Kubefile"))]
    texts.append('ARG A=1\nfrom --platform=linux/amd64 x:${A}\nRUN a \\\n b\nCMD ["x", "y z"]\n'
                 'LABEL "a b"=c\nENV K V W\nCOPY --chown=1:1 a b/\n')
    for text in texts:
        first = parse(text)
        again = parse(first.to_text())
        assert [(i.keyword, i.args, i.flags) for i in again.instructions] == [
            (i.keyword, i.args, i.flags) for i in first.instructions
        ]


def test_load_reads_files_and_reports_encoding_problems(tmp_path: Path) -> None:
    good = tmp_path / "Kubefile"
    good.write_text("ARG T=v1\nFROM k8s:$T\n")
    assert load(good, {"T": "v2"}).base == "k8s:v2"
    bad = tmp_path / "Latin1.Kubefile"
    bad.write_bytes(b"FROM scratch\nLABEL a=\xe9\n")
    with pytest.raises(KubefileError, match=r"Latin1.Kubefile:2: the Kubefile is not UTF-8"):
        load(bad)
    with pytest.raises(KubefileError, match="cannot read the Kubefile"):
        load(tmp_path / "missing")


def test_lexer_keeps_original_lines_for_errors() -> None:
    [logical] = lex("  RUN a \\\n   b\n")
    assert (logical.line, logical.end_line, logical.original) == (1, 2, "  RUN a \\\n   b")


@settings(max_examples=2000, deadline=None)
@given(st.text())
def test_arbitrary_text_raises_only_kubefile_errors(text: str) -> None:
    try:
        expand(parse(text))
    except KubefileError as error:
        assert error.line is not None and error.line >= 1


_KEYWORD_LINES = st.sampled_from(["FROM", "COPY", "RUN", "CMD", "ARG", "ENV", "LABEL", "from", "#", ""])
_LINE_TEXT = st.text(alphabet=st.sampled_from(list('ab $\\{}[]"=:-#\t/.')), max_size=12)


@settings(max_examples=2000, deadline=None)
@given(st.lists(st.tuples(_KEYWORD_LINES, _LINE_TEXT), max_size=8))
def test_kubefile_like_text_raises_only_kubefile_errors_and_round_trips(
    lines: list[tuple[str, str]],
) -> None:
    text = "FROM scratch\n" + "".join(f"{k} {t}\n" for k, t in lines)
    try:
        first = parse(text)
    except KubefileError:
        return
    again = parse(first.to_text())

    def meaning(kubefile: Kubefile) -> str:
        return json.dumps([(i.keyword, i.args, [str(f) for f in i.flags]) for i in kubefile.instructions])

    assert meaning(again) == meaning(first)
