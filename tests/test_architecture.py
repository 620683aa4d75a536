"""docs/architecture.md stays true to the code, and the repository stands alone.

The architecture page names every package with its layer, the files it describes and every
command; these tests compare those names with ``tests/test_layers.py``'s table, the files on
disk and the CLI's parser, so the page cannot drift from the code unnoticed. The last test
clones the repository into an empty folder and runs tests there: whatever the project reads
must be inside it.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kubenb.cli import build_parser
from tests.support.corpus import CORPUS, ROOT
from tests.test_layers import LAYERS

ARCHITECTURE = ROOT / "docs" / "architecture.md"
#: A test that needs the corpus, run in the bare clone: the dashboard manifest's exact image list.
DISCOVERY_TEST = ("tests/test_discovery_corpus.py::"
                  "test_corpus_case_gives_exactly_its_images[dashboard-v2.2.0-recommended]")


def _section(title: str) -> str:
    """The text of the ``## title`` section of the architecture page."""
    text = ARCHITECTURE.read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end != -1 else len(text)]


def _layer_table() -> dict[str, int]:
    """Module -> layer, read from the rows ``| N | `mod`, `pkg/` | job |`` of the Layers section."""
    named: dict[str, int] = {}
    for row in re.findall(r"^\| (\d+) \| ([^|]+) \|", _section("Layers"), flags=re.MULTILINE):
        for module in re.findall(r"`([\w/]+)`", row[1]):
            named[module.rstrip("/")] = int(row[0])
    return named


def test_the_layer_table_is_the_one_the_layer_test_enforces() -> None:
    named = _layer_table()
    assert named == LAYERS, (
        f"docs/architecture.md's layer table and tests/test_layers.py's LAYERS differ: "
        f"missing {sorted(LAYERS.keys() - named.keys())}, extra {sorted(named.keys() - LAYERS.keys())}, "
        f"moved {sorted(m for m in named.keys() & LAYERS.keys() if named[m] != LAYERS[m])}")


def test_every_package_has_its_job_described() -> None:
    jobs = _section("What each package does")
    missing = [module for module in LAYERS
               if f"**`{module}/`**" not in jobs and f"**`{module}`**" not in jobs]
    assert not missing, f"describe these in docs/architecture.md, 'What each package does': {missing}"


def test_every_file_the_page_names_exists() -> None:
    named = set(re.findall(r"kubenb/[\w/]+\.py", ARCHITECTURE.read_text()))
    assert named, "the page names no file: the pattern no longer matches how it cites them"
    missing = sorted(path for path in named if not (ROOT / path).is_file())
    assert not missing, f"docs/architecture.md names files that do not exist: {missing}"


def test_the_command_list_names_every_command() -> None:
    block = _section("The command line")
    named = set(re.findall(r"(?:kubenb|\|) ([a-z][a-z-]+)", block)) - {"lite"}
    (subparsers,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    commands = set(subparsers.choices)
    assert named == commands, (
        f"the command list of docs/architecture.md and `kubenb --help` differ: "
        f"missing {sorted(commands - named)}, extra {sorted(named - commands)}")


def test_the_corpus_is_inside_the_repository() -> None:
    assert CORPUS.resolve().is_relative_to(ROOT.resolve())
    assert (CORPUS / "LICENSES" / "Apache-2.0.txt").is_file() and (CORPUS / "LICENSES" / "CC-BY-4.0.txt").is_file()


def _head(root: Path) -> str | None:
    """The commit checked out at ``root``, or None when it is not a git checkout."""
    if shutil.which("git") is None:
        return None
    done = subprocess.run(["git", "rev-parse", "--verify", "HEAD"], cwd=root, capture_output=True, text=True,
                          check=False)
    return done.stdout.strip() if done.returncode == 0 else None


def _git(*args: str, cwd: Path) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def test_a_bare_clone_collects_every_test_and_runs_discovery_on_its_corpus(tmp_path: Path) -> None:
    """A clone with nothing beside it: no sibling folder, no other checkout to lean on."""
    head = _head(ROOT)
    if head is None:
        pytest.skip(f"{ROOT} is not a git checkout (or git is missing): there is nothing to clone")
    clone = tmp_path / "alone" / "kubenb"
    _git("clone", "-q", "--no-checkout", str(ROOT), str(clone), cwd=tmp_path)
    _git("fetch", "-q", str(ROOT), "HEAD", cwd=clone)  # HEAD itself, even when detached (CI checkouts are)
    _git("checkout", "-q", "--detach", head, cwd=clone)
    assert sorted(p.name for p in clone.parent.iterdir()) == ["kubenb"]
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTEST_", "KUBENB_"))}
    env["PYTHONPATH"] = str(clone)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, *args], cwd=clone, env=env, capture_output=True, text=True,
                              check=False, timeout=600)

    where = run("-c", "import kubenb; print(kubenb.__file__)")
    assert Path(where.stdout.strip()).is_relative_to(clone), where.stdout + where.stderr

    collected = run("-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider")
    assert collected.returncode == 0, collected.stdout[-3000:] + collected.stderr[-3000:]
    assert "error" not in collected.stdout.lower().splitlines()[-1], collected.stdout[-3000:]
    assert DISCOVERY_TEST in collected.stdout

    discovered = run("-m", "pytest", "-q", "-p", "no:cacheprovider", DISCOVERY_TEST)
    assert discovered.returncode == 0, discovered.stdout[-3000:] + discovered.stderr[-3000:]
    assert "1 passed" in discovered.stdout.splitlines()[-1], discovered.stdout[-3000:]
