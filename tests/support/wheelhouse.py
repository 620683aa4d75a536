"""A wheel cache for the binder test: binder's packages fetched once, then installed offline.

tests/test_binder.py installs exactly what binder/ names into a fresh virtualenv. Fetched from
the package index on every run (helm-python-sdk alone is a 75 MB wheel), that was the slowest
step of the suite. `make test` therefore fills a wheelhouse once (`python -m
tests.support.wheelhouse DIR`, which is also what the test's session fixture calls when no
current wheelhouse exists) and the test installs from it with the index switched off.

The wheelhouse holds one pip resolution of everything binder's files install: the lines of
binder/requirements.txt, then what postBuild's `pip install .[notebooks]` needs (kubenb's
dependencies, its `notebooks` extra, and the build backend that builds kubenb from the clone).
Its stamp records what it was built for (those requirements and the interpreter), so a changed
requirements.txt or pyproject.toml builds it anew: a stale wheelhouse is never used.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: mypy and pytest depend on tomli there
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[2]
STAMP = ".built"


def project_requirements(repo: Path) -> list[str]:
    """What postBuild's `pip install .[notebooks]` resolves besides kubenb itself."""
    pyproject = tomllib.loads((repo / "pyproject.toml").read_text())
    project = pyproject["project"]
    return [*project["dependencies"], *project["optional-dependencies"]["notebooks"],
            *pyproject["build-system"]["requires"]]


def key(repo: Path) -> str:
    """A digest of everything the wheelhouse depends on: the requirements and this interpreter."""
    inputs = {
        "requirements.txt": (repo / "binder" / "requirements.txt").read_text(),
        "project": project_requirements(repo),
        "python": [sys.version, sysconfig.get_platform()],
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def is_current(wheelhouse: Path, repo: Path = REPO) -> bool:
    """True when the wheelhouse was completely built for today's requirements and interpreter."""
    stamp = wheelhouse / STAMP
    return stamp.is_file() and stamp.read_text().strip() == key(repo)


def build(wheelhouse: Path, repo: Path = REPO) -> None:
    """Fetch (or build) every wheel binder's files need, then move the finished folder into place.

    The wheels land in a staging folder and the stamp is written last, so an interrupted build
    leaves no wheelhouse that looks complete. pip's own HTTP cache makes a rebuild cheap.
    """
    staging = wheelhouse.with_name(f"{wheelhouse.name}.partial-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "wheel", "-q", "--wheel-dir", str(staging),
               "-r", str(repo / "binder" / "requirements.txt"), *project_requirements(repo)]
    if subprocess.run(command, check=False).returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        raise RuntimeError(f"pip wheel could not fill the wheelhouse for binder's files: {' '.join(command)}")
    (staging / STAMP).write_text(key(repo) + "\n")
    shutil.rmtree(wheelhouse, ignore_errors=True)
    try:
        staging.rename(wheelhouse)
    except OSError:  # another run put its wheelhouse in place meanwhile: keep it if current
        shutil.rmtree(staging, ignore_errors=True)
        if not is_current(wheelhouse, repo):
            raise


def ensure(wheelhouse: Path, repo: Path = REPO) -> Path:
    """Build the wheelhouse unless it is current; touch the stamp so make sees it up to date."""
    if is_current(wheelhouse, repo):
        (wheelhouse / STAMP).touch()
    else:
        build(wheelhouse, repo)
    return wheelhouse


def default_location() -> Path | None:
    """`wheelhouse/` inside the virtualenv running the suite (where make puts it), if any.

    It lives beside the interpreter it was resolved for; outside a writable virtualenv there is
    no such place of ours to write to, and the caller uses a temporary folder instead.
    """
    in_venv = sys.prefix != sys.base_prefix and os.access(sys.prefix, os.W_OK)
    return Path(sys.prefix) / "wheelhouse" if in_venv else None


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m tests.support.wheelhouse WHEELHOUSE_DIR")
    ensure(Path(sys.argv[1]).resolve())
