"""The command line as a user runs it: a real process, its exit status, stdout and stderr."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import kubenb

DESIGN_KUBEFILES = Path(__file__).parent / "data" / "kubefiles"


def kubenb_cli(
    *args: str, cwd: Path | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kubenb", *args], cwd=cwd, input=stdin, capture_output=True, text=True,
        timeout=60, check=False,
    )


def test_console_script_reports_the_version() -> None:
    script = shutil.which("kubenb", path=str(Path(sys.executable).parent))
    assert script is not None, "the kubenb console script is not installed in this environment"
    result = subprocess.run([script, "--version"], capture_output=True, text=True, check=False)
    assert result.returncode == 0
    assert result.stdout.strip() == f"kubenb {kubenb.__version__}"


def test_parse_prints_json_of_the_lite_build_kubefile() -> None:
    result = kubenb_cli("parse", "-f", str(DESIGN_KUBEFILES / "lite-build.Kubefile"), "-o", "json")
    assert result.returncode == 0, result.stderr
    instructions = json.loads(result.stdout)
    assert [i["instruction"] for i in instructions] == ["FROM", "COPY", "COPY", "RUN", "RUN", "COPY", "RUN"]
    assert instructions[1] == {
        "instruction": "COPY", "args": "imageList manifests", "flags": {}, "line": 2, "end_line": 2,
        "original": "COPY imageList manifests",
    }


def test_parse_text_output_and_default_file(tmp_path: Path) -> None:
    (tmp_path / "Kubefile").write_text("ARG V=1\nFROM k8s:v${V}\nRUN echo \\\n  hi\n")
    result = kubenb_cli("parse", "--build-arg", "V=2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["   1  ARG V=1", "   2  FROM k8s:v2", "   3  RUN echo   hi"]


def test_parse_reads_standard_input_and_warns_of_unused_build_args() -> None:
    result = kubenb_cli("parse", "-f", "-", "--build-arg", "TYPO=1", stdin="FROM scratch\n")
    assert result.returncode == 0
    assert result.stdout.strip() == "1  FROM scratch"
    assert "TYPO is not declared by any ARG" in result.stderr


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("FROM scratch\nFORM x\n", 2),
        ("# no from\nCOPY a b\n", 2),
        ("FROM scratch\n\nCOPY imageList\n", 3),
        ('FROM scratch\nCMD ["kubectl", "apply"\n', 2),
        ("FROM scratch\nRUN echo \\\n", 2),
        ("ARG V\nFROM scratch\nCOPY a ${V:?}\n", 3),
    ],
    ids=["unknown-keyword", "no-from", "copy-one-arg", "broken-json", "continuation-at-eof", "unset-var"],
)
def test_bad_kubefiles_exit_non_zero_with_one_line(tmp_path: Path, text: str, line: int) -> None:
    (tmp_path / "Kubefile").write_text(text)
    result = kubenb_cli("parse", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith(f"kubenb: Kubefile:{line}: ")
    assert "Traceback" not in result.stderr


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    (tmp_path / "Kubefile").write_text("FORM x\n")
    result = kubenb_cli("parse", "--debug", cwd=tmp_path)
    assert result.returncode == 1
    assert "Traceback" in result.stderr
    assert result.stderr.rstrip().endswith("kubenb: Kubefile:1: unknown instruction FORM, did you mean FROM?")


def test_missing_kubefile_and_bad_usage_are_one_line(tmp_path: Path) -> None:
    missing = kubenb_cli("parse", cwd=tmp_path)
    assert missing.returncode == 1
    assert missing.stderr.splitlines() == [
        "kubenb: Kubefile: cannot read the Kubefile: No such file or directory; "
        "give its path with -f, or run in the folder that holds it"
    ]
    usage = kubenb_cli("parse", "-o", "yaml")
    assert usage.returncode == 2
    assert len(usage.stderr.splitlines()) == 1
    assert "invalid choice: 'yaml'" in usage.stderr


def test_only_working_commands_are_offered() -> None:
    result = kubenb_cli("build", "-t", "x:y")
    assert result.returncode == 2
    assert "invalid choice: 'build'" in result.stderr
