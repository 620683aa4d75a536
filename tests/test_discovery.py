"""Discovery on hand-written tricky cases: what a user sees from ``list_images``."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from kubenb import list_images
from kubenb.errors import BuildError, DiscoveryError
from tests.support.cputime import cpu_clock

DIGEST = "sha256:" + "ab" * 32


def write(root: Path, name: str, text: str | bytes) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def images_of(context: Path, **options: object) -> list[str]:
    return [str(found.image) for found in list_images(context, **options).images]  # type: ignore[arg-type]


DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  template:
    spec:
      initContainers:
        - name: init
          image: busybox:1.36  # waits for the database
      containers:
        - name: web
          image: "nginx"
          env:
            - name: RELATED_IMAGE_SIDECAR
              value: quay.io/example/sidecar:v2
          args: ["--helper-image=ghcr.io/example/helper:1.0", "--port=8080"]
      volumes:
        - name: models
          image:
            reference: registry.example.com/models/llm@{DIGEST}
""".replace("{DIGEST}", DIGEST)


def test_image_list_file_rules(tmp_path: Path) -> None:
    write(tmp_path, "manifests/imageList", "# base images\r\nnginx:1.25\r\n\r\n"
          "  quay.io/coreos/etcd:v3.5.0   # trailing\r\nBad/Name:1\r\nnginx:1.25\r\n")
    found = list_images(tmp_path)
    assert [str(f.image) for f in found.images] == [
        "docker.io/library/nginx:1.25", "quay.io/coreos/etcd:v3.5.0",
    ]
    nginx = found.images[0]
    assert [(loc.source, loc.file, loc.line) for loc in nginx.locations] == [
        ("imageList", "manifests/imageList", 2), ("imageList", "manifests/imageList", 6),
    ]
    [invalid] = found.invalid
    assert (invalid.written, invalid.location.line) == ("Bad/Name:1", 5)
    assert "uppercase" in invalid.reason


def test_pod_spec_images_with_provenance_and_potential(tmp_path: Path) -> None:
    write(tmp_path, "manifests/app.yaml", DEPLOYMENT)
    found = list_images(tmp_path)
    assert [str(f.image) for f in found.images] == [
        "docker.io/library/busybox:1.36",
        "docker.io/library/nginx:latest",
        f"registry.example.com/models/llm@{DIGEST}",
    ]
    busybox, nginx, model = found.images
    assert busybox.locations[0].line == 10
    assert busybox.locations[0].path == "spec.template.spec.initContainers[0].image"
    assert nginx.locations[0].object == "Deployment/web"
    assert nginx.written == "nginx"
    assert model.locations[0].path == "spec.template.spec.volumes[0].image.reference"
    assert sorted(str(f.image) for f in found.potential) == [
        "ghcr.io/example/helper:1.0", "quay.io/example/sidecar:v2",
    ]


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("flow.yaml", '{kind: Pod, metadata: {name: p}, spec: {containers: [{name: a, image: "redis:7"}]}}',
         ["docker.io/library/redis:7"]),
        ("pod.json", json.dumps({"kind": "Pod", "spec": {"containers": [{"image": "quay.io/a/b:1"}]}}),
         ["quay.io/a/b:1"]),
        ("tagdigest.yml", f"kind: Pod\nspec:\n  containers:\n  - image: nginx:1.25@{DIGEST}\n",
         [f"docker.io/library/nginx:1.25@{DIGEST}"]),
        ("digest.yaml", f"kind: Pod\nspec:\n  containers:\n  - image: nginx@{DIGEST}\n",
         [f"docker.io/library/nginx@{DIGEST}"]),
        ("values.yaml", "image:\n  repository: nginx\n  tag: 1.25\nreplicas: 2\n", []),
        ("cronjob.yaml", "kind: CronJob\nspec:\n  jobTemplate:\n    spec:\n      template:\n        spec:\n"
                         "          containers:\n          - image: alpine:3.20\n", ["docker.io/library/alpine:3.20"]),
        ("list.yaml", "kind: DeploymentList\nitems:\n- kind: Deployment\n  spec:\n    template:\n      spec:\n"
                      "        ephemeralContainers:\n        - image: debug:1\n", ["docker.io/library/debug:1"]),
        ("cr.yaml", "apiVersion: ceph.rook.io/v1\nkind: CephCluster\nspec:\n  cephVersion:\n"
                    "    image: quay.io/ceph/ceph:v19\n", ["quay.io/ceph/ceph:v19"]),
        ("cr-escaped-key.yaml", 'apiVersion: ceph.rook.io/v1\nkind: CephCluster\nspec:\n  cephVersion:\n'
                                '    "im\\x61ge": quay.io/ceph/ceph:v19\n', ["quay.io/ceph/ceph:v19"]),
        ("policy.yaml", "kind: ClusterPolicy\nspec:\n  pattern:\n    image: docker.io*\n", []),
        ("crd.yaml", "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nspec:\n  versions:\n"
                     "  - schema: {openAPIV3Schema: {example: {image: nginx:1.25}}}\n", []),
        ("crd-flow.yaml", '{"kind": "CustomResourceDefinition", "spec": {"example": {"image": "nginx:1.25"}}}', []),
        ("notes.txt", "kind: Pod\nspec:\n  containers:\n  - image: not-a-manifest:1\n", []),
    ],
)
def test_manifest_shapes(tmp_path: Path, name: str, text: str, expected: list[str]) -> None:
    write(tmp_path, f"manifests/{name}", text)
    assert images_of(tmp_path) == expected


def test_config_map_mentions_are_potential_only(tmp_path: Path) -> None:
    write(tmp_path, "manifests/cm.yaml",
          "kind: ConfigMap\nmetadata: {name: cfg}\ndata:\n  script: |\n    docker pull quay.io/x/tool:2.1\n"
          "    echo 10:30 /etc/hosts\n")
    found = list_images(tmp_path)
    assert not found.images
    assert [str(f.image) for f in found.potential] == ["quay.io/x/tool:2.1"]
    assert found.potential[0].locations[0].path == "data.script"
    assert found.potential[0].locations[0].line == 5


def test_template_text_in_a_raw_manifest_is_skipped_with_a_warning(tmp_path: Path) -> None:
    write(tmp_path, "manifests/ok.yaml", "kind: Pod\nspec:\n  containers:\n  - image: nginx:1\n")
    write(tmp_path, "manifests/tpl.yaml",
          "kind: Pod\nspec:\n  containers:\n  - image: \"{{ .Values.image }}\"\n")
    found = list_images(tmp_path)
    assert images_of(tmp_path) == ["docker.io/library/nginx:1"]
    assert len(found.warnings) == 1
    assert found.warnings[0].startswith("manifests/tpl.yaml:4: skipped")
    assert not found.invalid


@pytest.mark.parametrize(("text", "line"), [
    ("kind: Pod\nspec:\n  containers:\n  - image: nginx\n{{- if .Values.x }}\n", 5),  # structure
    ("kind: Pod\nspec:\n  containers:\n  - image: {{ repo }}/app:1\n", 4),  # a flow mapping where a value goes
    ("kind: Pod\nmetadata:\n  name: \"{{ include \\\"x\\\" . }}\"\n", 3),  # a Helm function in a value
    ("kind: Pod\nspec: [\n{{ x }}\n", 3),  # no YAML at all
])
def test_a_helm_template_is_told_by_where_its_actions_stand(tmp_path: Path, text: str, line: int) -> None:
    write(tmp_path, "manifests/tpl.yaml", text)
    assert [w.split(": skipped")[0] for w in list_images(tmp_path).warnings] == [f"manifests/tpl.yaml:{line}"]


def test_other_tools_braces_inside_values_do_not_skip_a_manifest(tmp_path: Path) -> None:
    """Prometheus annotations, Argo parameters and Grafana legends write {{ }} inside strings."""
    write(tmp_path, "manifests/rules.yaml",
          "kind: PrometheusRule\nspec:\n  groups:\n  - rules:\n    - annotations:\n"
          "        description: Pod {{ $labels.pod }} {{ with $labels.cluster -}} on {{ . }} {{- end }} is down é\n"
          "      expr: up == 0\n---\n"
          "kind: Pod\nspec:\n  containers:\n  - image: nginx:1\n    args: [\"{{inputs.parameters.x}}\"]\n")
    found = list_images(tmp_path)
    assert found.warnings == ()
    assert [(str(f.image), f.locations[0].line) for f in found.images] == [("docker.io/library/nginx:1", 12)]


def test_invalid_pod_spec_reference_is_reported_with_its_location(tmp_path: Path) -> None:
    write(tmp_path, "manifests/bad.yaml", "kind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n"
          "  - image: foo/-bar\n  - image: 42\n")
    found = list_images(tmp_path)
    assert not found.images
    assert [(i.written, i.location.file, i.location.line, i.location.object) for i in found.invalid] == [
        ("foo/-bar", "manifests/bad.yaml", 5, "Pod/p"), ("42", "manifests/bad.yaml", 6, "Pod/p"),
    ]


def test_kubefile_context_resolves_copy_like_the_design_says(tmp_path: Path) -> None:
    write(tmp_path, "Kubefile", "FROM scratch\nCOPY imageList manifests\nCOPY apollo charts\n"
          "COPY app.yaml manifests/renamed.yaml\nCOPY extra/*.yaml manifests/\n")
    write(tmp_path, "imageList", "nginx:1.25\n")
    write(tmp_path, "app.yaml", "kind: Pod\nspec:\n  containers:\n  - image: redis:7\n")
    write(tmp_path, "extra/a.yaml", "kind: Pod\nspec:\n  containers:\n  - image: alpine:3\n")
    write(tmp_path, "extra/b.txt", "kind: Pod\nspec:\n  containers:\n  - image: ignored:1\n")
    write(tmp_path, "manifests/not-copied.yaml", "kind: Pod\nspec:\n  containers:\n  - image: nope:1\n")
    write(tmp_path, "apollo/Chart.yaml", "apiVersion: v2\nname: apollo\nversion: 0.1.0\n")
    write(tmp_path, "apollo/templates/pod.yaml",
          "kind: Pod\nmetadata:\n  name: {{ .Release.Name }}\nspec:\n  containers:\n"
          "  - image: {{ .Values.image | default \"apollo/portal:2\" }}\n")
    found = list_images(tmp_path)
    assert [str(f.image) for f in found.images] == [
        "docker.io/apollo/portal:2", "docker.io/library/alpine:3", "docker.io/library/nginx:1.25",
        "docker.io/library/redis:7",
    ]
    by_image = {str(f.image): f.locations[0] for f in found.images}
    assert by_image["docker.io/library/nginx:1.25"].file == "manifests/imageList"
    assert by_image["docker.io/library/redis:7"].file == "manifests/renamed.yaml"
    assert by_image["docker.io/apollo/portal:2"].chart == "apollo"
    assert by_image["docker.io/apollo/portal:2"].object == "Pod/release"


@pytest.mark.parametrize("source", ["../outside.yaml", "/etc/hostname", "link.yaml"])
def test_copy_cannot_leave_the_context(tmp_path: Path, source: str) -> None:
    context = tmp_path / "context"
    write(tmp_path, "outside.yaml", "kind: Pod\n")
    write(context, "Kubefile", f"FROM scratch\nCOPY {source} manifests\n")
    os.symlink(tmp_path / "outside.yaml", context / "link.yaml")
    with pytest.raises(BuildError) as caught:
        list_images(context)
    assert caught.value.line == 2
    assert "outside the build context" in str(caught.value)


def test_copy_of_a_missing_source_names_it(tmp_path: Path) -> None:
    write(tmp_path, "Kubefile", "FROM scratch\n\nCOPY nothere.yaml manifests\n")
    with pytest.raises(BuildError, match=r"Kubefile:3: COPY source 'nothere.yaml' is not in the build context"):
        list_images(tmp_path)


def test_why_normalises_as_the_cli_does_and_says_each_kind(tmp_path: Path) -> None:
    """`ImageList.why("busybox")` was `()` when the manifests wrote `docker.io/library/busybox`
    while `kubenb list-images --why busybox` found it: one normalisation now, and each place
    says what the image is there."""
    write(tmp_path, "manifests/app.yaml", """\
kind: Pod
metadata: {name: p}
spec:
  containers:
  - name: a
    image: docker.io/library/busybox
  - name: b
    image: Not/Valid
    env: [{name: SIDECAR_IMAGE, value: "index.docker.io/library/redis:7"}]
""")
    write(tmp_path, "manifests/imageList", "alpine:3.20\n")
    write(tmp_path, ".kubenb/exclude", "alpine:3.20\n")
    found = list_images(tmp_path)
    (busybox,) = found.why("busybox")
    assert (busybox.kind, busybox.line, busybox.path) == ("image", 6, "spec.containers[0].image")
    assert found.why("busybox:latest") == found.why("docker.io/busybox") == (busybox,)
    assert [(p.kind, p.line) for p in found.why("redis:7")] == [("potential", 9)]
    assert [(p.kind, p.file) for p in found.why("docker.io/alpine:3.20")] == [("excluded", "manifests/imageList")]
    assert [(p.kind, p.line) for p in found.why("Not/Valid")] == [("invalid", 8)]
    assert found.why("busybox")[0].to_dict()["kind"] == "image"
    assert found.why("busybox:1") == found.why("not a reference") == ()


def test_why_and_dataframe(tmp_path: Path) -> None:
    write(tmp_path, "manifests/app.yaml", DEPLOYMENT)
    write(tmp_path, "manifests/imageList", "nginx\n")
    found = list_images(tmp_path)
    locations = found.why("docker.io/library/nginx:latest")
    assert [(loc.source, loc.line) for loc in locations] == [("imageList", 1), ("manifest", 13)]
    assert found.why("nginx") == locations
    assert found.why("nope:1") == ()
    frame = found.to_dataframe()
    for column in ("image", "registry", "repository", "tag", "digest", "source", "file", "line", "path",
                   "object", "chart"):
        assert column in frame.columns
    assert set(frame["image"]) == {str(f.image) for f in found.images}
    assert list(frame[frame["source"] == "imageList"]["repository"]) == ["library/nginx"]


def test_unchanged_context_answers_from_the_cache(tmp_path: Path) -> None:
    path = write(tmp_path, "manifests/app.yaml", DEPLOYMENT)
    first = list_images(tmp_path)
    assert list_images(tmp_path) is first
    path.write_text(DEPLOYMENT.replace("busybox:1.36", "busybox:1.37"))
    changed = list_images(tmp_path)
    assert changed is not first
    assert "docker.io/library/busybox:1.37" in [str(f.image) for f in changed.images]


def test_broken_yaml_names_file_and_line(tmp_path: Path) -> None:
    write(tmp_path, "manifests/a.yaml", "kind: Pod\n---\nkind: Pod\nspec:\n  containers: [\n    image: x\n")
    with pytest.raises(DiscoveryError) as caught:
        list_images(tmp_path)
    assert caught.value.file == "manifests/a.yaml"
    assert caught.value.line is not None and caught.value.line >= 5


def test_alias_bomb_ends_quickly_with_a_clear_error(tmp_path: Path) -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in "bcdefghi":
        previous = chr(ord(level) - 1)
        lines.append(f"{level}: &{level} [" + ",".join([f"*{previous}"] * 9) + "]")
    write(tmp_path, "manifests/bomb.yaml", "\n".join(lines) + "\n")
    spent = cpu_clock()
    with pytest.raises(DiscoveryError, match="alias"):
        list_images(tmp_path)
    assert spent() < 5


def test_huge_single_line_file_ends_quickly_with_a_clear_error(tmp_path: Path) -> None:
    write(tmp_path, "manifests/huge.yaml", "a: " + "x" * (50 * 1024 * 1024) + "\n")
    spent = cpu_clock()
    with pytest.raises(DiscoveryError) as caught:
        list_images(tmp_path)
    assert caught.value.file == "manifests/huge.yaml"
    assert spent() < 10


def test_non_utf8_and_binary_files_are_named(tmp_path: Path) -> None:
    write(tmp_path, "manifests/latin1.yaml", b"kind: Pod\nmetadata:\n  name: caf\xe9\n")
    with pytest.raises(DiscoveryError) as caught:
        list_images(tmp_path)
    assert (caught.value.file, caught.value.line) == ("manifests/latin1.yaml", 3)
    (tmp_path / "manifests/latin1.yaml").unlink()
    write(tmp_path, "manifests/blob.yaml", b"\x00\x01\x02binary")
    with pytest.raises(DiscoveryError, match=r"manifests/blob\.yaml"):
        list_images(tmp_path)


def test_a_missing_context_is_an_error_not_an_empty_list(tmp_path: Path) -> None:
    with pytest.raises(DiscoveryError, match=r"the build context .*nope is not a folder"):
        list_images(tmp_path / "nope")


def test_a_chart_one_folder_too_deep_is_a_warning_naming_the_fix(tmp_path: Path) -> None:
    chart = tmp_path / "charts" / "app"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: app\nversion: 0.1.0\n")
    (chart / "templates" / "pod.yaml").write_text("kind: Pod\nspec:\n  containers:\n  - image: nginx:1.25\n")
    (tmp_path / "Kubefile").write_text("FROM scratch\nCOPY charts charts\n")  # charts/charts/app
    nested = list_images(tmp_path)
    assert nested.images == ()
    assert nested.warnings == ("charts/charts/app is not rendered: charts/charts is not a chart, and charts must "
                               "sit right under charts/; copy it there (e.g. COPY charts/* charts/)",)
    (tmp_path / "Kubefile").write_text("FROM scratch\nCOPY charts/* charts/\n")
    fixed = list_images(tmp_path)
    assert [str(f.image) for f in fixed.images] == ["docker.io/library/nginx:1.25"] and fixed.warnings == ()
