"""The layering of docs/architecture.md, enforced: a module imports kubenb modules only from lower layers."""

from __future__ import annotations

import ast
from pathlib import Path

import kubenb

PACKAGE = Path(kubenb.__file__).parent

#: docs/architecture.md, "Layers": top-level module or package -> layer (tests/test_architecture.py
#: checks that the page's table is this one).
LAYERS = {
    "errors": 0, "lazy": 0,
    "model": 1, "events": 1, "hosts": 1,
    "reference": 2, "kubefile": 2, "oci": 2,
    "discover": 3, "registry": 3, "store": 3,
    "registry_folder": 4,
    "builders": 5,
    "engine": 6,
    "cli": 7, "magic": 7, "display": 7, "widgets": 7, "demo": 7,
}
FRONT_END_LAYER = 7
#: The package facade and ``python -m`` entry point sit above every layer.
FACADES = {"__init__", "__main__"}
FRONT_END_ONLY = {"IPython", "ipywidgets", "argparse"}
#: What the front ends share, in order: one may import those before it and no other front end.
#: ``display`` renders the same events for all; the magic shares the CLI's parser
#: (the issue asks for it) and shows the widgets; the widgets use display's sizes and tables.
SHARED_FRONT_END = ("display", "cli", "widgets")
#: The front ends go through one door: they import only these kubenb modules (and the front ends
#: SHARED_FRONT_END lets them share). ``demo`` is no front end: it seeds a registry folder.
FRONT_ENDS = {"cli", "magic", "display", "widgets"}
#: ``lazy`` is no door: it is the PEP 562 helper of every package facade and knows nothing of kubenb.
FRONT_END_IMPORTS = {"engine", "model", "events", "errors", "display", "lazy"}


def _top(module: str) -> str:
    return module.split(".")[1] if module.startswith("kubenb.") else module.split(".", maxsplit=1)[0]


def _imports(path: Path) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "kubenb" and [alias.name for alias in node.names] == ["__version__"]:
                continue  # a constant the facade sets before anything else: any layer may read it
            found.append((node.module, node.lineno))
            if node.module == "kubenb":
                found += [(f"kubenb.{alias.name}", node.lineno) for alias in node.names]
    return found


def _modules() -> list[tuple[str, Path]]:
    return [
        (path.relative_to(PACKAGE).parts[0].removesuffix(".py"), path)
        for path in sorted(PACKAGE.rglob("*.py"))
    ]


def test_every_module_has_a_layer() -> None:
    unknown = {top for top, _ in _modules() if top not in LAYERS and top not in FACADES}
    assert not unknown, f"add these to LAYERS and to docs/architecture.md's layer table: {sorted(unknown)}"


def _violations(modules: list[tuple[str, Path]]) -> list[str]:
    found = []
    for top, path in modules:
        if top in FACADES:
            continue
        for module, line in _imports(path):
            if not module.startswith("kubenb"):
                continue
            target = _top(module)
            if target == top:
                continue  # a package's own modules
            if target in SHARED_FRONT_END and LAYERS[top] == LAYERS[target] and (
                    top not in SHARED_FRONT_END or SHARED_FRONT_END.index(target) < SHARED_FRONT_END.index(top)):
                continue
            if target not in LAYERS or LAYERS[target] >= LAYERS[top]:
                found.append(f"{path.name}:{line} imports {module}")
    return found


def test_modules_import_only_from_lower_layers() -> None:
    violations = _violations(_modules())
    assert not violations, "\n".join(violations)


def test_only_front_ends_import_front_end_libraries() -> None:
    violations = [
        f"{path.relative_to(PACKAGE.parent)}:{line} imports {module}"
        for top, path in _modules()
        if top not in FACADES and LAYERS.get(top, FRONT_END_LAYER) < FRONT_END_LAYER
        for module, line in _imports(path)
        if module.split(".")[0] in FRONT_END_ONLY
    ]
    assert not violations, "\n".join(violations)


def test_the_layer_check_catches_upward_and_same_layer_imports(tmp_path: Path) -> None:
    bad = tmp_path / "reference.py"
    bad.write_text("from kubenb.cli import main\nimport kubenb.kubefile\nfrom kubenb import errors\n"
                   "from kubenb.model import ImageRef\nfrom kubenb import __version__\n")
    assert _violations([("reference", bad)]) == [
        "reference.py:1 imports kubenb.cli", "reference.py:2 imports kubenb.kubefile",
        "reference.py:3 imports kubenb",  # the facade; kubenb.errors itself is a lower layer and fine
    ]


def _front_end_violations(modules: list[tuple[str, Path]]) -> list[str]:
    """Front-end imports of anything below the door: a front end needs the engine, the records,
    the events, the errors and the renderings, nothing else of kubenb."""
    return [
        f"{path.name}:{line} imports {module}"
        for top, path in modules
        if top in FRONT_ENDS
        for module, line in _imports(path)
        if module.startswith("kubenb") and _top(module) != top
        and _top(module) not in FRONT_END_IMPORTS | set(SHARED_FRONT_END)
    ]


def test_front_ends_import_only_the_engine_model_events_errors_and_display() -> None:
    violations = _front_end_violations(_modules())
    assert not violations, "\n".join(violations)


def test_the_front_end_check_catches_imports_below_the_engine(tmp_path: Path) -> None:
    bad = tmp_path / "magic.py"
    bad.write_text("from kubenb.store import Store\nimport kubenb.registry\nfrom kubenb.engine import Engine\n"
                   "from kubenb.model import ImageList\nfrom kubenb import events\nfrom kubenb.cli import main\n"
                   "def later() -> None:\n    from kubenb.builders import build\n")
    assert _front_end_violations([("magic", bad)]) == [
        "magic.py:1 imports kubenb.store", "magic.py:2 imports kubenb.registry",
        "magic.py:5 imports kubenb",  # the facade; kubenb.events itself is allowed
        "magic.py:8 imports kubenb.builders",  # an import inside a function counts too
    ]
    assert _front_end_violations([("demo", bad)]) == []  # demo seeds a registry folder: no front end


def test_public_api_is_explicit() -> None:
    exported = set(kubenb.__all__)
    for name in exported:
        assert hasattr(kubenb, name), name  # a lazy name (PEP 562 __getattr__) resolves on first use
    public = {name for name in vars(kubenb) if not name.startswith("_") and name != "annotations"}
    submodules = {name for name in public if type(getattr(kubenb, name)).__name__ == "module"}
    assert exported == (public - submodules) | {"__version__"}
    assert set(dir(kubenb)) >= exported
