"""``kubenb build`` of an unchanged context, answered before the commands module loads.

``main`` asks this first for a ``build``: it maps the parsed options as
``engine_calls.build_options`` does (tests/test_unchanged.py checks that both give the same
record key) and prints what ``run_build`` would, without the event printer, the engine
facade, the model or the events, each of which costs start-up time (bench/build.py's
``rebuild`` row).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def answered_build(options: argparse.Namespace) -> bool:
    """Whether the store's record answered this build (then printed as a build would be)."""
    if options.builder != "lite" or options.no_cache:
        return False
    from kubenb.engine import unchanged_build  # noqa: PLC0415  (only for build)

    context = Path(options.context)
    values: dict[str, list[Path]] = {}
    for chart, file in options.values:
        values.setdefault(chart, []).append(Path(file))
    set_values: dict[str, list[str]] = {}
    for chart, expression in options.set:
        set_values.setdefault(chart, []).append(expression)
    try:
        answer = unchanged_build(
            getattr(options, "root", None), tag=options.tag, context=context,
            kubefile=Path(options.file) if options.file else context / "Kubefile", build_args=dict(options.build_arg),
            values=values, set_values=set_values, kube_version=options.kube_version, platforms=options.platform,
            skip_invalid=options.skip_invalid, skip_missing_platform=options.skip_missing_platform,
        )
    except Exception:  # a cache never fails a command: the build that follows says what is wrong
        return False
    if answer is None:
        return False
    for line in (answer.message, *answer.warnings):
        print(line, file=sys.stderr)
    print(f"built {answer.name} ({answer.image_id.removeprefix('sha256:')[:12]}, {human_size(answer.size)})")
    return True


def human_size(size: int) -> str:
    """``display.human_size``, here so that the answer needs no ``display`` (a test keeps them equal)."""
    value = float(size)
    for unit in ("B", "kB", "MB"):
        if value < 1000:
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"
