"""Which charts a context holds, by which names, and which options each one gets.

A chart sits right under ``charts/``: a folder with ``Chart.yaml``, or a ``.tgz``. Users know a
chart by the ``name`` in its Chart.yaml, while the file may be called ``cilium-1.20.0.tgz``; an
option must reach the chart it names, and an option that reaches none must say so, because a
silently ignored ``--set`` lists images the user turned off.
"""

from __future__ import annotations

import re
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from kubenb.discover.documents import load_documents, split_documents
from kubenb.errors import DiscoveryError

__all__ = ["ChartSource", "chart_options", "charts_in", "find_charts"]

#: Chart.yaml is small; a larger one is read only this far (the name comes first in practice).
_CHART_YAML_LIMIT = 1 << 20

@dataclass(frozen=True)
class ChartSource:
    """A chart as the context holds it. ``name`` is the folder or file stem (``cilium-1.20.0``
    for ``cilium-1.20.0.tgz``) and names it in messages and locations; ``chart_name`` is the
    ``name`` of its Chart.yaml, the name a user knows it by. Options and values files may use
    either (:attr:`names`)."""

    name: str
    path: Path
    values_file: Path | None = None
    chart_name: str | None = None

    @property
    def names(self) -> tuple[str, ...]:
        """The names ``--values NAME=``, ``--set NAME:`` and ``charts/NAME.values.yaml`` accept."""
        return tuple(dict.fromkeys(n for n in (self.chart_name, self.name) if n))



def find_charts(charts_dir: Path) -> list[ChartSource]:
    """Every chart directly under a real ``charts_dir`` (see :func:`charts_in`)."""
    if not charts_dir.is_dir():
        return []
    return charts_in({p.relative_to(charts_dir).as_posix(): p for p in charts_dir.rglob("*") if p.is_file()})


def charts_in(files: Mapping[str, Path]) -> list[ChartSource]:
    """Every chart in ``files`` (paths relative to ``charts/`` -> host files), sorted by name.

    A chart is a folder with ``Chart.yaml`` or a ``.tgz``; other files (``*.values.yaml``) are
    not charts. Two entries with one name (``x/`` and ``x.tgz``) would share a values file, so
    they are an error. Taking a mapping, not a folder, lets discovery read the rootfs a
    Kubefile's COPY lines describe without copying it.
    """
    found: dict[str, ChartSource] = {}
    for rel in sorted(files):
        top, _, rest = rel.partition("/")
        if rest == "Chart.yaml":
            name, path, chart_name = top, files[rel].parent, _folder_chart_name(files[rel])
        elif not rest and top.endswith(".tgz"):
            name, path, chart_name = top[: -len(".tgz")], files[rel], _archive_chart_name(files[rel])
        else:
            continue
        if name in found:
            both = " and ".join(sorted((found[name].path.name, top)))
            raise DiscoveryError(f"two charts are named {name}: {both}",
                                 file="charts", hint="keep one of them")
        values = next((files[f"{n}.values.yaml"] for n in (name, chart_name) if n and f"{n}.values.yaml" in files),
                      None)
        found[name] = ChartSource(name, path, values, chart_name)
    return [found[name] for name in sorted(found)]


def chart_options(sources: Sequence[ChartSource], values: Mapping[str, Sequence[Path]],
                  set_values: Mapping[str, Sequence[str]]) -> dict[str, tuple[tuple[Path, ...], tuple[str, ...]]]:
    """Each chart's ``--values`` files and ``--set`` expressions, by :attr:`ChartSource.name`.

    An option is keyed by any of a chart's :attr:`~ChartSource.names`. One that names no chart,
    or a values file that does not exist, is an error before anything renders: silently
    ignoring ``--set cilium:image.useDigest=false`` would list images the user turned off.
    """
    for option, keys in (("--values", values), ("--set", set_values)):
        for key in keys:
            if not any(key in source.names for source in sources):
                raise DiscoveryError(f"{option} {key}: no chart named {key}", hint=_chart_list(sources))
    for key, files in values.items():
        for path in files:
            if not path.is_file():
                raise DiscoveryError("values file does not exist" if not path.exists() else "values file is not a file",
                                     file=path, hint=f"give an existing file: --values {key}=FILE")
    return {
        source.name: (tuple(p for key in source.names for p in values.get(key, ())),
                      tuple(e for key in source.names for e in set_values.get(key, ())))
        for source in sources
    }


def _chart_list(sources: Sequence[ChartSource]) -> str:
    names = sorted({source.chart_name or source.name for source in sources})
    return f"the charts are: {', '.join(names)}" if names else "the context has no chart under charts/"


def _folder_chart_name(chart_yaml: Path) -> str | None:
    """The ``name`` of a Chart.yaml; None when unreadable (rendering will say why)."""
    try:
        return _name_of(chart_yaml.read_bytes()[:_CHART_YAML_LIMIT])
    except OSError:
        return None


def _archive_chart_name(archive_path: Path) -> str | None:
    """The ``name`` in the top folder's Chart.yaml of a chart archive, as Helm reads it."""
    try:
        with tarfile.open(archive_path) as archive:
            for member in archive:
                if member.isfile() and re.fullmatch(r"[^/]+/Chart\.yaml", member.name.removeprefix("./")):
                    stream = archive.extractfile(member)
                    return _name_of(stream.read(_CHART_YAML_LIMIT)) if stream else None
    except (OSError, tarfile.TarError, EOFError):
        return None
    return None


def _name_of(chart_yaml: bytes) -> str | None:
    """Read as discovery reads every other YAML (``documents.load_documents``)."""
    try:
        documents = load_documents(split_documents(chart_yaml.decode("utf-8", errors="replace"), "Chart.yaml"))
    except DiscoveryError:
        return None
    metadata = documents[0][1] if documents else None
    name = metadata.get("name") if isinstance(metadata, dict) else None
    return name if isinstance(name, str) and name else None
