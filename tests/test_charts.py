"""Charts rendered by the real Helm engine (kubenb.discover.charts).

Small charts under tests/data/charts exercise one behaviour each; the real-world corpus in
tests/corpus/charts must all render. The cli backend runs a fake ``helm`` put on PATH,
since only our argument building and output splitting are ours to test.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tarfile
import textwrap
import threading
from pathlib import Path

import helm_python
import pytest
import yaml

from kubenb.discover.charts import ChartSource, RenderedTemplate, chart_options, find_charts, render_chart
from kubenb.discover.helm_log import helm_log_lines
from kubenb.discover.kube_versions import ConstraintError, admits
from kubenb.errors import DiscoveryError
from tests.support.corpus import CORPUS

DATA = Path(__file__).resolve().parent / "data" / "charts"


def source(name: str, values_file: Path | None = None) -> ChartSource:
    return ChartSource(name, DATA / name, values_file)


def by_template(rendered: list[RenderedTemplate]) -> dict[str, str]:
    return {r.template: r.text for r in rendered}


def documents(rendered: list[RenderedTemplate], template: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(by_template(rendered)[template]) if d]


def configmap_data(rendered: list[RenderedTemplate]) -> dict[str, str]:
    (text,) = (r.text for r in rendered)
    return yaml.safe_load(text)["data"]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def make_tgz(folder: Path, archive: Path) -> Path:
    """A chart archive the way `helm package` lays it out: <chart>/... at the top."""
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    return archive


def broken_chart(tmp_path: Path, template: str, files: dict[str, str] | None = None) -> ChartSource:
    """A one-template chart named `broken` written in tmp_path (broken charts stay out of data/)."""
    folder = tmp_path / "broken"
    write(folder / "Chart.yaml", "apiVersion: v2\nname: broken\nversion: 0.1.0\n")
    write(folder / "templates" / "cm.yaml", template)
    for name, text in (files or {}).items():
        write(folder / name, text)
    return ChartSource("broken", folder, None)


# --- find_charts -------------------------------------------------------------------------


def test_find_charts_takes_folders_with_chart_yaml_and_archives(tmp_path):
    charts = tmp_path / "charts"
    shutil.copytree(DATA / "novalues", charts / "web")
    make_tgz(DATA / "required", charts / "db-0.1.0.tgz")
    (charts / "not-a-chart").mkdir()
    write(charts / "not-a-chart" / "values.yaml", "a: 1\n")
    write(charts / "web.values.yaml", "image: x\n")
    write(charts / "orphan.values.yaml", "a: 1\n")
    write(charts / "README.md", "hello\n")

    assert find_charts(charts) == [
        ChartSource("db-0.1.0", charts / "db-0.1.0.tgz", None, "required"),
        ChartSource("web", charts / "web", charts / "web.values.yaml", "novalues"),
    ]


def test_a_chart_is_named_by_its_chart_yaml_and_by_its_file_stem(tmp_path):
    """`cilium-1.20.0.tgz` is the chart `cilium`: options and values files may use either name."""
    charts = tmp_path / "charts"
    charts.mkdir()
    make_tgz(DATA / "required", charts / "db-0.1.0.tgz")
    write(charts / "required.values.yaml", "a: 1\n")
    (db,) = find_charts(charts)
    assert (db.name, db.chart_name, db.names) == ("db-0.1.0", "required", ("required", "db-0.1.0"))
    assert db.values_file == charts / "required.values.yaml"
    values = tmp_path / "more.yaml"
    write(values, "a: 2\n")
    options = chart_options([db], {"required": (values,)}, {"db-0.1.0": ("a=3",), "required": ("b=4",)})
    assert options == {"db-0.1.0": ((values,), ("b=4", "a=3"))}


@pytest.mark.parametrize(("option", "values", "set_values"), [
    ("--set cilium", {}, {"cilium": ("image.useDigest=false",)}),
    ("--values cilium", {"cilium": (Path("/nonexistent.yaml"),)}, {}),
])
def test_an_option_that_names_no_chart_is_an_error_listing_the_charts(tmp_path, option, values, set_values):
    charts = tmp_path / "charts"
    charts.mkdir()
    make_tgz(DATA / "required", charts / "db-0.1.0.tgz")
    shutil.copytree(DATA / "novalues", charts / "web")
    with pytest.raises(DiscoveryError) as raised:
        chart_options(find_charts(charts), values, set_values)
    assert str(raised.value) == f"{option}: no chart named cilium; the charts are: novalues, required"


def test_a_values_file_that_does_not_exist_is_an_error_naming_it(tmp_path):
    charts = tmp_path / "charts"
    charts.mkdir()
    make_tgz(DATA / "required", charts / "db-0.1.0.tgz")
    with pytest.raises(DiscoveryError) as raised:
        chart_options(find_charts(charts), {"required": (tmp_path / "nope.yaml",)}, {})
    assert str(raised.value) == (f"{tmp_path / 'nope.yaml'}: values file does not exist; "
                                 "give an existing file: --values required=FILE")


def test_find_charts_without_charts_folder_is_empty(tmp_path):
    assert find_charts(tmp_path / "charts") == []


def test_find_charts_rejects_a_folder_and_an_archive_of_one_name(tmp_path):
    charts = tmp_path / "charts"
    shutil.copytree(DATA / "novalues", charts / "web")
    make_tgz(DATA / "novalues", charts / "web.tgz")
    with pytest.raises(DiscoveryError, match=r"two charts are named web: web and web\.tgz"):
        find_charts(charts)


# --- subcharts, aliases, what is left out --------------------------------------------------


def test_subchart_disabled_by_its_condition_is_absent():
    templates = by_template(render_chart(source("parent")))
    assert not [t for t in templates if t.startswith("parent/charts/sub/")]


def test_subchart_condition_can_be_turned_on_by_set():
    rendered = render_chart(source("parent"), set_values=["sub.enabled=true"])
    (deployment,) = documents(rendered, "parent/charts/sub/templates/deployment.yaml")
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.example/sub:1.0"


def test_aliased_subchart_takes_the_parent_values_under_its_alias():
    rendered = render_chart(source("parent"))
    (deployment,) = documents(rendered, "parent/charts/aliased/templates/deployment.yaml")
    assert deployment["metadata"]["name"] == "release-aliased"
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.example/aliased:2.0"


def test_notes_partials_and_empty_templates_are_left_out_hooks_kept():
    rendered = render_chart(source("parent"))
    assert sorted(by_template(rendered)) == [
        "parent/charts/aliased/templates/deployment.yaml",
        "parent/templates/deployment.yaml",
        "parent/templates/multi.yaml",
        "parent/templates/tests/test-connection.yaml",
    ]
    assert all(r.chart == "parent" for r in rendered)
    assert "registry.example/parent:1.0" in by_template(rendered)["parent/templates/deployment.yaml"]


def test_release_name_and_namespace():
    (deployment,) = documents(render_chart(source("parent")), "parent/templates/deployment.yaml")
    assert deployment["metadata"] == {"name": "release-parent", "namespace": "default"}


def test_chart_without_values_yaml_renders_and_drops_empty_templates():
    rendered = render_chart(source("novalues"))
    assert [r.template for r in rendered] == ["novalues/templates/pod.yaml"]
    (pod,) = documents(rendered, "novalues/templates/pod.yaml")
    assert pod["spec"]["containers"][0]["image"] == "registry.example/novalues:1.0"


def test_tgz_chart(tmp_path):
    archive = make_tgz(DATA / "parent", tmp_path / "parent-1.0.0.tgz")
    (found,) = find_charts(tmp_path)
    assert found == ChartSource("parent-1.0.0", archive, None, "parent")
    assert by_template(render_chart(found)) == by_template(render_chart(source("parent")))


# --- values ------------------------------------------------------------------------------


def test_values_precedence_default_file_values_files_set(tmp_path):
    values_file = write(
        tmp_path / "precedence.values.yaml", "b: file\nc: file\nd: file\nnested: {over: file}\n"
    )
    extra = write(tmp_path / "extra.yaml", "c: extra\nd: extra\n")
    rendered = render_chart(source("precedence", values_file), values_files=[extra], set_values=["d=set"])
    assert configmap_data(rendered) == {
        "a": "chart-default",
        "b": "file",
        "c": "extra",
        "d": "set",
        "keep": "chart-default",
        "over": "file",
    }


def test_later_values_files_and_set_expressions_win(tmp_path):
    first = write(tmp_path / "1.yaml", "a: first\nb: first\n")
    second = write(tmp_path / "2.yaml", "a: second\n")
    rendered = render_chart(
        source("precedence"), values_files=[first, second], set_values=["c=one,d=one", "d=two"]
    )
    data = configmap_data(rendered)
    assert (data["a"], data["b"], data["c"], data["d"]) == ("second", "first", "one", "two")


def test_required_value_missing_is_a_clear_error():
    with pytest.raises(DiscoveryError) as caught:
        render_chart(source("required"))
    message = str(caught.value)
    assert (
        "chart required: template required/templates/configmap.yaml:6: required value missing: configdb.url"
        in message
    )
    assert "set it in charts/required.values.yaml or with --set required:configdb.url=VALUE" in message
    assert "\n" not in message
    assert caught.value.hint is not None


def test_required_value_given_by_values_file_by_values_files_or_by_set(tmp_path):
    values_file = write(tmp_path / "required.values.yaml", "configdb:\n  url: jdbc:mysql://db/file\n")
    expected = {"url": "jdbc:mysql://db/file"}
    assert configmap_data(render_chart(source("required", values_file))) == expected
    assert configmap_data(render_chart(source("required"), values_files=[values_file])) == expected
    assert configmap_data(
        render_chart(source("required"), set_values=["configdb.url=jdbc:mysql://db/set"])
    ) == {"url": "jdbc:mysql://db/set"}


def test_required_in_a_partial_is_found_by_its_message():
    with pytest.raises(
        DiscoveryError,
        match=r"chart required-partial: template required-partial/templates/"
        r"secret\.yaml:6: required value missing: db\.password \(\"a database password",
    ):
        render_chart(source("required-partial"))


def test_required_in_an_archive_is_found_by_its_message(tmp_path):
    archive = make_tgz(DATA / "required-partial", tmp_path / "rp.tgz")
    with pytest.raises(DiscoveryError, match=r"--set rp:db\.password=VALUE"):
        render_chart(ChartSource("rp", archive, None))


def test_required_in_an_aliased_subchart_names_the_value_under_its_alias():
    with pytest.raises(DiscoveryError) as caught:
        render_chart(source("parent"), set_values=["aliased.tag=null"])
    assert (
        "template parent/charts/aliased/templates/deployment.yaml:6: required value missing: aliased.tag"
        in str(caught.value)
    )
    assert "--set parent:aliased.tag=VALUE" in str(caught.value)


def test_values_file_that_is_not_yaml_names_file_and_line(tmp_path):
    bad = write(tmp_path / "required.values.yaml", "configdb:\n  url: x\n  user: [a,\n")
    with pytest.raises(DiscoveryError) as caught:
        render_chart(source("required", bad))
    assert (caught.value.file, caught.value.line) == (str(bad), 3)
    assert str(caught.value).startswith(f"{bad}:3: values file is not valid YAML")


@pytest.mark.parametrize(
    ("text", "reason"), [("- a\n- b\n", "a YAML array"), ("just text\n", "a YAML string")]
)
def test_values_file_that_is_no_mapping(tmp_path, text, reason):
    bad = write(tmp_path / "v.yaml", text)
    with pytest.raises(DiscoveryError, match=f"values file is {reason}, not a mapping"):
        render_chart(source("required"), values_files=[bad])


def test_values_file_unreadable_or_not_utf8(tmp_path):
    with pytest.raises(DiscoveryError, match="cannot read values file"):
        render_chart(source("required"), values_files=[tmp_path / "missing.yaml"])
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes(b"name: caf\xe9\n")
    with pytest.raises(DiscoveryError, match="values file is not UTF-8") as caught:
        render_chart(source("required"), values_files=[latin1])
    assert caught.value.file == str(latin1)


def test_helm_yaml_semantics_for_values_files(tmp_path):
    """Helm reads values with YAML 1.1 rules and keeps dates as text (PyYAML would make a date
    that JSON cannot carry): values files are read by Helm's own reader."""
    values = write(tmp_path / "v.yaml", "a: yes\nb: 2024-01-02\n")
    (rendered,) = render_chart(source("precedence"), values_files=[values])
    assert "  a: true\n  b: 2024-01-02\n" in rendered.text


def test_bad_set_expression():
    with pytest.raises(DiscoveryError, match=r"chart required: bad --set expression 'configdb\.url'"):
        render_chart(source("required"), set_values=["configdb.url"])


# --- kube version ------------------------------------------------------------------------


def test_kube_version_sets_capabilities():
    (old,) = documents(
        render_chart(source("kubever"), kube_version="1.20.0"), "kubever/templates/cronjob.yaml"
    )
    assert old["apiVersion"] == "batch/v1beta1"
    assert old["metadata"]["annotations"]["kube-version"] == "v1.20.0"
    (new,) = documents(
        render_chart(source("kubever"), kube_version="v1.29.3"), "kubever/templates/cronjob.yaml"
    )
    assert new["apiVersion"] == "batch/v1"
    assert new["metadata"]["annotations"]["kube-version"] == "v1.29.3"


def test_default_kube_version_is_helms():
    (default,) = documents(render_chart(source("kubever")), "kubever/templates/cronjob.yaml")
    assert default["apiVersion"] == "batch/v1"
    assert default["metadata"]["annotations"]["kube-version"].startswith("v1.")


def test_bad_kube_version():
    with pytest.raises(DiscoveryError, match="kube version 'latest' is not a Kubernetes version"):
        render_chart(source("kubever"), kube_version="latest")


def constrained_chart(tmp_path: Path, constraint: str) -> ChartSource:
    folder = tmp_path / "cilium"
    write(folder / "Chart.yaml", f"apiVersion: v2\nname: cilium\nversion: 1.20.0\nkubeVersion: '{constraint}'\n")
    write(folder / "templates" / "cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
    return ChartSource("cilium", folder, None, "cilium")


def test_kube_version_outside_the_charts_constraint_is_refused_as_helm_install_refuses(tmp_path):
    chart = constrained_chart(tmp_path, ">= 1.30.0-0")
    with pytest.raises(DiscoveryError) as raised:
        render_chart(chart, kube_version="1.29.0")
    assert str(raised.value).startswith(f"{chart.path}: chart cilium requires kubeVersion: >= 1.30.0-0 which is "
                                        "incompatible with Kubernetes v1.29.0; give a --kube-version")
    assert render_chart(chart, kube_version="v1.30.2")  # inside: renders
    assert render_chart(chart)  # no --kube-version: nothing to check against


def test_a_kube_version_constraint_kubenb_cannot_read_is_an_error_naming_it(tmp_path):
    with pytest.raises(DiscoveryError, match=r"chart cilium: cannot read its kubeVersion '>= one'"):
        render_chart(constrained_chart(tmp_path, ">= one"), kube_version="1.29.0")


@pytest.mark.parametrize(("constraint", "version", "admitted"), [
    (">= 1.30.0-0", "1.29.0", False), (">= 1.30.0-0", "1.30.0", True),
    (">=1.19.0-0 <1.31.0", "1.30.2", True), (">=1.19.0-0 <1.31.0", "1.31.0", False),
    (">= 1.21, < 1.40", "v1.29.0", True), ("=> 1.21", "1.29.0", True), ("=< 1.21", "1.29.0", False),
    ("^1.28", "1.29.0", True), ("^1.28", "2.0.0", False), ("^0.2.3", "0.3.0", False),
    ("~1.28", "1.29.0", False), ("~1.28.1", "1.28.5", True), ("~> 1.28.1", "1.28.0", False),
    ("1.2 - 1.4", "1.4.9", True), ("1.2 - 1.4", "1.5.0", False),
    ("1.28.x", "1.28.3", True), ("1.28.x", "1.29.0", False), ("1.28", "1.28.7", True), ("*", "1.0.0", True),
    ("<1.20 || >=1.29", "1.29.0", True), ("<1.20 || >=1.29", "1.25.0", False),
    (">1.28", "1.28.5", False), (">1.28.0", "1.28.5", True), ("<=1.28", "1.28.5", True), ("<1.28", "1.28.0", False),
    ("!=1.29.0", "1.29.0", False), ("!=1.29.0", "1.29.1", True),
    (">=1.20", "1.29.0-gke.1", False), (">=1.20-0", "1.29.0-gke.1", True),  # pre-releases need a pre-release
    (">=1.29.0-alpha.2", "1.29.0-alpha.10", True), (">=1.29.0-beta", "1.29.0-alpha.10", False),
])
def test_kube_version_constraints_read_as_helms_semver_reads_them(constraint, version, admitted):
    assert admits(constraint, version) is admitted


@pytest.mark.parametrize("constraint", ["", "||", ">= one", "1.2 || ", ">=1.2.3.4"])
def test_unreadable_constraints_raise(constraint):
    with pytest.raises(ConstraintError):
        admits(constraint, "1.29.0")


# --- Helm's own log lines ----------------------------------------------------------------


def test_helms_log_lines_become_warnings_not_stderr(capfd):
    """Helm's engine writes `2026/12/03 13:05:20 warning: destination for ...` to descriptor 2
    with Go's logger: it becomes a warning of the chart, and nothing reaches the terminal."""
    warnings: list[str] = []
    render_chart(source("precedence"), set_values=["nested.keep.deeper=1"], warnings=warnings)
    assert warnings == ["chart precedence: Helm warning: destination for precedence.nested.keep is a table. "
                        "Ignoring non-table value (chart-default)"]
    assert capfd.readouterr().err == ""


def test_the_capture_passes_other_stderr_output_on(capfd):
    """Another thread may write to stderr while a chart renders: its lines are not Helm's, and
    they reach stderr unchanged, after the render."""
    with helm_log_lines() as logged:
        os.write(2, b"2026/12/03 13:05:20 warning: from Go\nsomething else\n")
    assert logged == ["warning: from Go"]
    assert capfd.readouterr().err == "something else\n"


def test_two_threads_rendering_at_once_each_get_their_own_warnings():
    """Descriptor 2 is the process's: captures take turns, and each render keeps its lines."""
    results: dict[int, list[str]] = {}

    def render(index: int) -> None:
        warnings: list[str] = []
        for _ in range(5):
            render_chart(source("precedence"), set_values=[f"nested.keep.t{index}=1"], warnings=warnings)
        results[index] = warnings

    threads = [threading.Thread(target=render, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {i: len(w) for i, w in results.items()} == {0: 5, 1: 5, 2: 5}
    assert all(len(set(w)) == 1 for w in results.values())


# --- broken charts -----------------------------------------------------------------------


def test_template_syntax_error_names_template_and_line(tmp_path):
    broken = broken_chart(tmp_path, "a: b\nc: {{ .Values.x \nd: 1\n")
    with pytest.raises(
        DiscoveryError,
        match=r"chart broken: template broken/templates/cm\.yaml:3: "
        r"template syntax error",
    ):
        render_chart(broken)


def test_nil_pointer_names_the_value_to_set(tmp_path):
    broken = broken_chart(tmp_path, "url: {{ .Values.db.url }}\n")
    with pytest.raises(DiscoveryError) as caught:
        render_chart(broken)
    assert "chart broken: template broken/templates/cm.yaml:1: value missing: db.url" in str(caught.value)
    assert "--set broken:db.url=VALUE" in str(caught.value)


def test_nil_pointer_in_a_partial_names_both_templates(tmp_path):
    broken = broken_chart(
        tmp_path,
        'url: {{ include "x" . }}\n',
        {"templates/_helpers.tpl": '{{- define "x" -}}\n{{ .Values.db.url }}\n{{- end -}}\n'},
    )
    with pytest.raises(
        DiscoveryError,
        match=r"template broken/templates/cm\.yaml:1 \(in broken/templates/"
        r"_helpers\.tpl:2\): value missing: db\.url",
    ):
        render_chart(broken)


def test_fail_keeps_the_charts_message(tmp_path):
    broken = broken_chart(tmp_path, '{{ fail "mode must be one of a, b" }}\n')
    with pytest.raises(
        DiscoveryError,
        match=r"chart broken: template broken/templates/cm\.yaml:1: "
        r"mode must be one of a, b;",
    ):
        render_chart(broken)


def test_dependency_missing_from_charts_folder(tmp_path):
    broken = broken_chart(
        tmp_path,
        "a: b\n",
        {
            "Chart.yaml": "apiVersion: v2\nname: broken\nversion: 0.1.0\n"
            "dependencies:\n  - name: redis\n    version: 1.0.0\n    condition: redis.enabled\n"
        },
    )
    with pytest.raises(
        DiscoveryError,
        match=r"chart broken: dependencies in Chart\.yaml missing from its charts/ folder: redis",
    ):
        render_chart(broken)


def test_chart_that_does_not_load(tmp_path):
    broken = broken_chart(tmp_path, "a: b\n", {"Chart.yaml": "name: [\n"})
    with pytest.raises(DiscoveryError, match=r"chart broken: cannot load it: .*line 1") as caught:
        render_chart(broken)
    assert caught.value.file == str(broken.path)


def test_values_against_the_chart_schema():
    cert_manager = ChartSource("cert-manager", CORPUS / "charts" / "cert-manager", None)
    with pytest.raises(
        DiscoveryError,
        match=r"chart cert-manager: values do not match the chart's values\.schema\.json: at '/replicaCount'",
    ):
        render_chart(cert_manager, set_values=["replicaCount=many"])


def test_unknown_backend():
    with pytest.raises(DiscoveryError, match="unknown Helm backend"):
        render_chart(source("novalues"), backend="docker")  # type: ignore[arg-type]


# --- the real-world corpus ---------------------------------------------------------------


def corpus_renders() -> list[tuple[str, str | None, list[str]]]:
    """(chart, values file, images as written) for every chart the corpus has an expected list for."""
    expected = [json.loads(p.read_text()) for p in sorted((CORPUS / "expected").glob("*.json"))]
    return [
        (e["source"].split("/", 1)[1], e["values"], e["written"])
        for e in expected
        if e["source"].startswith("charts/")
    ]


@pytest.mark.parametrize(
    ("chart", "values", "written"),
    [pytest.param(*case, id=Path(case[1] or case[0]).stem) for case in corpus_renders()],
)
def test_every_corpus_chart_renders(chart, values, written):
    values_file = CORPUS / values if values else None
    rendered = render_chart(ChartSource(chart, CORPUS / "charts" / chart, values_file))
    assert rendered
    assert all(r.template.startswith(f"{chart}/") for r in rendered)
    assert not [r for r in rendered if r.template.endswith("NOTES.txt") or "/_" in r.template]
    assert all(r.text.strip() for r in rendered)
    text = "".join(r.text for r in rendered)
    assert [image for image in written if image not in text] == []


def test_corpus_covers_every_chart():
    assert {chart for chart, _, _ in corpus_renders()} == {c.name for c in find_charts(CORPUS / "charts")}


def test_corpus_apollo_without_its_values_names_the_missing_value():
    apollo = ChartSource("apollo-service", CORPUS / "charts" / "apollo-service", None)
    with pytest.raises(
        DiscoveryError,
        match=r"chart apollo-service: template apollo-service/templates/"
        r"deployment-configservice\.yaml:26: required value missing: configdb\.userName",
    ):
        render_chart(apollo)


# --- the cli backend, with a fake helm ---------------------------------------------------

FAKE_HELM = """#!{python}
import json, os, sys
with open(os.environ["FAKE_HELM_ARGS"], "w") as out:
    json.dump(sys.argv[1:], out)
with open(os.environ["FAKE_HELM_STDOUT"]) as canned:
    sys.stdout.write(canned.read())
sys.stderr.write(os.environ.get("FAKE_HELM_STDERR", ""))
sys.exit(int(os.environ.get("FAKE_HELM_STATUS", "0")))
"""

CANNED = """\
---
# Source: parent/charts/aliased/templates/deployment.yaml
apiVersion: apps/v1
kind: Deployment
metadata:
  name: release-aliased
---
# Source: parent/templates/multi.yaml
apiVersion: v1
kind: ConfigMap
metadata:
  name: release-one
---
# Source: parent/templates/deployment.yaml
apiVersion: apps/v1
kind: Deployment
metadata:
  name: release-parent
---
# Source: parent/templates/multi.yaml
# a comment right after the separator
apiVersion: v1
kind: ConfigMap
metadata:
  name: release-two
---
# Source: parent/templates/tests/test-connection.yaml
apiVersion: v1
kind: Pod
metadata:
  name: release-test
  annotations:
    "helm.sh/hook": test
"""


@pytest.fixture
def fake_helm(tmp_path, monkeypatch):
    """Put a fake `helm` first on PATH; returns (canned stdout file, recorded args file)."""
    bindir = tmp_path / "bin"
    helm = write(bindir / "helm", FAKE_HELM.format(python=sys.executable))
    helm.chmod(0o755)
    stdout, args = tmp_path / "stdout.txt", tmp_path / "args.json"
    stdout.write_text(CANNED)
    monkeypatch.setenv("PATH", str(bindir))
    monkeypatch.setenv("FAKE_HELM_STDOUT", str(stdout))
    monkeypatch.setenv("FAKE_HELM_ARGS", str(args))
    return stdout, args


def test_cli_backend_arguments(fake_helm, tmp_path):
    _, args = fake_helm
    values_file = write(tmp_path / "parent.values.yaml", "a: 1\n")
    extra = write(tmp_path / "extra.yaml", "b: 2\n")
    render_chart(
        source("parent", values_file),
        values_files=[extra],
        set_values=["a=3", "b.c=4"],
        kube_version="1.29.0",
        backend="cli",
    )
    assert json.loads(args.read_text()) == [
        "template",
        "release",
        str(DATA / "parent"),
        "--namespace",
        "default",
        "-f",
        str(values_file),
        "-f",
        str(extra),
        "--set",
        "a=3",
        "--set",
        "b.c=4",
        "--kube-version",
        "1.29.0",
    ]


def test_cli_backend_without_options(fake_helm):
    _, args = fake_helm
    render_chart(source("parent"), backend="cli")
    assert json.loads(args.read_text()) == [
        "template",
        "release",
        str(DATA / "parent"),
        "--namespace",
        "default",
    ]


def test_cli_backend_splits_output_by_source_comments(fake_helm):
    rendered = render_chart(source("parent"), backend="cli")
    assert [r.template for r in rendered] == [
        "parent/charts/aliased/templates/deployment.yaml",
        "parent/templates/deployment.yaml",
        "parent/templates/multi.yaml",
        "parent/templates/tests/test-connection.yaml",
    ]
    multi = by_template(rendered)["parent/templates/multi.yaml"]
    assert [d["metadata"]["name"] for d in yaml.safe_load_all(multi)] == ["release-one", "release-two"]
    assert "# Source:" not in multi
    assert all(r.chart == "parent" for r in rendered)


def test_cli_backend_gives_the_sdk_documents(fake_helm):
    """Helm's own output for the SDK's render (one `# Source:` per document) splits back to it."""
    stdout, _ = fake_helm
    sdk = render_chart(source("parent"))
    stdout.write_text(
        "".join(
            f"---\n# Source: {r.template}\n{doc.strip()}\n" for r in sdk for doc in r.text.split("\n---\n")
        )
    )
    cli = render_chart(source("parent"), backend="cli")
    assert [(r.template, list(yaml.safe_load_all(r.text))) for r in cli] == [
        (r.template, list(yaml.safe_load_all(r.text))) for r in sdk
    ]


def test_cli_backend_log_lines_become_warnings(fake_helm, monkeypatch):
    monkeypatch.setenv("FAKE_HELM_STDERR", "2026/12/03 13:05:20 warning: destination for parent.a is a table. "
                       "Ignoring non-table value (1)\n\nwalk.go:74: found symbolic link in path: /x resolves to /y\n")
    warnings: list[str] = []
    render_chart(source("parent"), backend="cli", warnings=warnings)
    assert warnings == [
        "chart parent: Helm warning: destination for parent.a is a table. Ignoring non-table value (1)",
        "chart parent: Helm warning: walk.go:74: found symbolic link in path: /x resolves to /y",
    ]


def test_cli_backend_translates_helm_errors(fake_helm, monkeypatch):
    monkeypatch.setenv("FAKE_HELM_STATUS", "1")
    monkeypatch.setenv(
        "FAKE_HELM_STDERR",
        "walk.go:74: found symbolic link in path: /x resolves to /y\n"
        "Error: execution error at (required/templates/configmap.yaml:6:10): "
        "configdb.url is required\n\nUse --debug flag to render out invalid YAML\n",
    )
    with pytest.raises(DiscoveryError) as caught:
        render_chart(source("required"), backend="cli")
    assert str(caught.value).endswith(
        "chart required: template required/templates/configmap.yaml:6: required value missing: configdb.url "
        '("configdb.url is required"); set it in charts/required.values.yaml or with '
        "--set required:configdb.url=VALUE"
    )


def test_cli_backend_reads_values_files_first(fake_helm, tmp_path):
    bad = write(tmp_path / "bad.yaml", "a: [\n")
    with pytest.raises(DiscoveryError, match="values file is not valid YAML"):
        render_chart(source("parent"), values_files=[bad], backend="cli")


def test_cli_backend_without_helm(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(DiscoveryError, match="no helm binary on PATH") as caught:
        render_chart(source("parent"), backend="cli")
    assert "--helm-backend sdk" in str(caught.value)


def test_sdk_without_kube_version_support_says_to_use_the_cli(monkeypatch):
    """Should a later helm-c refuse the `kube_version` render option, the error says what to do."""
    real = helm_python._native.call_string

    def refuse_kube_version(func_name, *args):
        if func_name == "helm_render" and "kube_version" in (args[-1] or ""):
            raise helm_python.HelmInvalidArgError('invalid render options: unknown field "kube_version"')
        return real(func_name, *args)

    monkeypatch.setattr(helm_python._native, "call_string", refuse_kube_version)
    with pytest.raises(DiscoveryError, match=r"cannot set the kube version .*; use --helm-backend cli"):
        render_chart(source("kubever"), kube_version="1.29.0")
    assert render_chart(source("kubever"))  # without a kube version the public API is used
