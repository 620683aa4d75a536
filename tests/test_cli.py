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


@pytest.mark.parametrize("builder", ["container", "cloud"])
def test_builders_that_cannot_run_here_say_what_they_need(tmp_path: Path, builder: str) -> None:
    (tmp_path / "Kubefile").write_text("FROM scratch\n")
    result = kubenb_cli("--root", str(tmp_path / "store"), "build", "-b", builder, "-t", "x:y", str(tmp_path))
    assert result.returncode == 1
    assert result.stderr.startswith(f"kubenb: the {builder} builder is not available: it needs ")
    assert "-b lite" in result.stderr


LIST_CONTEXT_MANIFEST = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  template:
    spec:
      containers:
      - name: web
        image: nginx:1.25
      - name: bad
        image: foo/-bar
---
kind: ConfigMap
metadata: {name: cfg}
data: {SIDECAR: "quay.io/x/sidecar:1"}
"""


def _list_context(tmp_path: Path) -> Path:
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "app.yaml").write_text(LIST_CONTEXT_MANIFEST)
    (tmp_path / "manifests" / "imageList").write_text("redis:7\n")
    return tmp_path


def test_list_images_json_follows_the_contract(tmp_path: Path) -> None:
    result = kubenb_cli("list-images", str(_list_context(tmp_path)), "-o", "json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert [i["image"] for i in data["images"]] == ["docker.io/library/nginx:1.25", "docker.io/library/redis:7"]
    nginx = data["images"][0]
    assert nginx["written"] == "nginx:1.25"
    assert nginx["found_in"] == [{
        "source": "manifest", "file": "manifests/app.yaml", "line": 9,
        "path": "spec.template.spec.containers[0].image", "object": "Deployment/web", "chart": None,
        "reason": None,
    }]
    assert [p["image"] for p in data["potential"]] == ["quay.io/x/sidecar:1"]
    assert data["potential"][0]["found_in"][0]["reason"] == "ConfigMap SIDECAR"
    assert data["test"] == []
    assert [(i["written"], i["found_in"][0]["line"]) for i in data["invalid"]] == [("foo/-bar", 11)]
    assert "manifests/app.yaml:11" in result.stderr and "invalid image reference 'foo/-bar'" in result.stderr


def test_list_images_plain_csv_table_and_why(tmp_path: Path) -> None:
    context = str(_list_context(tmp_path))
    plain = kubenb_cli("list-images", context, "-o", "plain")
    assert plain.stdout == "docker.io/library/nginx:1.25\ndocker.io/library/redis:7\n"
    csv_out = kubenb_cli("list-images", context, "-o", "csv").stdout.splitlines()
    assert csv_out[0].startswith("image,registry,repository,tag,digest,kind,source,file,line")
    assert len(csv_out) == 1 + 3
    table = kubenb_cli("list-images", context).stdout
    assert "docker.io/library/redis:7" in table and "manifests/imageList:1" in table
    assert "Potential images" in table and "quay.io/x/sidecar:1" in table
    assert "ConfigMap/cfg data.SIDECAR [ConfigMap SIDECAR]" in table  # why it is listed
    assert "reason" in csv_out[0].split(",")
    why_potential = kubenb_cli("list-images", context, "--why", "quay.io/x/sidecar:1")
    assert why_potential.stdout.endswith("ConfigMap/cfg data.SIDECAR [ConfigMap SIDECAR]\n")
    why = kubenb_cli("list-images", context, "--why", "redis:7")
    assert why.returncode == 0
    assert why.stdout == "imageList: manifests/imageList:1\n"
    missing = kubenb_cli("list-images", context, "--why", "postgres")
    assert missing.returncode == 1
    assert missing.stderr.splitlines()[-1] == (
        "kubenb: postgres is not in the image list; run kubenb list-images to see the list"
    )


def test_list_images_broken_yaml_exits_naming_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "broken.yaml").write_text("kind: Pod\nspec:\n  containers:\n  - image: a\n   b: c\n")
    result = kubenb_cli("list-images", str(tmp_path))
    assert result.returncode == 1
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith("kubenb: manifests/broken.yaml:5: ")


def test_list_images_chart_options(tmp_path: Path) -> None:
    chart = tmp_path / "charts" / "web"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: web\nversion: 0.1.0\n")
    (chart / "values.yaml").write_text("tag: '1.0'\nregistry: docker.io\n")
    (chart / "templates" / "pod.yaml").write_text(
        "kind: Pod\nmetadata: {name: x}\nspec:\n  containers:\n"
        "  - image: {{ .Values.registry }}/web/app:{{ .Values.tag }}\n"
    )
    values = tmp_path / "prod.yaml"
    values.write_text("registry: quay.io\n")
    result = kubenb_cli(
        "list-images", str(tmp_path), "-o", "plain", "--values", f"web={values}", "--set", "web:tag=2.0"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "quay.io/web/app:2.0\n"
    bad = kubenb_cli("list-images", str(tmp_path), "--set", "tag=2.0")
    assert bad.returncode == 2
    assert "expected CHART:key=value" in bad.stderr


def test_a_reader_that_stops_early_gets_no_traceback(tmp_path: Path) -> None:
    """`kubenb inspect NAME | head -1`: the reader closes the pipe before kubenb writes."""
    (tmp_path / "Kubefile").write_text("FROM scratch\n")
    root = str(tmp_path / "store")
    assert kubenb_cli("--root", root, "build", "-t", "a:1", str(tmp_path)).returncode == 0
    with subprocess.Popen([sys.executable, "-m", "kubenb", "--root", root, "inspect", "a:1"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE) as process:
        assert process.stdout is not None and process.stderr is not None
        process.stdout.close()  # as `head` does once it has its lines
        errors = process.stderr.read().decode()
    assert "Traceback" not in errors and "BrokenPipeError" not in errors, errors
    assert process.returncode == 141
