"""The command line as a user runs it: a real process, its exit status, stdout and stderr."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tarfile
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


def test_a_cloud_build_without_a_machine_says_what_it_needs(tmp_path: Path) -> None:
    """Every builder runs now (-b container: tests/test_container_build.py, -b cloud:
    tests/test_cloud_build.py); -b cloud without a machine says how to name one."""
    (tmp_path / "Kubefile").write_text("FROM scratch\n")
    result = kubenb_cli("--root", str(tmp_path / "store"), "build", "-b", "cloud", "-t", "x:y", str(tmp_path))
    assert result.returncode == 1
    assert result.stderr.startswith("kubenb: -b cloud needs a machine: --host ssh://user@host[:port], or --cloud ")
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
    assert why.stdout == "image (imageList): manifests/imageList:1\n"
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


def _cilium_archive(tmp_path: Path, chart_yaml: str = "") -> Path:
    """A context whose chart is `cilium-1.20.0.tgz`: a real archive, as `helm package` makes
    it, whose file stem is not the chart's name."""
    folder = tmp_path / "src" / "cilium"
    (folder / "templates").mkdir(parents=True)
    (folder / "Chart.yaml").write_text(f"apiVersion: v2\nname: cilium\nversion: 1.20.0\n{chart_yaml}")
    (folder / "values.yaml").write_text("image:\n  repository: quay.io/cilium/cilium\n  useDigest: true\n"
                                        "  tag: v1.20.0\n  digest: sha256:" + "a" * 64 + "\n")
    (folder / "templates" / "ds.yaml").write_text(
        "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: cilium}\nspec:\n  template:\n    spec:\n"
        "      containers:\n      - name: agent\n        image: {{ .Values.image.repository }}:{{ .Values.image.tag }}"
        "{{ if .Values.image.useDigest }}@{{ .Values.image.digest }}{{ end }}\n"
    )
    context = tmp_path / "context"
    (context / "charts").mkdir(parents=True)
    with tarfile.open(context / "charts" / "cilium-1.20.0.tgz", "w:gz") as archive:
        archive.add(folder, arcname="cilium")
    return context


def test_set_and_values_reach_an_archive_by_its_chart_name(tmp_path: Path) -> None:
    """`--set cilium:...` on `cilium-1.20.0.tgz` was silently ignored: the digest stayed."""
    context = _cilium_archive(tmp_path)
    values = tmp_path / "tag.yaml"
    values.write_text("image: {tag: v1.20.1}\n")
    result = kubenb_cli("list-images", str(context), "-o", "plain", "--set", "cilium:image.useDigest=false",
                        "--values", f"cilium={values}")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "quay.io/cilium/cilium:v1.20.1\n"
    by_stem = kubenb_cli("list-images", str(context), "-o", "plain", "--set", "cilium-1.20.0:image.useDigest=false")
    assert by_stem.stdout == "quay.io/cilium/cilium:v1.20.0\n"


@pytest.mark.parametrize(("option", "expected"), [
    (["--set", "cilum:image.useDigest=false"], "kubenb: --set cilum: no chart named cilum; the charts are: cilium"),
    (["--values", "web=/tmp/x.yaml"], "kubenb: --values web: no chart named web; the charts are: cilium"),
    (["--values", "cilium=/nonexistent.yaml"],
     "kubenb: /nonexistent.yaml: values file does not exist; give an existing file: --values cilium=FILE"),
])
def test_a_chart_option_that_reaches_no_chart_is_one_clear_line(tmp_path: Path, option: list[str],
                                                                 expected: str) -> None:
    result = kubenb_cli("list-images", str(_cilium_archive(tmp_path)), *option)
    assert (result.returncode, result.stdout, result.stderr) == (1, "", expected + "\n")


def test_a_chart_option_in_a_context_without_charts_is_an_error(tmp_path: Path) -> None:
    result = kubenb_cli("list-images", str(_list_context(tmp_path)), "--set", "web:tag=2")
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == "kubenb: --set web: no chart named web; the context has no chart under charts/\n"


def test_kube_version_outside_the_charts_constraint_is_one_clear_line(tmp_path: Path) -> None:
    context = _cilium_archive(tmp_path, "kubeVersion: '>= 1.30.0-0'\n")
    result = kubenb_cli("list-images", str(context), "--kube-version", "1.29.0")
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        f"kubenb: {context / 'charts' / 'cilium-1.20.0.tgz'}: chart cilium-1.20.0 requires kubeVersion: >= 1.30.0-0 "
        "which is incompatible with Kubernetes v1.29.0; give a --kube-version the chart supports, or use a version "
        "of the chart made for this Kubernetes\n"
    )
    assert kubenb_cli("list-images", str(context), "--kube-version", "1.30.0").returncode == 0


def test_helms_own_log_lines_are_kubenb_warnings(tmp_path: Path) -> None:
    """Helm's engine logs `2026/12/03 13:05:20 warning: destination for ...` on descriptor 2;
    the user sees one kubenb warning, and the JSON has it in `warnings`."""
    context = _cilium_archive(tmp_path)
    result = kubenb_cli("list-images", str(context), "-o", "json", "--set", "cilium:image.useDigest.x=1")
    assert result.returncode == 0, result.stderr
    message = ("chart cilium-1.20.0: Helm warning: destination for cilium.image.useDigest is a table. "
               "Ignoring non-table value (true)")
    assert result.stderr == f"kubenb: warning: {message}\n"
    assert json.loads(result.stdout)["warnings"] == [message]


def test_why_says_what_each_place_is(tmp_path: Path) -> None:
    """`--why` names the kind of each place, and finds an excluded image too."""
    context = _list_context(tmp_path)
    (context / ".kubenb").mkdir()
    (context / ".kubenb" / "exclude").write_text("redis:7\n")
    why = kubenb_cli("list-images", str(context), "--why", "docker.io/library/redis:7")
    assert why.stdout == "excluded (imageList): manifests/imageList:1\n"
    potential = kubenb_cli("list-images", str(context), "--why", "quay.io/x/sidecar:1")
    assert potential.stdout == ("potential (manifest): manifests/app.yaml:15 ConfigMap/cfg data.SIDECAR"
                                " [ConfigMap SIDECAR]\n")
    invalid = kubenb_cli("list-images", str(context), "--why", "foo/-bar")
    assert invalid.stdout == ("invalid (manifest): manifests/app.yaml:11 Deployment/web "
                              "spec.template.spec.containers[1].image\n")


def test_excluded_images_have_their_own_heading_in_the_text_outputs(tmp_path: Path) -> None:
    context = _list_context(tmp_path)
    (context / ".kubenb").mkdir()
    (context / ".kubenb" / "exclude").write_text("redis:7\n")
    plain = kubenb_cli("list-images", str(context), "-o", "plain")
    assert plain.stdout == ("docker.io/library/nginx:1.25\n"
                            "# Left out by the review (.kubenb/exclude; not carried)\n# docker.io/library/redis:7\n")
    table = kubenb_cli("list-images", str(context)).stdout
    carried, excluded = table.split("Left out by the review (.kubenb/exclude; not carried):\n")
    assert "redis" not in carried.split("Potential images")[0]
    assert excluded.splitlines()[1].split() == ["docker.io/library/redis:7", "imageList", "manifests/imageList:1"]


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
