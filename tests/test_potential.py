"""Potential images: each rule on an input shaped like a real operator's, with its reason; each
noise case absent. The snippets follow the shape of public operator bundles and charts
(prometheus-operator, longhorn, strimzi, local-path-provisioner, tekton, kind, aws-auth,
kube-prometheus dashboards), written here for the test."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from kubenb import list_images
from kubenb.discover.potential import Candidate, RenderNames, names_image, noise, text_candidates
from kubenb.model import ImageList, Location


def context_with(tmp_path: Path, text: str, name: str = "operator.yaml") -> Path:
    (tmp_path / "manifests").mkdir(exist_ok=True)
    (tmp_path / "manifests" / name).write_text(textwrap.dedent(text))
    return tmp_path


def potential_of(found: ImageList) -> dict[str, list[tuple[str | None, int | None, str | None]]]:
    """Each potential image with (reason, line, path) of every place."""
    return {str(f.image): [(loc.reason, loc.line, loc.path) for loc in f.locations] for f in found.potential}


def deployment(containers: str) -> str:
    """A Deployment around a containers list written at six spaces."""
    head = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: operator\nspec:\n  template:\n    spec:\n" \
           "      containers:\n"
    return head + textwrap.indent(textwrap.dedent(containers), "      ")


# -- flags -----------------------------------------------------------------------------------

PROMETHEUS_OPERATOR = deployment("""\
    - name: prometheus-operator
      image: quay.io/prometheus-operator/prometheus-operator:v0.76.0
      args:
      - --kubelet-service=kube-system/kubelet
      - --prometheus-config-reloader=quay.io/prometheus-operator/prometheus-config-reloader:v0.76.0
      - --web.listen-address=localhost:8080
""")


def test_an_image_flag_whose_name_does_not_say_image(tmp_path: Path) -> None:
    found = list_images(context_with(tmp_path, PROMETHEUS_OPERATOR))
    assert [str(f.image) for f in found.images] == ["quay.io/prometheus-operator/prometheus-operator:v0.76.0"]
    assert potential_of(found) == {
        "quay.io/prometheus-operator/prometheus-config-reloader:v0.76.0": [
            ("flag --prometheus-config-reloader", 13, "spec.template.spec.containers[0].args[1]")],
    }


LONGHORN_MANAGER = deployment("""\
    - name: longhorn-manager
      image: longhornio/longhorn-manager:v1.7.2
      command:
      - longhorn-manager
      - -d
      - daemon
      - --engine-image
      - "longhornio/longhorn-engine:v1.7.2"
      - --instance-manager-image
      - "longhornio/longhorn-instance-manager:v1.7.2"
      - --manager-image
      - "longhornio/longhorn-manager:v1.7.2"
      - --service-account
      - longhorn-service-account
""")


def test_flags_written_as_two_list_items(tmp_path: Path) -> None:
    found = list_images(context_with(tmp_path, LONGHORN_MANAGER))
    assert [str(f.image) for f in found.images] == ["docker.io/longhornio/longhorn-manager:v1.7.2"]
    assert potential_of(found) == {  # the manager image is carried already: not potential too
        "docker.io/longhornio/longhorn-engine:v1.7.2": [
            ("flag --engine-image", 16, "spec.template.spec.containers[0].command[4]")],
        "docker.io/longhornio/longhorn-instance-manager:v1.7.2": [
            ("flag --instance-manager-image", 18, "spec.template.spec.containers[0].command[6]")],
    }


def test_an_untagged_repository_in_a_flag_that_names_an_image(tmp_path: Path) -> None:
    found = list_images(context_with(tmp_path, deployment("""\
        - name: csi-deployer
          image: longhornio/longhorn-manager:v1.7.2
          args: ["--csi-attacher-image=longhornio/csi-attacher", "--namespace", "longhorn-system",
                 "--pull-image=true"]
    """)))
    assert potential_of(found) == {
        "docker.io/longhornio/csi-attacher:latest": [
            ("flag --csi-attacher-image", 11, "spec.template.spec.containers[0].args[0]")],
    }


# -- env values ------------------------------------------------------------------------------

STRIMZI = deployment("""\
    - name: strimzi-cluster-operator
      image: quay.io/strimzi/operator:0.43.0
      env:
      - name: STRIMZI_KAFKA_IMAGES
        value: |
          3.7.0=quay.io/strimzi/kafka:0.43.0-kafka-3.7.0
          3.8.0=quay.io/strimzi/kafka:0.43.0-kafka-3.8.0
      - name: STRIMZI_DEFAULT_KAFKA_EXPORTER_IMAGE
        value: quay.io/strimzi/kafka:0.43.0-kafka-3.8.0
      - name: STRIMZI_KAFKA_CONNECT_IMAGES
        value: "3.7.0=quay.io/strimzi/kafka:0.43.0-kafka-3.7.0, 3.8.0=quay.io/strimzi/kafka:0.43.0-kafka-3.8.0"
      - name: STRIMZI_OPERATION_TIMEOUT_MS
        value: "300000"
""")


def test_env_values_holding_several_images(tmp_path: Path) -> None:
    found = list_images(context_with(tmp_path, STRIMZI))
    assert potential_of(found) == {
        "quay.io/strimzi/kafka:0.43.0-kafka-3.7.0": [
            ("env STRIMZI_KAFKA_IMAGES line 1", 14, "spec.template.spec.containers[0].env[0].value"),
            ("env STRIMZI_KAFKA_CONNECT_IMAGES item 1", 19, "spec.template.spec.containers[0].env[2].value")],
        "quay.io/strimzi/kafka:0.43.0-kafka-3.8.0": [
            ("env STRIMZI_KAFKA_IMAGES line 2", 15, "spec.template.spec.containers[0].env[0].value"),
            ("env STRIMZI_DEFAULT_KAFKA_EXPORTER_IMAGE", 17, "spec.template.spec.containers[0].env[1].value"),
            ("env STRIMZI_KAFKA_CONNECT_IMAGES item 2", 19, "spec.template.spec.containers[0].env[2].value")],
    }


def test_a_space_separated_env_list_and_a_bare_image_the_name_vouches_for(tmp_path: Path) -> None:
    found = list_images(context_with(tmp_path, deployment("""\
        - name: operator
          image: ghcr.io/example/operator:1.0
          env:
          - {name: SIDECAR_IMAGES, value: "ghcr.io/example/agent:1.0 ghcr.io/example/proxy:2.1"}
          - {name: POSTGRES_IMAGE, value: "postgres:16"}
          - {name: DATABASE_HOST, value: "postgres:5432"}
    """)))
    assert {image: [reason for reason, _, _ in places] for image, places in potential_of(found).items()} == {
        "ghcr.io/example/agent:1.0": ["env SIDECAR_IMAGES item 1"],
        "ghcr.io/example/proxy:2.1": ["env SIDECAR_IMAGES item 2"],
        "docker.io/library/postgres:16": ["env POSTGRES_IMAGE"],
    }


# -- manifests embedded in ConfigMaps --------------------------------------------------------

LOCAL_PATH_CONFIG = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: local-path-config
  namespace: local-path-storage
data:
  config.json: |-
    {"nodePathMap": [{"node": "DEFAULT_PATH_FOR_NON_LISTED_NODES", "paths": ["/opt/local-path-provisioner"]}]}
  setup: |-
    #!/bin/sh
    set -eu
    mkdir -m 0777 -p "$VOL_DIR"
  helperPod.yaml: |-
    apiVersion: v1
    kind: Pod
    metadata:
      name: helper-pod
    spec:
      priorityClassName: system-node-critical
      tolerations:
      - key: node.kubernetes.io/disk-pressure
        operator: Exists
        effect: NoSchedule
      containers:
      - name: helper-pod
        image: busybox
        imagePullPolicy: IfNotPresent
"""


def test_a_pod_manifest_embedded_in_a_config_map(tmp_path: Path) -> None:
    found = list_images(context_with(tmp_path, LOCAL_PATH_CONFIG))
    assert not found.images
    assert potential_of(found) == {
        "docker.io/library/busybox:latest": [
            ("ConfigMap helperPod.yaml: pod spec", 26, "data.helperPod.yaml > spec.containers[0].image")],
    }
    assert found.potential[0].locations[0].object == "ConfigMap/local-path-config"


def test_a_bare_pod_spec_in_json_and_an_embedded_env_list(tmp_path: Path) -> None:
    spec = {"containers": [{"name": "mover", "image": "quay.io/backube/volsync:0.10.0",
                            "env": [{"name": "HELPER_IMAGES", "value": "alpine:3.20,busybox:1.36"}]}]}
    text = ("kind: ConfigMap\nmetadata: {name: mover-template}\ndata:\n"
            f"  pod.json: '{json.dumps(spec)}'\n  policy: 'role:master'\n")
    found = list_images(context_with(tmp_path, text))
    assert potential_of(found) == {
        "quay.io/backube/volsync:0.10.0": [("ConfigMap pod.json: pod spec", 4, "data.pod.json > containers[0].image")],
        "docker.io/library/alpine:3.20": [
            ("ConfigMap pod.json: env HELPER_IMAGES item 1", 4, "data.pod.json > containers[0].env[0].value")],
        "docker.io/library/busybox:1.36": [
            ("ConfigMap pod.json: env HELPER_IMAGES item 2", 4, "data.pod.json > containers[0].env[0].value")],
    }


def test_config_map_lines_of_key_image_pairs(tmp_path: Path) -> None:
    found = list_images(context_with(tmp_path, """\
        kind: ConfigMap
        metadata: {name: rook-ceph-operator-config}
        data:
          ROOK_CSI_CEPH_IMAGE: "quay.io/cephcsi/cephcsi:v3.12.0"
          images.txt: |
            attacher=registry.k8s.io/sig-storage/csi-attacher:v4.6.1
            resizer=registry.k8s.io/sig-storage/csi-resizer:v1.11.1
    """))
    assert potential_of(found) == {
        "quay.io/cephcsi/cephcsi:v3.12.0": [("ConfigMap ROOK_CSI_CEPH_IMAGE", 4, "data.ROOK_CSI_CEPH_IMAGE")],
        "registry.k8s.io/sig-storage/csi-attacher:v4.6.1": [("ConfigMap images.txt line 1", 6, "data.images.txt")],
        "registry.k8s.io/sig-storage/csi-resizer:v1.11.1": [("ConfigMap images.txt line 2", 7, "data.images.txt")],
    }


# -- custom-resource parameters --------------------------------------------------------------

TEKTON_TASK = """\
apiVersion: tekton.dev/v1
kind: Task
metadata:
  name: buildah
spec:
  params:
  - name: IMAGE
    description: Reference of the image buildah will produce.
  - name: BUILDER_IMAGE
    description: The location of the buildah builder image.
    default: quay.io/buildah/stable:v1.35.4
  - name: baseImage
    default: registry.access.redhat.com/ubi9/ubi-minimal
  - name: STORAGE_DRIVER
    default: overlay
  - name: DOCKERFILE
    default: ./Dockerfile
  steps:
  - name: build-and-push
    image: $(params.BUILDER_IMAGE)
"""


def test_images_as_defaults_of_custom_resource_parameters(tmp_path: Path) -> None:
    found = list_images(context_with(tmp_path, TEKTON_TASK))
    assert not found.images and not found.invalid  # $(params.X) is no reference
    assert potential_of(found) == {
        "quay.io/buildah/stable:v1.35.4": [("CR parameter default: BUILDER_IMAGE", 11, "spec.params[1].default")],
        "registry.access.redhat.com/ubi9/ubi-minimal:latest": [
            ("CR parameter default: baseImage", 13, "spec.params[2].default")],
    }


def test_a_pipeline_passes_an_image_as_a_parameter_value(tmp_path: Path) -> None:
    found = list_images(context_with(tmp_path, """\
        apiVersion: tekton.dev/v1
        kind: Pipeline
        metadata: {name: build}
        spec:
          tasks:
          - name: lint
            taskRef: {name: golangci-lint}
            params:
            - {name: GOLANGCI_LINT_IMAGE, value: "docker.io/golangci/golangci-lint:v1.59.1"}
            - {name: flags, value: "--verbose"}
    """))
    assert potential_of(found) == {
        "docker.io/golangci/golangci-lint:v1.59.1": [
            ("CR parameter value: GOLANGCI_LINT_IMAGE", 9, "spec.tasks[0].params[0].value")],
    }


# -- noise -----------------------------------------------------------------------------------

KIND_REGISTRY_HOSTING = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: local-registry-hosting
  namespace: kube-public
data:
  localRegistryHosting.v1: |
    host: "localhost:5001"
    help: "https://kind.sigs.k8s.io/docs/user/local-registry/"
"""

REDIS_CLIENT = """\
apiVersion: v1
kind: Service
metadata: {name: my-release-redis}
spec: {ports: [{port: 6379}]}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: my-release-app}
data:
  REDIS_ADDR: my-release-redis:6379
  SENTINELS: "my-release-redis-node-0.my-release-redis:26379,my-release-redis-node-1.my-release-redis:26379"
  check: "tcp-check expect string role:master"
"""

AWS_AUTH = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: aws-auth, namespace: kube-system}
data:
  mapRoles: |
    - rolearn: arn:aws:iam::111122223333:role/node-role
      username: system:node:ip-10-0-1-23.ec2.internal
      groups:
        - system:bootstrappers
        - system:nodes
"""

ADMISSION_RBAC = """\
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "release-x:admission-controller"}
rules: []
---
apiVersion: v1
kind: ConfigMap
metadata: {name: release-x-config}
data:
  webhooks: "role=release-x:admission-controller"
"""

DASHBOARD = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: release-grafana-dashboards, labels: {grafana_dashboard: "1"}}
data:
  pods.json: |-
    {"panels": [{"title": "Memory", "targets": [
      {"expr": "sum(node_namespace_pod_container:container_memory_rss{cluster=\\"$cluster\\"}) by (pod)"},
      {"expr": "rate(apiserver_request:burnrate1h[5m])", "legendFormat": "tcp:50"}]}]}
---
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata: {name: release-rules}
spec:
  groups:
  - name: apiserver
    rules:
    - record: apiserver_request:burnrate6h
      expr: sum(rate(apiserver_request_total[6h]))
---
apiVersion: v1
kind: ConfigMap
metadata: {name: release-alerts}
data:
  alerts: "alert if apiserver_request:burnrate6h > 0.1"
"""


@pytest.mark.parametrize("text", [KIND_REGISTRY_HOSTING, REDIS_CLIENT, AWS_AUTH, ADMISSION_RBAC, DASHBOARD],
                         ids=["localhost-port", "service-port", "system-groups", "role-name", "promql"])
def test_noise_is_not_potential(tmp_path: Path, text: str) -> None:
    found = list_images(context_with(tmp_path, text))
    assert not found.potential and not found.images and not found.invalid and not found.warnings


@pytest.mark.parametrize(("written", "named", "names", "verdict"), [
    ("localhost:5001", False, RenderNames(), "host:port"),
    ("localhost:5001", True, RenderNames(), "host:port"),
    ("my-release-redis:6379", True, RenderNames(services=frozenset({"my-release-redis"})),
     "host:port (Service my-release-redis)"),
    ("db.default.svc:5432", False, RenderNames(), "host:port (a numeric tag on a bare name)"),
    ("tcp:50", False, RenderNames(), "host:port (a numeric tag on a bare name)"),
    ("postgres:16", True, RenderNames(), None),
    ("bitnami/redis:7", False, RenderNames(), None),
    ("system:nodes", True, RenderNames(), "RBAC name (system: prefix)"),
    ("release-x:admission-controller", True, RenderNames(rbac=frozenset({"release-x:admission-controller"})),
     "RBAC name in this render"),
    ("apiserver_request:burnrate6h", False, RenderNames(recording_rules=frozenset({"apiserver_request:burnrate6h"})),
     "recording rule in this render"),
    ("settings:config.yaml", True, RenderNames(config_map_keys={"settings": frozenset({"config.yaml"})}),
     "ConfigMap key"),
    ("role:master", False, RenderNames(), "word:word with no version"),
    ("timeout:30s", False, RenderNames(), "a quantity"),
    ("memory:512Mi", False, RenderNames(), "a quantity"),
    ("sha256:" + "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", False, RenderNames(),
     "a digest or checksum"),
    ("alpine:3.20", False, RenderNames(), None),
    ("nginx:latest", False, RenderNames(), None),
    ("nginx:alpine", True, RenderNames(), None),
])
def test_each_noise_rule_names_what_the_string_is(written: str, named: bool, names: RenderNames,
                                                  verdict: str | None) -> None:
    assert noise(Candidate(written, "test", named=named), names) == verdict


def test_a_promql_expression_is_seen_from_the_text_around_the_name() -> None:
    (candidate,) = text_candidates("sum(node_namespace_pod_container:container_memory_rss{a=\"b\"})", "x")
    assert candidate.expression
    assert noise(candidate, RenderNames()) == "PromQL expression"


@pytest.mark.parametrize(("name", "says"), [
    ("--engine-image", True), ("STRIMZI_KAFKA_IMAGES", True), ("gitInitImage", True), ("RELATED_IMAGE_X", True),
    ("--prometheus-config-reloader", False), ("DATABASE_HOST", False), ("imagination", False),
])
def test_names_that_say_image(name: str, says: bool) -> None:
    assert names_image(name) is says


# -- where the reason is shown ---------------------------------------------------------------


def test_the_reason_is_in_the_json_the_dataframe_the_text_and_why(tmp_path: Path) -> None:
    found = list_images(context_with(tmp_path, LONGHORN_MANAGER))
    engine = next(f for f in found.potential if "longhorn-engine" in str(f.image))
    assert engine.to_dict()["found_in"][0]["reason"] == "flag --engine-image"
    assert found.to_dict()["images"][0]["found_in"][0]["reason"] is None
    frame = found.to_dataframe(include=("potential",))
    assert sorted(frame["reason"]) == ["flag --engine-image", "flag --instance-manager-image"]
    assert str(engine.locations[0]).endswith("[flag --engine-image]")
    assert found.why("longhornio/longhorn-engine:v1.7.2")[0].reason == "flag --engine-image"
    assert Location("manifest", "a.yaml", 3).to_dict()["reason"] is None


def test_the_review_widget_has_the_reason(tmp_path: Path) -> None:
    from kubenb.widgets.review import ImageListReview  # noqa: PLC0415  (ipywidgets only here)

    context = context_with(tmp_path, LONGHORN_MANAGER)
    review = ImageListReview(list_images(context), context)
    frame = review.dataframe()
    reasons = set(frame[frame["kind"] == "potential"]["reason"])
    assert reasons == {"flag --engine-image", "flag --instance-manager-image"}
    (engine,) = [slot for slot in review.slots if slot.image and "longhorn-engine" in slot.image]
    assert "flag --engine-image" in engine.where.value  # the drawn "where found" cell


def test_a_config_map_value_that_is_no_yaml_is_read_as_text(tmp_path: Path) -> None:
    """A helper template that is broken YAML (a flow list never closed): no error, and its
    references are still found as text."""
    found = list_images(context_with(tmp_path, """\
        kind: ConfigMap
        metadata: {name: job-template}
        data:
          job.yaml: |
            spec:
              containers:
              - image: [quay.io/example/app:1.0
                args: [--sidecar, quay.io/example/sidecar:1.2]
    """))
    assert not found.invalid and not found.warnings
    assert potential_of(found) == {
        "quay.io/example/app:1.0": [("ConfigMap job.yaml line 3", 7, "data.job.yaml")],
        "quay.io/example/sidecar:1.2": [("ConfigMap job.yaml line 4", 8, "data.job.yaml")],
    }


def test_an_alias_bomb_in_a_config_map_value_is_not_expanded(tmp_path: Path) -> None:
    bomb = "a: &a [image, image, image, image, image, image, image, image, image]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
        f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n" for i in range(8))
    text = "kind: ConfigMap\nmetadata: {name: bomb}\ndata:\n  bomb.yaml: |\n" + textwrap.indent(bomb, "    ")
    found = list_images(context_with(tmp_path, text))
    assert not found.potential and not found.images


@pytest.mark.parametrize(("line", "named"), [
    ("image: nginx:alpine", True), ('{"sidecarImage": "nginx:alpine"}', True), ("agent_image=nginx:alpine", True),
    ('{"type": "image", "expr": "nginx:alpine"}', False), ("role: nginx:alpine", False),
])
def test_a_line_names_an_image_by_the_key_right_before_the_value(line: str, named: bool) -> None:
    (candidate,) = text_candidates(line, "ConfigMap x")
    assert candidate.named is named
