"""binder/ is enough: the notebooks run with exactly what binder installs, and nothing else.

The test does what repo2docker does, in a fresh virtualenv with no access to the suite's:
the Debian packages of ``apt.txt`` must be present (``make test`` installs them on CI), then
``pip install -r binder/requirements.txt``, then ``binder/postBuild`` from the repository root
(a clean copy of the tracked files, so a file that only exists on a developer's disk cannot
help), then every notebook executed through ``binder/start``.

Both installs take their packages from a local wheelhouse (tests/support/wheelhouse.py), not
from the package index: ``make test`` fills it once in ``.venv/wheelhouse`` (refilled when
binder/requirements.txt or pyproject.toml changes), and the session fixture below builds it when
pytest runs without make. The installs run with ``PIP_NO_INDEX=1``, ``PIP_FIND_LINKS`` naming
the wheelhouse and no pip configuration file, which pip obeys for every install, postBuild's
included: binder's files stay as they are in production, and a package they name that the
wheelhouse lacks fails the test instead of being fetched.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import wheelhouse as wheels

REPO = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.jupyter, pytest.mark.registry, pytest.mark.timeout(1800)]


def _run(command: list[str], *, cwd: Path, env: dict[str, str], timeout: float) -> str:
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, f"{' '.join(command[:3])} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def test_apt_txt_lists_packages_that_are_installed() -> None:
    packages = [line.strip() for line in (REPO / "binder" / "apt.txt").read_text().splitlines() if line.strip()]
    assert packages == ["docker-registry", "skopeo", "apache2-utils", "bubblewrap", "libyaml-dev"]
    for package in packages:
        status = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True,
                                check=False)
        assert status.stdout == "install ok installed", f"{package} is not installed: make test installs it"


def test_the_start_script_ends_by_running_its_arguments() -> None:
    start = (REPO / "binder" / "start").read_text().strip().splitlines()
    assert start[0] == "#!/bin/bash" and "set -euo pipefail" in start and start[-1] == 'exec "$@"'
    post_build = (REPO / "binder" / "postBuild").read_text()
    assert post_build.startswith("#!/bin/bash") and "set -euo pipefail" in post_build
    assert all(os.access(REPO / "binder" / name, os.X_OK) for name in ("start", "postBuild"))


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheels binder's files install, built at most once per run (make test built them before)."""
    return wheels.ensure(wheels.default_location() or tmp_path_factory.mktemp("wheelhouse"), REPO)


def offline_pip(wheelhouse: Path) -> dict[str, str]:
    """pip settings that install only from the wheelhouse, whatever the machine's pip config says."""
    return {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wheelhouse), "PIP_CONFIG_FILE": os.devnull,
            "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


def test_the_notebooks_run_with_exactly_what_binder_installs(tmp_path: Path, wheelhouse: Path) -> None:
    clone = tmp_path / "repo"
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    for name in filter(None, tracked.decode().split("\0")):
        if (REPO / name).is_file():
            (clone / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, clone / name)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    home = tmp_path / "home"
    home.mkdir()
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("JUPYTER", "IPYTHON", "VIRTUAL_ENV", "PYTHON", "KUBENB", "REGISTRY_", "PIP_"))}
    env.update(HOME=str(home), PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}", VIRTUAL_ENV=str(venv),
               **offline_pip(wheelhouse))
    _run(["python", "-m", "pip", "install", "-q", "-r", "binder/requirements.txt"], cwd=clone, env=env, timeout=900)
    _run(["bash", "binder/postBuild"], cwd=clone, env=env, timeout=900)
    notebooks = sorted(str(p.relative_to(clone)) for p in (clone / "notebooks").glob("*.ipynb"))
    assert len(notebooks) == 6
    out = tmp_path / "executed"
    _run(["binder/start", "jupyter", "nbconvert", "--to", "notebook", "--execute", "--output-dir", str(out),
          "--ExecutePreprocessor.timeout=300", "--ExecutePreprocessor.kernel_name=python3", *notebooks],
         cwd=clone, env=env, timeout=1500)
    assert sorted(p.name for p in out.glob("*.ipynb")) == sorted(Path(n).name for n in notebooks)
    assert (home / ".local" / "share" / "kubenb").is_dir()  # start put the store in the session's home
