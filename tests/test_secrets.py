"""The registry password never leaks: not in output, logs, tracebacks, notebooks, widgets or images.

Everything a user can do with a password-protected registry is run for real against the
htpasswd ``auth_registry`` (login, a failed login, save-images, build, a failing pull, each
also with ``--debug``, a notebook that logs in through the API and the login form), and every
text and byte it produced is searched for the password. The one place it may be is the
credentials file, base64-encoded as docker writes it, with mode 0600.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import secrets
import stat
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from tests.support.jupyter import run_notebook
from tests.support.oci import push, single_image
from tests.support.registry import Registry

pytestmark = pytest.mark.registry

NOTEBOOK_LOGIN = """\
import os
from kubenb.registry import login
path = login(os.environ["TEST_REGISTRY"], os.environ["TEST_USER"], os.environ["TEST_PASSWORD"])
print("saved in", path)
"""
NOTEBOOK_FORM = """\
import json, os
from kubenb.widgets import LoginForm
form = LoginForm(os.environ["TEST_REGISTRY"], username=os.environ["TEST_USER"])
form.password.value = os.environ["TEST_PASSWORD"]
print("login form:", form.login())
wrong = LoginForm(os.environ["TEST_REGISTRY"], username=os.environ["TEST_USER"])
wrong.password.value = os.environ["TEST_WRONG"]
print("wrong password:", wrong.login())
def states(widget):
    yield widget.get_state()
    for child in getattr(widget, "children", ()):
        yield from states(child)
for each in (form, wrong):
    for state in states(each.widget):
        print(json.dumps(state, default=str))
form.widget
"""


def kubenb_cli(*args: str, env: dict[str, str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kubenb", *args], input=stdin, capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=300, check=False)


def files_holding(root: Path, secret: bytes) -> list[str]:
    """Files under ``root`` whose bytes (or gunzipped bytes) contain ``secret``."""
    found = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink()):
        data = path.read_bytes()
        if data[:2] == b"\x1f\x8b":
            data += gzip.decompress(data)
        if secret in data:
            found.append(str(path))
    return found


def test_the_password_appears_nowhere(auth_registry: Registry, repo_name: str, tmp_path: Path) -> None:
    assert auth_registry.username is not None and auth_registry.password is not None
    password, user, host = auth_registry.password, auth_registry.username, auth_registry.host
    wrong = "wrong-" + secrets.token_urlsafe(12)
    push(auth_registry, repo_name, "v1", single_image(repo_name))
    image = f"{host}/{repo_name}:v1"
    auth_file = tmp_path / "auth" / "config.json"
    root = tmp_path / "store"
    env = {"REGISTRY_AUTH_FILE": str(auth_file), "KUBENB_ROOT": str(root)}
    context = tmp_path / "context"
    context.mkdir()
    (context / "Kubefile").write_text("FROM scratch\nCOPY imageList manifests\n")
    (context / "imageList").write_text(image + "\n")

    runs = {
        "wrong login": kubenb_cli("login", host, "-u", user, "--password-stdin", env=env, stdin=wrong + "\n"),
        "login": kubenb_cli("login", host, "-u", user, "--password-stdin", env=env, stdin=password + "\n"),
    }
    runs["debug wrong login"] = kubenb_cli("--debug", "login", host, "-u", user, "--password-stdin", env=env,
                                           stdin=wrong + "\n")
    for debug in ((), ("--debug",)):
        name = " ".join(("debug",) * len(debug))
        runs[f"{name} save-images"] = kubenb_cli(*debug, "save-images", "-o", str(tmp_path / f"out{name}"),
                                                 image, env=env)
        runs[f"{name} build"] = kubenb_cli(*debug, "build", "-t", f"secret{len(debug)}:1", str(context), env=env)
        runs[f"{name} failing pull"] = kubenb_cli(*debug, "pull", f"{host}/{repo_name}/absent:v1", env=env)
        runs[f"{name} failing save"] = kubenb_cli(*debug, "save-images", "-o", str(tmp_path / "fail"),
                                                  f"{host}/{repo_name}:absent", env=env)
    runs["export"] = kubenb_cli("export", "secret1:1", "-o", str(tmp_path / "exported"), env=env)

    expected_failures = {"wrong login", "debug wrong login", " failing pull", "debug failing pull",
                         " failing save", "debug failing save"}
    for name, run in runs.items():
        assert (run.returncode != 0) == (name in expected_failures), f"{name}: {run.stderr}"
        for text in (run.stdout, run.stderr):
            assert password not in text, f"the password leaked into the output of {name}"
            assert wrong not in text, f"the wrong password leaked into the output of {name}"
    assert "Traceback" in runs["debug failing pull"].stderr  # --debug really showed the traceback

    # the credentials file: the one place, base64 as docker writes it, readable by its owner only
    assert stat.S_IMODE(auth_file.stat().st_mode) == 0o600
    raw = auth_file.read_text()
    assert password not in raw and wrong not in raw
    saved = json.loads(raw)["auths"][host]["auth"]
    assert base64.b64decode(saved).decode() == f"{user}:{password}"

    # the images built and everything the store and the folders hold
    assert (tmp_path / "exported" / "registry").is_dir()
    for folder in (tmp_path / "exported", root, tmp_path / "out", tmp_path / "outdebug"):
        assert folder.is_dir()
        assert files_holding(folder, password.encode()) == []
        assert files_holding(folder, base64.b64encode(f"{user}:{password}".encode())) == []

    # a notebook: API login with the password from the environment, the login form, widget states
    notebook_path = tmp_path / "notebook" / "login.ipynb"
    notebook_path.parent.mkdir()
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(NOTEBOOK_LOGIN),
                                               nbformat.v4.new_code_cell(NOTEBOOK_FORM)])
    nbformat.write(notebook, str(notebook_path))
    notebook_auth = tmp_path / "notebook-auth.json"
    executed = run_notebook(notebook_path, home=tmp_path / "jupyter-home", env={
        "REGISTRY_AUTH_FILE": str(notebook_auth), "TEST_REGISTRY": host, "TEST_USER": user,
        "TEST_PASSWORD": password, "TEST_WRONG": wrong,
    })
    text = nbformat.writes(executed)
    assert "saved in" in text and "login form:" in text and "wrong password: None" in text
    assert '"_model_name"' in text  # the widget states were printed
    assert password not in text and wrong not in text
    assert stat.S_IMODE(notebook_auth.stat().st_mode) == 0o600
    assert files_holding(notebook_path.parent, password.encode()) == []
