"""``--build-arg`` reaches RUN, and stays out of the image.

Each build runs the real CLI on a context with no images to pull (``FROM scratch``), so the
RUNs execute on this host, confined as usual, and the result is read back with ``kubenb
export`` and ``kubenb inspect`` as a user would.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from kubenb.kubefile import expand, parse
from tests.test_secrets import files_holding

VERSION_KUBEFILE = "FROM scratch\nARG VERSION=default\nRUN echo $VERSION > etc/version\n"


def kubenb(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kubenb", *args], capture_output=True, text=True,
                          env=dict(os.environ), timeout=300, check=False)


def build(root: Path, context: Path, *build_args: str) -> None:
    flags = [f"--build-arg={each}" for each in build_args]
    result = kubenb("--root", str(root), "build", "-t", "app:1", *flags, str(context))
    assert result.returncode == 0, result.stderr


def exported(root: Path, folder: Path, name: str) -> str:
    result = kubenb("--root", str(root), "export", "app:1", "-o", str(folder))
    assert result.returncode == 0, result.stderr
    return (folder / name).read_text()


def context_with(tmp_path: Path, kubefile: str) -> Path:
    context = tmp_path / "context"
    context.mkdir()
    (context / "Kubefile").write_text(kubefile)
    return context


def test_a_build_arg_reaches_run_and_another_value_runs_it_again(tmp_path: Path) -> None:
    """The RUN sees the --build-arg, not the ARG default; a rebuild with another value gets the
    new value (the RUN's cache key holds the values it sees), and the default comes back without it."""
    context, root = context_with(tmp_path, VERSION_KUBEFILE), tmp_path / "store"
    build(root, context, "VERSION=fromcli")
    assert exported(root, tmp_path / "one", "etc/version") == "fromcli\n"
    build(root, context, "VERSION=second")
    assert exported(root, tmp_path / "two", "etc/version") == "second\n"
    build(root, context)
    assert exported(root, tmp_path / "three", "etc/version") == "default\n"


def test_env_overrides_an_arg_of_the_same_name_and_a_changed_env_runs_run_again(tmp_path: Path) -> None:
    context = context_with(tmp_path, "FROM scratch\nARG MODE=arg\nENV MODE=env\nENV LEVEL=1\n"
                                     "RUN echo $MODE $LEVEL > etc/mode\n")
    root = tmp_path / "store"
    build(root, context, "MODE=cli")
    assert exported(root, tmp_path / "one", "etc/mode") == "env 1\n"
    (context / "Kubefile").write_text((context / "Kubefile").read_text().replace("LEVEL=1", "LEVEL=2"))
    build(root, context, "MODE=cli")
    assert exported(root, tmp_path / "two", "etc/mode") == "env 2\n"


def test_a_build_arg_token_is_stored_nowhere_while_env_is_recorded(tmp_path: Path) -> None:
    """The RUN gets the token (it checks it), yet neither the store's files (layers unpacked)
    nor ``kubenb inspect`` hold it; an ENV value is recorded for deploy time."""
    token = "s3cr3t-" + os.urandom(8).hex()
    context = context_with(tmp_path, "FROM scratch\nARG TOKEN\nENV MODE=visible-env-value\n"
                                     'RUN echo "$TOKEN" | sha256sum > etc/token.sha256\n')
    root = tmp_path / "store"
    build(root, context, f"TOKEN={token}")
    seen = exported(root, tmp_path / "out", "etc/token.sha256").split()[0]
    assert seen == hashlib.sha256(f"{token}\n".encode()).hexdigest()
    assert files_holding(root, token.encode()) == []
    inspected = kubenb("--root", str(root), "inspect", "app:1")
    assert inspected.returncode == 0, inspected.stderr
    assert token not in inspected.stdout + inspected.stderr
    annotations = json.loads(inspected.stdout)["image"]["annotations"]
    assert json.loads(annotations["io.kubenb.environment"]) == {"MODE": "visible-env-value"}
    assert files_holding(root, b"visible-env-value")  # the check above can find a value that is there


def test_env_overrides_an_arg_in_substitution_too_whichever_comes_first() -> None:
    kubefile = parse("FROM scratch\nENV NAME=from-env\nARG NAME=from-arg\nLABEL name=$NAME\n")
    assert expand(kubefile, {"NAME": "from-cli"}).instructions[-1].args == "name=from-env"
    kubefile = parse("FROM scratch\nARG NAME=from-arg\nLABEL name=$NAME\n")
    assert expand(kubefile, {"NAME": "from-cli"}).instructions[-1].args == "name=from-cli"
