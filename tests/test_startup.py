"""Each command loads only what it uses (issue 17, item 1): the imports a start pays, not its time.

The speed itself is measured by bench/startup.py; here a real ``python -m kubenb`` subprocess
reports which modules it loaded, so a module-level import that drags pandas, requests, yaml or
the helm binding into every command fails a test instead of slowing every command by 0.2 s.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import kubenb

#: What ``--version`` and ``--help`` must not load: each costs tens of milliseconds to import.
HEAVY = ("pandas", "requests", "urllib3", "yaml", "helm_python", "docker", "kubenb.builders",
         "kubenb.discover", "kubenb.registry", "kubenb.engine.facade")
#: ``kubenb images`` reads the store: no registry client, no discovery, no builder, no tables.
NOT_FOR_IMAGES = ("pandas", "requests", "urllib3", "yaml", "helm_python", "docker", "kubenb.builders",
                  "kubenb.discover", "kubenb.registry")

#: Runs ``python -m kubenb ARGS`` as the command does, then writes the loaded module names to the
#: pipe PROBE_FD (stdout belongs to the command) however it ended.
_PROBE = """
import json, os, runpy, sys
args = json.loads(os.environ["PROBE_ARGS"])
sys.argv = ["kubenb", *args]
try:
    runpy.run_module("kubenb", run_name="__main__", alter_sys=True)
except SystemExit as end:
    status = end.code
else:
    status = 0
with open(int(os.environ["PROBE_FD"]), "w") as out:
    json.dump({"status": status, "modules": sorted(sys.modules)}, out)
"""


def _loaded(*args: str, root: Path | None = None) -> tuple[int, set[str], str]:
    """Exit status, loaded modules and stdout of ``python -m kubenb ARGS``."""
    read, write = os.pipe()
    env = {**os.environ, "PROBE_ARGS": json.dumps(list(args)), "PROBE_FD": str(write),
           "PYTHONPATH": str(Path(kubenb.__file__).parent.parent)}
    if root is not None:
        env["KUBENB_ROOT"] = str(root)
    with subprocess.Popen([sys.executable, "-c", _PROBE], env=env, pass_fds=(write,), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True) as probe:
        os.close(write)
        stdout, stderr = probe.communicate()  # the report (a few kB) waits in the pipe meanwhile
        with os.fdopen(read) as report:
            found = json.load(report)
    assert probe.returncode == 0, stderr
    return found["status"], set(found["modules"]), stdout


def _heavy(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return sorted(name for name in modules if name.split(".")[0] in names or name in names
                  or any(name.startswith(f"{heavy}.") for heavy in names))


def test_version_loads_no_heavy_module() -> None:
    status, modules, stdout = _loaded("--version")
    assert (status, stdout) == (0, f"kubenb {kubenb.__version__}\n")
    assert "kubenb.cli" in modules  # the probe ran the real command
    assert _heavy(modules, HEAVY) == []


def test_help_loads_no_heavy_module() -> None:
    status, modules, stdout = _loaded("--help")
    assert status == 0 and "list-images" in stdout
    assert _heavy(modules, HEAVY) == []


def test_images_loads_only_the_store(tmp_path: Path) -> None:
    status, modules, stdout = _loaded("images", root=tmp_path)
    assert status == 0 and stdout.startswith("NAME")
    assert "kubenb.store" in modules
    assert _heavy(modules, NOT_FOR_IMAGES) == []


def test_import_kubenb_loads_nothing_below_until_a_name_is_used() -> None:
    code = ("import sys, kubenb; before = sorted(m for m in sys.modules if m.startswith('kubenb'));"
            " from kubenb import list_images, KubenbError, ImageRef;"
            " print(before, list_images.__module__, 'kubenb.engine.images' in sys.modules)")
    env = {**os.environ, "PYTHONPATH": str(Path(kubenb.__file__).parent.parent)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    # kubenb.lazy is the facade's own __getattr__ (it imports only sys and importlib)
    assert done.stdout.split("]")[0] + "]" == "['kubenb', 'kubenb.lazy']"
    assert done.stdout.rstrip().endswith("kubenb.engine.images True")
