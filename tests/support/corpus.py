"""The real-world corpus (tests/corpus, read-only): where it is and how to lay a case out as a context.

This is the one place that knows the corpus path; tests and benchmarks import ``CORPUS`` from here.
The corpus lives inside the repository, so a bare clone has everything its tests read.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "corpus"


def expected_cases() -> list[Path]:
    return sorted((CORPUS / "expected").glob("*.json"))


def runtime_cases() -> list[Path]:
    """The run-time image contexts (tests/corpus/runtime/<case>/): ready-made contexts with an expected.json."""
    return sorted(p for p in (CORPUS / "runtime").iterdir() if (p / "expected.json").exists())


def peer_cases() -> list[Path]:
    return sorted(p for p in (CORPUS / "peers").iterdir() if (p / "expected.json").exists())


def load_expected(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def context_for(expected: dict[str, Any], context: Path) -> Path:
    """A context holding the case's manifest under manifests/ or its chart under charts/."""
    source = CORPUS / expected["source"]
    if expected["source"].startswith("manifests/"):
        (context / "manifests").mkdir(parents=True)
        shutil.copy(source, context / "manifests" / source.name)
    else:
        (context / "charts").mkdir(parents=True)
        shutil.copytree(source, context / "charts" / source.name)
        if expected.get("values"):
            shutil.copy(CORPUS / expected["values"], context / "charts" / f"{source.name}.values.yaml")
    return context
