"""The BuildPlan: the Kubefile read once per preview or build, COPY resolved in the context once.

The plan is checked on its own (what goes where, errors kept per COPY with their line), then at
the boundary: a real Kubefile on disk and a counter of the opens of its path, around
``list_images``, the ``%%kubefile`` preview and ``build``; and a plan built after the Kubefile
changed on disk builds what was planned.
"""

from __future__ import annotations

import builtins
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell

from kubenb import list_images
from kubenb.builders import BuildOptions, build
from kubenb.engine import list_plan_images
from kubenb.errors import BuildError, KubefileError
from kubenb.kubefile import STANDARD_FOLDERS, BuildPlan, plan_build
from kubenb.store import Store

POD = "kind: Pod\nspec:\n  containers:\n  - image: {image}\n"


def write(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return folder


def relative(plan: BuildPlan) -> dict[str, str]:
    """The plan's rootfs as rootfs path -> path in the context, for readable assertions."""
    context = plan.context.resolve()
    return {name: host.relative_to(context).as_posix() for name, host in plan.rootfs_files().items()}


# -- the plan itself ------------------------------------------------------------------------------

CONTEXT = {"imageList": "busybox:1.36\n", "dashboard.yaml": POD.format(image="nginx:1.25"),
           "registry_config.yaml": "version: 0.1\n", "apollo/Chart.yaml": "name: apollo\n",
           "apollo/templates/pod.yaml": POD.format(image="x:1"), "a.yaml": "", "b.yaml": ""}


@pytest.mark.parametrize(("copies", "expected"), [
    # the seed's examples (docs/kubefile.md#copy): a standard folder takes the source inside
    ("COPY imageList manifests", {"manifests/imageList": "imageList"}),
    ("COPY apollo charts", {"charts/apollo/Chart.yaml": "apollo/Chart.yaml",
                            "charts/apollo/templates/pod.yaml": "apollo/templates/pod.yaml"}),
    ("COPY registry_config.yaml etc/registry_config.yaml", {"etc/registry_config.yaml": "registry_config.yaml"}),
    # DEST is a new name unless it ends in / or there are several sources
    ("COPY a.yaml manifests/renamed.yaml", {"manifests/renamed.yaml": "a.yaml"}),
    ("COPY a.yaml extra/", {"extra/a.yaml": "a.yaml"}),
    ("COPY a.yaml b.yaml extra", {"extra/a.yaml": "a.yaml", "extra/b.yaml": "b.yaml"}),
    ("COPY ?.yaml manifests/", {"manifests/a.yaml": "a.yaml", "manifests/b.yaml": "b.yaml"}),
    ("COPY a.yaml .", {"a.yaml": "a.yaml"}),
    ("COPY a.yaml /", {"a.yaml": "a.yaml"}),
    # a folder an earlier COPY made is a folder: the next COPY goes into it
    ("COPY a.yaml conf/a.yaml\nCOPY b.yaml conf", {"conf/a.yaml": "a.yaml", "conf/b.yaml": "b.yaml"}),
])
def test_copy_puts_each_source_where_docs_kubefile_md_says(tmp_path: Path, copies: str, expected: dict) -> None:
    write(tmp_path, {**CONTEXT, "Kubefile": f"FROM scratch\n{copies}\n"})
    assert relative(plan_build(tmp_path)) == expected


def test_the_plan_holds_the_expanded_kubefile_its_arguments_and_base(tmp_path: Path) -> None:
    write(tmp_path, {**CONTEXT, "Kubefile": "ARG BASE=kubernetes:v1\nARG DIR=manifests\nFROM ${BASE}\n"
                                            "COPY imageList ${DIR}/\n"})
    given = {"DIR": "etc"}
    plan = plan_build(tmp_path, build_args=given)
    given["DIR"] = "charts"  # the caller's dict is not the plan's
    assert plan.context == tmp_path and plan.path == tmp_path / "Kubefile"
    assert plan.base == "kubernetes:v1"
    assert dict(plan.build_args) == {"DIR": "etc"}
    with pytest.raises(TypeError):
        plan.build_args["DIR"] = "x"  # type: ignore[index]
    assert plan.require_kubefile().instructions[-1].args == "imageList etc/"
    (step,) = plan.copies
    assert (step.line, step.target, step.into) == (4, "etc", True)
    assert relative(plan) == {"etc/imageList": "imageList"}
    assert plan_build(tmp_path, tmp_path / "Kubefile").base == "kubernetes:v1"


def test_from_scratch_has_no_base(tmp_path: Path) -> None:
    write(tmp_path, {"Kubefile": "FROM scratch\n"})
    plan = plan_build(tmp_path)
    assert (plan.base, plan.copies, plan.rootfs_files()) == (None, (), {})


def test_a_context_without_kubefile_is_a_rootfs_as_it_is_and_cannot_be_built(tmp_path: Path) -> None:
    write(tmp_path, {"manifests/pod.yaml": POD.format(image="nginx:1.25")})
    plan = plan_build(tmp_path)
    assert (plan.kubefile, plan.path, plan.base, plan.copies) == (None, None, None, ())
    with pytest.raises(BuildError, match=r"has no Kubefile") as caught:
        plan.require_kubefile()
    assert caught.value.hint == "write one there, or name it with -f"
    assert [str(f.image) for f in list_plan_images(plan).images] == ["docker.io/library/nginx:1.25"]


def test_a_named_kubefile_that_is_missing_is_an_error_at_once(tmp_path: Path) -> None:
    with pytest.raises(KubefileError, match=r"cannot read the Kubefile"):
        plan_build(tmp_path, tmp_path / "Kubefile.missing")


@pytest.mark.parametrize(("copy", "message"), [
    ("COPY nothere.yaml manifests", r"COPY source 'nothere.yaml' is not in the build context"),
    ("COPY ../secret manifests", r"COPY source '../secret' is outside the build context"),
    ("COPY /etc/passwd manifests", r"COPY source '/etc/passwd' is outside the build context"),
    ("COPY a.yaml ../../out", r"COPY destination '../../out' leaves the cluster rootfs"),
    ("COPY *.nothing manifests", r"COPY source '\*.nothing' is not in the build context"),
])
def test_a_copy_that_cannot_be_done_keeps_its_error_with_its_line(tmp_path: Path, copy: str, message: str) -> None:
    """Kept, not raised by plan_build: a build raises it when it reaches the step (after the RUN
    that may explain it), a preview when it reads the rootfs."""
    write(tmp_path, {**CONTEXT, "Kubefile": f"FROM scratch\nCOPY a.yaml manifests\n{copy}\nCOPY b.yaml manifests\n"})
    plan = plan_build(tmp_path)
    good, bad, later = plan.copies
    assert good.problem is None and later.problem is None
    assert bad.problem is not None and bad.problem.line == 3 and bad.problem.file == str(tmp_path / "Kubefile")
    with pytest.raises(BuildError, match=message) as caught:
        plan.rootfs_files()
    assert caught.value is bad.problem
    assert f"Kubefile:3: {caught.value.message}" in str(caught.value)


def test_errors_come_in_kubefile_order(tmp_path: Path) -> None:
    write(tmp_path, {**CONTEXT, "Kubefile": "FROM scratch\nCOPY first.yaml manifests\nCOPY ../second manifests\n"})
    with pytest.raises(BuildError, match=r"'first\.yaml' is not in the build context") as caught:
        list_images(tmp_path)
    assert caught.value.line == 2


def test_a_symlink_out_of_the_context_is_refused(tmp_path: Path) -> None:
    context = write(tmp_path / "context", {"Kubefile": "FROM scratch\nCOPY link manifests\nCOPY tree charts\n"})
    write(tmp_path, {"secret": "x", "context/tree/ok.yaml": ""})
    (context / "link").symlink_to(tmp_path / "secret")
    (context / "tree" / "out").symlink_to(tmp_path / "secret")
    link, tree = plan_build(context).copies
    assert link.problem is not None and "'link' is outside the build context" in link.problem.message
    assert tree.problem is not None
    assert tree.problem.message == f"{context / 'tree' / 'out'} links outside the build context"


def test_whether_dest_is_a_folder_is_asked_of_the_rootfs_at_that_step(tmp_path: Path) -> None:
    """Only that depends on what a base image or a RUN put in the rootfs: the reader answers it."""
    write(tmp_path, {**CONTEXT, "Kubefile": "FROM scratch\nCOPY a.yaml opt\n"})
    (step,) = plan_build(tmp_path).copies
    asked: list[str] = []
    assert step.files(lambda target: asked.append(target) or False) == {"opt": tmp_path.resolve() / "a.yaml"}
    assert step.files(lambda target: True) == {"opt/a.yaml": tmp_path.resolve() / "a.yaml"}
    assert asked == ["opt"]
    write(tmp_path, {"Kubefile": "FROM scratch\nCOPY a.yaml manifests\n"})
    (standard,) = plan_build(tmp_path).copies  # a standard folder is one whatever the answer
    assert standard.files(lambda target: False) == {"manifests/a.yaml": tmp_path.resolve() / "a.yaml"}
    assert set(STANDARD_FOLDERS) == {"manifests", "charts", "etc", "registry"}


def test_copy_sources_are_resolved_once_when_the_plan_is_made(tmp_path: Path) -> None:
    """A file added to a copied folder, or matching a glob, after the plan is not in it: what
    the preview showed is what is built."""
    write(tmp_path, {**CONTEXT, "Kubefile": "FROM scratch\nCOPY apollo charts\nCOPY *.yaml manifests/\n"})
    plan = plan_build(tmp_path)
    before = relative(plan)
    write(tmp_path, {"apollo/templates/late.yaml": "", "late.yaml": ""})
    assert relative(plan) == before
    assert "charts/apollo/templates/late.yaml" in relative(plan_build(tmp_path))


# -- the Kubefile is read once per preview and per build ------------------------------------------


@pytest.fixture
def kubefile_reads(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[Path, int]]:
    """How many times each path was opened for reading, through os.open or open()."""
    counts: dict[Path, int] = {}
    real_os_open, real_open = os.open, io.open

    def os_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if not flags & (os.O_WRONLY | os.O_RDWR):
            key = Path(os.fsdecode(path)).absolute()
            counts[key] = counts.get(key, 0) + 1
        return real_os_open(path, flags, *args, **kwargs)

    def open_(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if isinstance(file, (str, bytes, os.PathLike)) and not set(mode) & set("wax+"):
            key = Path(os.fsdecode(file)).absolute()
            counts[key] = counts.get(key, 0) + 1
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(os, "open", os_open)
    monkeypatch.setattr(io, "open", open_)
    monkeypatch.setattr(builtins, "open", open_)
    yield counts


#: A Kubefile with a base image (whose images a preview lists), build arguments and COPY.
PREVIEWED = "ARG DIR=manifests\nFROM kubernetes:v1\nCOPY pod.yaml ${DIR}/\n"


def preview_context(folder: Path) -> Path:
    return write(folder, {"Kubefile": PREVIEWED, "pod.yaml": POD.format(image="nginx:1.25")})


def test_list_images_reads_the_kubefile_once(tmp_path: Path, kubefile_reads: dict[Path, int]) -> None:
    context = preview_context(tmp_path / "context")
    found = list_images(context, root=tmp_path / "store", build_args={"DIR": "manifests"})
    assert [str(f.image) for f in found.images] == ["docker.io/library/nginx:1.25"]
    assert "the base image kubernetes:v1 is not in the store" in found.warnings[0]  # the base was looked at
    assert kubefile_reads[(context / "Kubefile").absolute()] == 1


def test_the_kubefile_cell_preview_reads_the_kubefile_once(tmp_path: Path, kubefile_reads: dict[Path, int]) -> None:
    context = preview_context(tmp_path / "context")
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "kubenb")
    outcome = shell.run_cell(f"%%kubefile --context {context} --root {tmp_path / 'store'} --out plan\n{PREVIEWED}")
    assert outcome.error_in_exec is None and outcome.error_before_exec is None
    plan = shell.user_ns.pop("plan")
    assert [str(f.image) for f in plan.image_list.images] == ["docker.io/library/nginx:1.25"]
    assert kubefile_reads[(context / "Kubefile").absolute()] == 1  # the cell writes it, then reads it once


def build_context(folder: Path) -> Path:
    return write(folder, {"Kubefile": "FROM scratch\nCOPY a.yaml manifests/\n", "a.yaml": "kind: ConfigMap\n"})


def test_a_build_reads_the_kubefile_once(tmp_path: Path, kubefile_reads: dict[Path, int]) -> None:
    context = build_context(tmp_path / "context")
    image = build(BuildOptions(tag="once:1", context=context, kubefile=context / "Kubefile"),
                  store=Store(tmp_path / "store"))
    assert image.annotations["io.kubenb.kubefile"] == "FROM scratch\nCOPY a.yaml manifests/\n"
    assert kubefile_reads[(context / "Kubefile").absolute()] == 1


def test_a_plan_builds_as_planned_whatever_the_kubefile_on_disk_says_later(
        tmp_path: Path, kubefile_reads: dict[Path, int]) -> None:
    """One plan for the preview and the build: changing the Kubefile between them changes
    nothing that is built (and the build does not read it again)."""
    context = build_context(tmp_path / "context")
    write(context, {"b.yaml": "kind: Secret\n"})
    plan = plan_build(context)
    assert list_plan_images(plan).images == ()
    (context / "Kubefile").write_text("FROM scratch\nCOPY b.yaml etc/\nLABEL changed=yes\n")
    kubefile = (context / "Kubefile").absolute()
    reads = kubefile_reads[kubefile]
    store = Store(tmp_path / "store")
    image = build(BuildOptions(tag="planned:1", context=context, kubefile=context / "Kubefile", plan=plan),
                  store=store)
    assert kubefile_reads[kubefile] == reads  # no Kubefile read during the build
    assert image.annotations["io.kubenb.kubefile"] == "FROM scratch\nCOPY a.yaml manifests/\n"
    assert "changed" not in image.labels
    store.export("planned:1", tmp_path / "out")
    assert (tmp_path / "out" / "manifests" / "a.yaml").read_text() == "kind: ConfigMap\n"
    assert not (tmp_path / "out" / "etc" / "b.yaml").exists()


def test_the_cell_builds_what_it_previewed(tmp_path: Path, kubefile_reads: dict[Path, int]) -> None:
    """docs/jupyter.md: Build takes the cell's reading of the Kubefile, not the file as it is now."""
    context = build_context(tmp_path / "context")
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "kubenb")
    outcome = shell.run_cell(f"%%kubefile --context {context} --root {tmp_path / 'store'} -t cell:1 --out plan\n"
                             "FROM scratch\nCOPY a.yaml manifests/\n")
    assert outcome.error_in_exec is None and outcome.error_before_exec is None
    plan = shell.user_ns.pop("plan")
    (context / "Kubefile").write_text("FROM scratch\nLABEL changed=yes\n")
    image = plan.build(progress="none")
    assert image.annotations["io.kubenb.kubefile"] == "FROM scratch\nCOPY a.yaml manifests/\n"
    assert "changed" not in image.labels
    assert kubefile_reads[(context / "Kubefile").absolute()] == 1


def test_a_build_from_a_plan_without_kubefile_is_one_clear_error(tmp_path: Path) -> None:
    write(tmp_path / "context", {"manifests/a.yaml": ""})
    store = Store(tmp_path / "store")
    with pytest.raises(BuildError, match=r"the build context .* has no Kubefile"):
        build(BuildOptions(tag="none:1", context=tmp_path / "context", plan=plan_build(tmp_path / "context")),
              store=store)
    assert store.images() == []


# -- DEST that is an empty folder of the rootfs --------------------------------------------------


def test_copy_into_an_empty_folder_a_run_made_goes_inside_it(tmp_path: Path) -> None:
    """docs/kubefile.md: "a folder that already exists" takes the source inside. The view of the
    rootfs that decided it used to list files only, so an empty folder was taken for a new name
    and the copy failed with IsADirectoryError (a traceback)."""
    context = write(tmp_path / "context", {"Kubefile": "FROM scratch\nRUN mkdir opt\nCOPY a.yaml opt\n",
                                           "a.yaml": "kind: ConfigMap\n"})
    store = Store(tmp_path / "store")
    build(BuildOptions(tag="empty:1", context=context, kubefile=context / "Kubefile"), store=store)
    store.export("empty:1", tmp_path / "out")
    assert (tmp_path / "out" / "opt" / "a.yaml").read_text() == "kind: ConfigMap\n"
    assert json.loads(store.get("empty:1").annotations["io.kubenb.images"]) == {}
