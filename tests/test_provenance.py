"""Every provenance line comes from the YAML parser and points at the value it names.

Discovery reports ``file:line`` for each image; the line must hold the value as written, at
its key (``image: nginx``), not the first line where the same text happens to appear (a
``name: nginx`` above it). Checked on every corpus input, and on the cases that fooled the
text search it replaced. Discovery also leaves the process-wide garbage collector alone: in a
notebook it belongs to the user's kernel.
"""

from __future__ import annotations

import gc
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kubenb.discover import clear_memo, context_images
from kubenb.discover.charts import charts_in, render_chart
from kubenb.kubefile import plan_build
from kubenb.model import ImageList, Location
from tests.support.corpus import CORPUS, context_for, expected_cases, load_expected, peer_cases


def all_locations(found: ImageList) -> Iterator[Location]:
    for group in (found.images, found.potential, found.test):
        for image in group:
            yield from image.locations
    yield from (invalid.location for invalid in found.invalid)


def rendered_templates(context: Path) -> dict[tuple[str | None, str], str]:
    """Each rendered template's text, by the chart and the template a location names (two
    charts may be one chart with two values files: same template names)."""
    files = {p.relative_to(context / "charts").as_posix(): p for p in (context / "charts").rglob("*") if p.is_file()}
    return {(r.chart, r.template): r.text for source in charts_in(files) for r in render_chart(source)}


def text_of(location: Location, folder: Path, templates: dict[tuple[str | None, str], str]) -> str:
    """The text a location's line counts in: the manifest, or the rendered template."""
    if location.source == "manifest":
        return (folder / location.file).read_text()
    assert location.source == "chart" and (location.chart, location.file) in templates, location
    return templates[location.chart, location.file]


def last_key(path: str) -> str | None:
    """The mapping key that holds the value (``image`` of ``...containers[0].image``); None for
    a list item (``args[2]``)."""
    return None if path.endswith("]") else path.rsplit(".", 1)[-1]


def assert_line_holds_value(location: Location, lines: list[str]) -> None:
    assert location.line is not None and 1 <= location.line <= len(lines), location
    line = lines[location.line - 1]
    written = location.written
    if location.path and location.path.startswith("spec.ref."):  # OCIRepository: url + ":" + tag
        written = written.rsplit("@" if location.path.endswith("digest") else ":", 1)[-1]
    if location.path == "spec.url":  # OCIRepository without a tag: url + ":latest"
        written = written.removesuffix(":latest")
    assert written in line, (str(location), line)
    key = last_key(location.path or "")
    if (location.path or "").startswith("data.") or re.search(r" line \d+$", location.reason or ""):
        return  # a piece of a multi-line value: the line holds it (above), under no key of the outer file
    if key is None:
        assert re.match(r"""\s*(?:- |["'])""", line), (str(location), line)  # a list item
    else:
        assert re.search(rf"""(?:^|[\s{{,"'-]){re.escape(key)}["']?\s*:""", line), (str(location), line)


@pytest.mark.parametrize("case", expected_cases(), ids=lambda p: p.stem)
def test_every_corpus_location_is_the_line_of_its_value(case: Path, tmp_path: Path) -> None:
    expected = load_expected(case)
    context = context_for(expected, tmp_path / "context")
    found = context_images(plan_build(context))
    templates = rendered_templates(context) if expected["source"].startswith("charts/") else {}
    located = 0
    for location in all_locations(found):
        assert_line_holds_value(location, text_of(location, context, templates).splitlines())
        located += 1
    assert located >= len(found.images)


@pytest.mark.parametrize("case", peer_cases(), ids=lambda p: p.name)
def test_every_peer_case_location_is_the_line_of_its_value(case: Path) -> None:
    """The peers' own test inputs too (zarf, sealer): flux OCIRepository, image volumes..."""
    if load_expected(case / "expected.json")["error"]:
        pytest.skip("the case is broken YAML (tests/test_discovery_corpus.py checks its error)")
    found = context_images(plan_build(case))
    templates = rendered_templates(case) if (case / "charts").is_dir() else {}
    for location in all_locations(found):
        assert_line_holds_value(location, text_of(location, case, templates).splitlines())


NAME_THEN_IMAGE = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: nginx
spec:
  template:
    spec:
      containers:
      - name: nginx
        image: nginx
      - name: sidecar
        image: "nginx"
"""


def test_image_named_like_its_container_is_reported_at_the_image_line(tmp_path: Path) -> None:
    """The text search this replaced reported both images at line 4, ``name: nginx``."""
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "web.yaml").write_text(NAME_THEN_IMAGE)
    (nginx,) = context_images(plan_build(tmp_path)).images
    assert [(loc.file, loc.line, loc.path) for loc in nginx.locations] == [
        ("manifests/web.yaml", 10, "spec.template.spec.containers[0].image"),
        ("manifests/web.yaml", 12, "spec.template.spec.containers[1].image"),
    ]


ALIASES_AND_MERGES = """\
kind: Pod
metadata: {name: p}
x-defaults: &defaults
  image: busybox:1.36
  imagePullPolicy: IfNotPresent
spec:
  containers:
  - <<: *defaults
    name: a
  - name: busybox:1.36
    image:
      busybox:1.36
"""


def test_lines_follow_aliases_merges_and_values_on_the_next_line(tmp_path: Path) -> None:
    """A merged value is reported where it is written (the anchor), a value under its key on
    the next line, and neither at an earlier line that merely holds the same text."""
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "pod.yaml").write_text(ALIASES_AND_MERGES)
    (busybox,) = context_images(plan_build(tmp_path)).images
    assert [(loc.line, loc.path) for loc in busybox.locations] == [
        (4, "spec.containers[0].image"), (12, "spec.containers[1].image"), (4, "x-defaults.image"),
    ]


def test_a_list_kind_locates_each_item(tmp_path: Path) -> None:
    text = ("kind: List\nitems:\n- kind: Pod\n  spec:\n    containers:\n    - {name: a, image: 'redis:7'}\n"
            "- kind: Pod\n  spec: {containers: [{name: redis:7,\n    image: redis:7}]}\n")
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "list.yaml").write_text(text)
    (redis,) = context_images(plan_build(tmp_path)).images
    assert [(loc.line, loc.path) for loc in redis.locations] == [
        (6, "items[0].spec.containers[0].image"), (9, "items[1].spec.containers[0].image"),
    ]


CONFIG_MAP = """\
kind: ConfigMap
metadata: {name: settings, annotations: {note: "runs ghcr.io/team/app:1.4"}}
data:
  images.txt: |
    # the sidecar: quay.io/team/agent:2.0 (see below)
    sidecar=quay.io/team/agent:2.0
    main=ghcr.io/team/app:1.4
  other: ghcr.io/team/app:1.4
"""


def test_a_token_in_a_config_map_value_is_on_the_line_inside_that_value(tmp_path: Path) -> None:
    """A potential image inside a block scalar: the value's first line that holds it, not the
    key's line, nor an annotation above that merely mentions it."""
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "cm.yaml").write_text(CONFIG_MAP)
    found = context_images(plan_build(tmp_path))
    lines = {str(f.image): [(loc.line, loc.path) for loc in f.locations] for f in found.potential}
    assert lines == {
        "quay.io/team/agent:2.0": [(5, "data.images.txt")],
        "ghcr.io/team/app:1.4": [(7, "data.images.txt"), (8, "data.other")],
    }


EMBEDDED = """\
kind: ConfigMap
metadata: {name: helper}
data:
  helperPod.yaml: |-
    apiVersion: v1
    kind: Pod
    metadata:
      name: helper-pod
    spec:
      containers:
      - name: busybox
        image: busybox
---
kind: Deployment
metadata: {name: op}
spec:
  template:
    spec:
      containers:
      - name: op
        image: op:1
        env:
        - name: KAFKA_IMAGES
          value: |
            3.9.0=quay.io/strimzi/kafka:0.45.0-kafka-3.9.0
            4.0.0=quay.io/strimzi/kafka:0.46.0-kafka-4.0.0
"""


def test_an_image_inside_a_literal_value_is_at_the_line_its_own_parser_gives(tmp_path: Path) -> None:
    """A pod spec embedded in a ConfigMap: the line of its ``image:`` as the embedded document's
    node tree places it (not the ``name: busybox`` line above, which a text search would give);
    an env list of ``version=image`` lines: the line of each."""
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "op.yaml").write_text(EMBEDDED)
    found = context_images(plan_build(tmp_path))
    lines = {str(f.image): [loc.line for loc in f.locations] for f in found.potential}
    assert lines == {
        "docker.io/library/busybox:latest": [12],
        "quay.io/strimzi/kafka:0.45.0-kafka-3.9.0": [25],
        "quay.io/strimzi/kafka:0.46.0-kafka-4.0.0": [26],
    }


IMAGES = ["nginx", "nginx:1.27", "redis:7", "quay.io/a/b:1"]
#: How an image value may be written: (lines after "image:", written on the key's line or the next).
STYLES = ["plain", "double", "single", "next line", "flow"]


@st.composite
def pod_specs(draw: st.DrawFn) -> tuple[str, list[tuple[int, str]]]:
    """A Deployment whose containers are named like images, with comments and env values that
    repeat the images above each one; returns the text and each container's (line, image)."""
    lines = ["apiVersion: apps/v1", "kind: Deployment", f"metadata: {{name: {draw(st.sampled_from(IMAGES))}}}",
             "spec:", "  template:", "    spec:", "      containers:"]
    expected = []
    for _ in range(draw(st.integers(1, 4))):
        name, image, style = draw(st.sampled_from(IMAGES)), draw(st.sampled_from(IMAGES)), draw(st.sampled_from(STYLES))
        if draw(st.booleans()):
            lines.append(f"      # {image} comes next")
        if style == "flow":
            lines.append(f"      - {{name: '{name}', env: [{{name: X, value: '{image}'}}], image: {image}}}")
            expected.append((len(lines), image))
            continue
        lines.append(f"      - name: {name}")
        if draw(st.booleans()):
            lines += ["        env:", "        - name: IMAGE", f"          value: {image}"]
        quoted = {"double": f'"{image}"', "single": f"'{image}'"}.get(style, image)
        if style == "next line":
            lines += ["        image:", f"          {image}"]
        else:
            lines.append(f"        image: {quoted}")
        expected.append((len(lines), image))
    return "\n".join(lines) + "\n", expected


@settings(max_examples=150, deadline=None)
@given(pod_specs())
def test_each_container_image_is_at_its_own_line_whatever_surrounds_it(case: tuple[str, list[tuple[int, str]]]) -> None:
    text, expected = case
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "manifests").mkdir()
        (Path(folder) / "manifests" / "d.yaml").write_text(text)
        found = context_images(plan_build(Path(folder)))
    located = sorted((loc.line, loc.written) for f in found.images for loc in f.locations
                     if loc.path and loc.path.endswith("].image"))
    assert located == sorted(expected), text


def test_lines_are_counted_as_editors_count_them(tmp_path: Path) -> None:
    """PyYAML counts U+2028 and NEL as line breaks; an editor, and every error message, count
    "\\n" only (CRLF is one break)."""
    text = ('kind: Pod\r\nmetadata: {name: p, annotations: {a: "one\u2028two\u2029three\x85four"}}\r\n'
            "spec:\r\n  containers:\r\n  - image: alpine:3.20\r\n")
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "pod.yaml").write_bytes(text.encode())
    (alpine,) = context_images(plan_build(tmp_path)).images
    assert [loc.line for loc in alpine.locations] == [5]


OCI_REPOSITORIES = """\
apiVersion: v1
kind: List
items:
- apiVersion: source.toolkit.fluxcd.io/v1
  kind: OCIRepository
  metadata: {name: tagged}
  spec:
    url: oci://ghcr.io/x/tagged
    ref:
      tag: "1.0"
---
apiVersion: source.toolkit.fluxcd.io/v1
kind: OCIRepository
metadata: {name: pinned}
spec: {url: "oci://ghcr.io/x/pinned", ref: {tag: "2.0",
  digest: "sha256:fc60d367cc05bedae04d6030e270daa89c3d82fa18b1a155314102b2fca39652"}}
---
apiVersion: source.toolkit.fluxcd.io/v1
kind: OCIRepository
metadata:
  name: implied
spec:
  interval: 5m
  url: oci://ghcr.io/x/implied
---
apiVersion: source.toolkit.fluxcd.io/v1
kind: OCIRepository
metadata:
  name: ranged
spec:
  url: oci://ghcr.io/x/ranged
  ref: {semver: ">=1.0.0", tag: "3.0"}
"""


def test_a_flux_oci_repository_is_located_at_the_value_that_picks_the_artifact(tmp_path: Path) -> None:
    """The tag's or digest's line (the digest wins, as in Flux); with no tag, Flux pulls
    `latest`, and the location is the url's line. A semver range is resolved at run time."""
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "flux.yaml").write_text(OCI_REPOSITORIES)
    found = context_images(plan_build(tmp_path))
    located = {str(f.image): [(loc.line, loc.path) for loc in f.locations] for f in found.images}
    assert located == {
        "ghcr.io/x/tagged:1.0": [(10, "items[0].spec.ref.tag")],
        "ghcr.io/x/pinned@sha256:fc60d367cc05bedae04d6030e270daa89c3d82fa18b1a155314102b2fca39652":
            [(16, "spec.ref.digest")],
        "ghcr.io/x/implied:latest": [(24, "spec.url")],
    }
    assert not found.potential and not found.invalid


def test_discovery_never_turns_the_garbage_collector_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """In a notebook, gc belongs to the user's kernel: parsing neither disables nor freezes it,
    and collections run while the corpus manifests are parsed."""
    def refuse(*_: object) -> None:
        raise AssertionError("discovery touched the process-wide garbage collector")

    for name in ("disable", "freeze", "set_threshold"):
        monkeypatch.setattr(gc, name, refuse)
    collections: list[bool] = []

    def watch(phase: str, _info: dict[str, int]) -> None:
        if phase == "start":
            collections.append(gc.isenabled())

    (tmp_path / "manifests").mkdir()
    for source in sorted((CORPUS / "manifests").iterdir()):
        (tmp_path / "manifests" / source.name).write_bytes(source.read_bytes())
    clear_memo()
    gc.callbacks.append(watch)
    try:
        found = context_images(plan_build(tmp_path))
    finally:
        gc.callbacks.remove(watch)
    assert found.images and gc.isenabled()
    assert collections and all(collections)
