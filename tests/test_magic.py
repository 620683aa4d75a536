"""The %%kubefile and %kubenb magics in a real IPython shell."""

from __future__ import annotations

import _thread
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas
import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from kubenb.demo import DemoRegistry
from kubenb.errors import KubefileError
from kubenb.magic import Plan
from kubenb.model import ClusterImage
from kubenb.store import Store

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  template:
    spec:
      containers:
      - name: web
        image: nginx:1.25
        env:
        - {name: SIDECAR, value: "quay.io/org/helper:2.0"}
"""


@pytest.fixture
def shell() -> Iterator[InteractiveShell]:
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "kubenb")
    ip.run_line_magic("config", "KubenbMagics.full_traceback = False")
    ip.run_line_magic("config", "KubenbMagics.root = ''")
    ip.run_line_magic("config", "KubenbMagics.progress = 'auto'")
    yield ip
    ip.user_ns.pop("plan", None)


@pytest.fixture
def context(tmp_path: Path) -> Path:
    folder = tmp_path / "context"
    folder.mkdir()
    (folder / "imageList").write_text("busybox:1.36\n")
    (folder / "web.yaml").write_text(DEPLOYMENT)
    return folder


def run(shell: InteractiveShell, text: str) -> Any:
    """Run a cell; return its result, or raise the error the cell failed with."""
    outcome = shell.run_cell(text)
    if outcome.error_before_exec is not None:
        raise outcome.error_before_exec
    if outcome.error_in_exec is not None:
        raise outcome.error_in_exec
    return outcome.result


BODY = "FROM scratch\nCOPY imageList manifests\nCOPY web.yaml manifests\n"


def test_the_preview_writes_the_kubefile_and_shows_the_plan_with_no_other_side_effect(
        shell: InteractiveShell, context: Path, tmp_path: Path) -> None:
    root = tmp_path / "store"
    plan = run(shell, f"%%kubefile --context {context} --root {root}\n{BODY}")
    assert isinstance(plan, Plan)
    assert (context / "Kubefile").read_text() == BODY
    assert list(plan.images["image"]) == ["docker.io/library/busybox:1.36", "docker.io/library/nginx:1.25"]
    assert list(plan.images["source"]) == ["imageList", "manifest"]
    assert list(plan.potential["image"]) == ["quay.io/org/helper:2.0"]
    assert [i.line for i in plan.kubefile.instructions] == [1, 2, 3]
    html = plan._repr_html_()
    assert "COPY web.yaml manifests" in html and "docker.io/library/nginx:1.25" in html and "Potential" in html
    assert not root.exists()  # nothing built, nothing pulled, no store made
    assert sorted(p.name for p in context.iterdir()) == ["Kubefile", "imageList", "web.yaml"]


def test_output_variable_and_kubefile_name(shell: InteractiveShell, context: Path) -> None:
    assert run(shell, f"%%kubefile --context {context} --out plan -f Kubefile.lite\n{BODY}") is None
    plan = shell.user_ns["plan"]
    assert plan.kubefile.path == str(context / "Kubefile.lite") or Path(plan.kubefile.path) == context / "Kubefile.lite"
    assert (context / "Kubefile.lite").read_text() == BODY and not (context / "Kubefile").exists()


def test_placeholders_come_from_the_notebook_and_an_unknown_one_names_its_line(
        shell: InteractiveShell, context: Path) -> None:
    shell.user_ns["version"] = "1.37"
    shell.user_ns["target"] = str(context)
    run(shell, "%%kubefile --context {{target}} --out plan\nFROM scratch\nARG V={{ version }}\nLABEL v=$V\n")
    assert "ARG V=1.37" in (context / "Kubefile").read_text()
    assert "LABEL v=1.37" in [i.to_text() for i in shell.user_ns["plan"].kubefile.instructions]
    with pytest.raises(UsageError, match=r"Kubefile:2: \{\{missing\}\} names no variable"):
        run(shell, f"%%kubefile --context {context}\nFROM scratch\nLABEL a={{{{missing}}}}\n")


def test_a_bad_kubefile_fails_the_cell_with_its_line_and_no_traceback(
        shell: InteractiveShell, context: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(UsageError) as caught:
        run(shell, f"%%kubefile --context {context}\nFROM scratch\nFORM scratch\n")
    assert str(caught.value) == f"{context / 'Kubefile'}:2: unknown instruction FORM, did you mean FROM?"
    shown = capsys.readouterr()
    assert "Traceback" not in shown.out + shown.err
    shell.run_line_magic("config", "KubenbMagics.full_traceback = True")
    with pytest.raises(KubefileError):
        run(shell, f"%%kubefile --context {context}\nFORM scratch\n")


def test_bad_options_fail_the_cell_with_one_line(shell: InteractiveShell, context: Path) -> None:
    with pytest.raises(UsageError, match="--progress: invalid choice"):
        run(shell, f"%%kubefile --context {context} --progress loud\nFROM scratch\n")
    with pytest.raises(UsageError, match="no such folder"):
        run(shell, f"%%kubefile --context {context / 'nope'}\nFROM scratch\n")
    with pytest.raises(UsageError, match="a password never goes on the magic line"):
        run(shell, "%kubenb login 127.0.0.1:5000 -u me -p hunter2")
    with pytest.raises(UsageError, match="invalid choice: 'nope'"):
        run(shell, "%kubenb nope")


@pytest.fixture(scope="module")
def source() -> Iterator[DemoRegistry]:
    with DemoRegistry(["busybox:1.36", "nginx:1.25"]) as registry:
        yield registry


def test_build_then_kubenb_images_and_inspect(shell: InteractiveShell, context: Path, tmp_path: Path,
                                               source: DemoRegistry, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "store"
    mirror = f"--registry-mirror docker.io={source.host}"
    image = run(shell, f"%%kubefile --context {context} --root {root} -t web:1 --build --progress text {mirror}\n"
                       f"{BODY}")
    assert image.name == "web:1"
    assert set(json.loads(image.annotations["io.kubenb.images"])) == {
        "docker.io/library/busybox:1.36", "docker.io/library/nginx:1.25"}
    assert "Step 3/3: COPY web.yaml manifests" in capsys.readouterr().out
    assert run(shell, f"%kubenb images --root {root} -o json") is None  # a format asked for: the CLI's text
    assert json.loads(capsys.readouterr().out)[0]["name"] == "web:1"
    formatted, _ = shell.display_formatter.format(image)
    assert "web:1" in formatted["text/plain"] and "docker.io/library/nginx:1.25" in formatted["text/html"]


def test_options_on_the_line_win_over_config_which_wins_over_the_environment(
        shell: InteractiveShell, context: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from_env, from_config, from_line = tmp_path / "env", tmp_path / "config", tmp_path / "line"
    monkeypatch.setenv("KUBENB_ROOT", str(from_env))
    body = "FROM scratch\nARG V=default\nLABEL v=$V\n"
    plan = run(shell, f"%%kubefile --context {context}\n{body}")
    assert plan.root == from_env and plan.progress == "auto"
    assert plan.options.tag == "context:latest"
    shell.run_line_magic("config", f"KubenbMagics.root = '{from_config}'")
    shell.run_line_magic("config", "KubenbMagics.progress = 'none'")
    plan = run(shell, f"%%kubefile --context {context}\n{body}")
    assert (plan.root, plan.progress) == (from_config, "none")
    plan = run(shell, f"%%kubefile --context {context} --root {from_line} --progress text -t mine:2 "
                      f"--build-arg V=line\n{body}")
    assert (plan.root, plan.progress, plan.options.tag) == (from_line, "text", "mine:2")
    assert "LABEL v=line" in [i.to_text() for i in plan.kubefile.instructions]
    image = plan.build(progress="none")
    assert image.labels["v"] == "line"
    assert [i.name for i in Store(from_line).images()] == ["mine:2"]
    assert not from_config.exists() and not from_env.exists()


def test_ctrl_c_during_a_foreground_build_cancels_it_and_the_store_stays_consistent(
        shell: InteractiveShell, context: Path, tmp_path: Path) -> None:
    """Ctrl-C comes once the RUN has started (it writes a marker into the rootfs), and that RUN
    never ends by itself: the interrupt, not the clock, ends the build."""
    root = tmp_path / "store"
    body = "FROM scratch\nRUN touch etc/started; while true; do echo tick; sleep 0.1; done\n"
    stop = threading.Event()

    def interrupt_once_started() -> None:
        while not stop.is_set():
            if list((root / "tmp").glob("build-*/rootfs/etc/started")):
                _thread.interrupt_main()
                return
            stop.wait(0.01)

    watcher = threading.Thread(target=interrupt_once_started, daemon=True)
    watcher.start()
    try:
        with pytest.raises(UsageError, match="the build was interrupted; nothing was named"):
            run(shell, f"%%kubefile --context {context} --root {root} -t slow:1 --build --progress text\n{body}")
    finally:
        stop.set()
        watcher.join(30)
    store = Store(root)
    assert store.images() == [] and store.check() == []
    assert not list((root / "tmp").glob("build-*"))


# -- what %kubenb returns (issue 15): data, as %sql does ----------------------------------------


def test_the_old_output_variable_form_fails_with_one_line_naming_the_new_one(
        shell: InteractiveShell, context: Path) -> None:
    with pytest.raises(UsageError) as caught:
        run(shell, f"%%kubefile --context {context} -o plan\n{BODY}")
    assert str(caught.value) == ("%%kubefile: -o plan: -o is an output format or file, as on the CLI, and "
                                 "%%kubefile has none; keep the result in a variable with --out plan")
    assert "plan" not in shell.user_ns


def test_images_inspect_tag_and_check_return_data(shell: InteractiveShell, context: Path, tmp_path: Path,
                                                  source: DemoRegistry, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "store"
    (context / "Kubefile").write_text(BODY)
    built = run(shell, f"%kubenb build {context} -t web:1 --root {root} --registry-mirror docker.io={source.host}")
    assert isinstance(built, ClusterImage) and built.name == "web:1"  # %kubenb build returns the image
    tagged = run(shell, f"%kubenb tag web:1 web:2 --root {root}")
    assert isinstance(tagged, ClusterImage) and tagged.name == "web:2" and tagged.id == built.id

    frame = run(shell, f"%kubenb images --root {root}")
    assert isinstance(frame, pandas.DataFrame)
    assert list(frame.columns) == ["name", "id", "created", "size", "platform", "images", "manifest_digest"]
    assert list(frame["name"]) == ["web:1", "web:2"] and list(frame["images"]) == [2, 2]
    assert frame["size"].dtype.kind == "i"  # bytes, so it sorts and sums

    shell.run_cell(f"info = %kubenb inspect web:1 --root {root}")
    info = shell.user_ns.pop("info")
    assert isinstance(info, dict) and info["image"]["name"] == "web:1"
    bundle, _ = shell.display_formatter.format(info)
    assert bundle["application/json"] == json.loads(json.dumps(dict(info)))  # JupyterLab's collapsible tree
    assert len(bundle["text/plain"].splitlines()) == 1 and bundle["text/plain"].startswith("web:1: ")
    assert "text/html" not in bundle

    checked = run(shell, f"%kubenb check --root {root}")
    assert checked.ok and checked.problems == () and checked.store_images == 2


def test_list_images_returns_every_kind_of_row(shell: InteractiveShell, context: Path, tmp_path: Path) -> None:
    (context / "imageList").write_text("busybox:1.36\nalpine:3.20\nNot/Valid:@@\n")
    (context / ".kubenb").mkdir()
    (context / ".kubenb" / "exclude").write_text("alpine:3.20\n")
    chart = context / "web"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: web\nversion: 0.1.0\n")
    (chart / "templates" / "test.yaml").write_text(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: t\n  annotations: {helm.sh/hook: test}\n"
        "spec:\n  containers: [{name: t, image: 'curlimages/curl:8.8.0'}]\n")
    (context / "Kubefile").write_text(BODY + "COPY web charts\n")
    frame = run(shell, f"%kubenb list-images {context}")
    assert isinstance(frame, pandas.DataFrame)
    kinds = dict(zip(frame["image"], frame["kind"], strict=True))
    assert kinds == {
        "docker.io/library/busybox:1.36": "image", "docker.io/library/nginx:1.25": "image",
        "quay.io/org/helper:2.0": "potential", "docker.io/curlimages/curl:8.8.0": "test",
        "docker.io/library/alpine:3.20": "excluded", "Not/Valid:@@": "invalid",
    }
    invalid = frame[frame["kind"] == "invalid"].iloc[0]
    assert invalid["reason"] and invalid["file"].endswith("imageList") and invalid["line"] == 3
    assert run(shell, f"%kubenb list-images {context} --why busybox:1.36") is None  # --why prints, as on the CLI


def test_out_stores_the_value_and_save_images_returns_its_record(
        shell: InteractiveShell, tmp_path: Path, source: DemoRegistry) -> None:
    folder = tmp_path / "folder"
    line = f"%kubenb save-images -o {folder} busybox:1.36 --registry-mirror docker.io={source.host} --out saved"
    assert run(shell, line) is None
    saved = shell.user_ns.pop("saved")
    assert [str(image.image) for image in saved.images] == ["docker.io/library/busybox:1.36"]
    assert saved.fetched_bytes > 0
    with pytest.raises(UsageError, match="--out needs a variable name"):
        run(shell, "%kubenb images --out")


def test_push_pull_and_load_return_what_they_moved(shell: InteractiveShell, context: Path, tmp_path: Path,
                                                   source: DemoRegistry) -> None:
    root, other = tmp_path / "store", tmp_path / "other"
    (context / "Kubefile").write_text("FROM scratch\nCOPY imageList manifests\n")
    (context / "imageList").write_text("")
    built = run(shell, f"%kubenb build {context} -t web:1 --root {root}")
    destination = f"{source.host}/team/web:1"
    digest = run(shell, f"%kubenb push web:1 {destination} --root {root}")
    assert digest == built.manifest_digest
    pulled = run(shell, f"%kubenb pull {destination} --root {other}")
    assert isinstance(pulled, ClusterImage) and pulled.id == built.id
    archive = tmp_path / "web.tar"
    assert run(shell, f"%kubenb save web:1 -o {archive} --root {root}") is None  # it only reports
    loaded = run(shell, f"%kubenb load -i {archive} --root {tmp_path / 'third'}")
    assert [image.name for image in loaded] == ["web:1"] and loaded[0].id == built.id
    parsed = run(shell, f"%kubenb parse -f {context / 'Kubefile'}")
    assert [i.to_text() for i in parsed.instructions] == ["FROM scratch", "COPY imageList manifests"]
