"""Render every chart of a context into text with the real Helm engine, and nothing else.

A lite build must see exactly the images an install would run, so charts are rendered as
``helm template release <chart> --namespace default`` renders them, through helm-python-sdk
or a ``helm`` binary on PATH; the next layer turns the text into documents and images. Helm's
errors become one-line messages naming the chart, the template and the value to set, because
"nil pointer evaluating interface {}.url" tells a notebook user nothing.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tarfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from kubenb.discover.chart_sources import ChartSource, chart_options, charts_in, find_charts
from kubenb.discover.helm_log import helm_log_lines
from kubenb.discover.kube_versions import ConstraintError, admits
from kubenb.errors import DiscoveryError

if TYPE_CHECKING:
    import helm_python

__all__ = ["NAMESPACE", "RELEASE", "ChartSource", "RenderedTemplate", "chart_options", "charts_in", "find_charts",
           "render_chart"]

#: The release name and namespace every chart is rendered with (docs/discovery.md).
RELEASE = "release"
NAMESPACE = "default"

Backend = Literal["sdk", "cli"]
Values = dict[str, Any]

_KUBE_VERSION = re.compile(r"v?\d+(\.\d+){0,2}([-+][0-9A-Za-z.+-]+)?")
_EXEC = re.compile(r"execution error at \((?P<tpl>[^\s()]+?):(?P<line>\d+):\d+\): (?P<msg>.*)", re.S)
_PARSE = re.compile(r"parse error at \((?P<tpl>[^\s()]+?):(?P<line>\d+)\): (?P<msg>.*)", re.S)
_FRAME = re.compile(r'(?P<tpl>[^\s():]+):(?P<line>\d+):\d+:?\s+executing "[^"]*" at <(?P<expr>[^>]*)>:')
_SOURCE = re.compile(r"^---[ \t]*\r?\n# Source: (.+?)[ \t]*\r?$", re.M)
_VALUES_EXPR = r"\(?\s*\$?\.Values\.([\w.-]+)"


@dataclass(frozen=True)
class RenderedTemplate:
    """One rendered template file, named as Helm names it (``chart/charts/sub/templates/x.yaml``)."""

    chart: str
    template: str
    text: str


def render_chart(
    source: ChartSource,
    *,
    values_files: Sequence[Path] = (),
    set_values: Sequence[str] = (),
    kube_version: str | None = None,
    backend: Backend = "sdk",
    warnings: list[str] | None = None,
) -> list[RenderedTemplate]:
    """Render ``source`` as an install of release ``release`` in namespace ``default``.

    Values win in this order: chart defaults < ``charts/<name>.values.yaml`` < ``values_files``
    < ``set_values`` (Helm ``--set`` syntax). NOTES.txt, partials and templates that render to
    nothing are left out. Both backends read the values the same way first, so a bad values
    file or ``--set`` gives the same message whichever renders. Helm's own log lines (values
    it ignored) are appended to ``warnings``, named by chart, instead of reaching stderr.
    """
    if kube_version is not None and not _KUBE_VERSION.fullmatch(kube_version):
        raise DiscoveryError(f"kube version {kube_version!r} is not a Kubernetes version",
                             hint="write it like 1.29.0")
    files = [*([source.values_file] if source.values_file else []), *values_files]
    values = _user_values(source, files, set_values)
    logged: list[str] = []
    if backend == "sdk":
        with helm_log_lines() as logged:
            rendered = _records(source.name, _render_sdk(source, values, kube_version))
    elif backend == "cli":
        rendered = _render_cli(source, files, set_values, kube_version, logged)
    else:
        raise DiscoveryError(f"unknown Helm backend {backend!r}", hint="use sdk or cli")
    if warnings is not None:
        warnings += [f"chart {source.name}: Helm warning: {message.removeprefix('warning: ')}"
                     for message in logged]
    return rendered


def _helm() -> Any:
    """helm-python-sdk, imported on first use: it maps a large native library, and a command
    that renders no chart (save-images, login) should not pay for it at start-up."""
    import helm_python  # noqa: PLC0415

    return helm_python


# --- values -------------------------------------------------------------------------------


def _user_values(source: ChartSource, files: Sequence[Path], set_values: Sequence[str]) -> Values:
    """Merge values files then ``--set`` expressions the way ``helm template -f -f --set`` does."""
    merged: Values = {}
    for path in files:
        merged = _merge(merged, _read_values(source, path))
    for expression in set_values:
        try:
            merged = _merge(merged, _helm().parse_set_string(expression))
        except _helm().HelmError as error:
            raise DiscoveryError(f"chart {source.name}: bad --set expression {expression!r}: {error.detail}",
                                 hint=f"write --set {source.name}:key=value") from error
    return merged


def _merge(base: Values, override: Mapping[str, Any]) -> Values:
    """Helm's ``mergeMaps``: maps merge key by key, anything else is replaced."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _read_values(source: ChartSource, path: Path) -> Values:
    """Parse a values file with Helm's own YAML reader, so ``yes``, dates and keys mean the same."""
    hint = f"fix the YAML of this values file of chart {source.name}"
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise DiscoveryError(f"values file is not UTF-8 ({error.reason})", file=path, hint=hint) from error
    except OSError as error:
        raise DiscoveryError(f"cannot read values file: {error.strerror}", file=path) from error
    try:
        values: Values = _helm().values_from_yaml(text)
        return values
    except _helm().HelmError as error:
        where = re.search(r"yaml: line (\d+): (.*)", error.detail)
        kind = re.search(r"cannot unmarshal (\w+) into", error.detail)
        reason = (f"is not valid YAML: {where[2]}" if where else f"is a YAML {kind[1]}, not a mapping"
                  if kind else f"is unusable: {error.detail}")
        raise DiscoveryError(f"values file {reason}", file=path, line=int(where[1]) if where else None,
                             hint=hint) from error


# --- backends -----------------------------------------------------------------------------


def _render_sdk(source: ChartSource, values: Values, kube_version: str | None) -> dict[str, str]:
    """Load once and render once: the engine drops disabled subcharts from the loaded chart."""
    try:
        with _helm().Chart.load(source.path) as chart:
            _check_dependencies(source, chart)
            _check_kube_version(source, chart.metadata.get("kubeVersion"), kube_version)
            rendered: dict[str, str] = (
                chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
                if kube_version is None else _render_native(source, chart, values, kube_version)
            )
            return rendered
    except _helm().HelmChartLoadError as error:
        raise DiscoveryError(f"chart {source.name}: cannot load it: {_one_line(error.detail)}",
                             file=source.path, hint="a chart is a folder with Chart.yaml or a .tgz "
                             "made by helm package") from error
    except _helm().HelmError as error:
        raise _render_error(source, error.detail) from error


def _render_native(source: ChartSource, chart: helm_python.Chart, values: Values, kube_version: str) -> Any:
    """``Chart.render`` has no ``kube_version`` parameter, but the native ``helm_render`` options
    accept it (helm-c 0.2.2 decodes ``kube_version`` and ``api_versions``): call it directly,
    and say what to do should a later SDK drop that door."""
    opts = {"name": RELEASE, "namespace": NAMESPACE, "is_install": True, "kube_version": kube_version}
    try:
        call = _helm()._native.call_string
        return json.loads(call("helm_render", chart._raw(), json.dumps(values), json.dumps(opts)))
    except (AttributeError, _helm().HelmInvalidArgError) as error:
        if "could not parse" in str(error):
            raise DiscoveryError(f"kube version {kube_version!r}: {error}",
                                 hint="write it like 1.29.0") from error
        raise DiscoveryError(f"this helm-python-sdk cannot set the kube version ({error})",
                             hint="use --helm-backend cli") from error


def _check_dependencies(source: ChartSource, chart: helm_python.Chart) -> None:
    """Fail like ``helm template`` on a dependency that is not vendored: its images would be lost."""
    declared = {dep["name"] for dep in chart.metadata.get("dependencies") or ()}
    missing = sorted(declared - {dep["name"] for dep in chart.dependencies})
    if missing:
        raise DiscoveryError(f"chart {source.name}: dependencies in Chart.yaml missing from its charts/ "
                             f"folder: {', '.join(missing)}", file=source.path,
                             hint="vendor them with `helm dependency build`")


def _check_kube_version(source: ChartSource, constraint: object, kube_version: str | None) -> None:
    """Refuse, as ``helm install`` does, a chart whose ``kubeVersion`` excludes ``--kube-version``:
    the SDK's render does not check it, and its images would be carried for nothing."""
    if kube_version is None or not isinstance(constraint, str) or not constraint.strip():
        return
    try:
        fits = admits(constraint, kube_version)
    except ConstraintError as error:
        raise DiscoveryError(f"chart {source.name}: cannot read its kubeVersion {constraint!r} ({error})",
                             file=source.path, hint="fix kubeVersion in its Chart.yaml") from error
    if not fits:
        raise DiscoveryError(f"chart {source.name} requires kubeVersion: {constraint} which is "
                             f"incompatible with Kubernetes v{kube_version.removeprefix('v')}", file=source.path,
                             hint="give a --kube-version the chart supports, or use a version of the chart "
                             "made for this Kubernetes")


def _render_cli(source: ChartSource, files: Sequence[Path], set_values: Sequence[str],
                kube_version: str | None, logged: list[str]) -> list[RenderedTemplate]:
    """Run ``helm template`` and split its output back into one record per template."""
    helm = shutil.which("helm")
    if helm is None:
        raise DiscoveryError("no helm binary on PATH for --helm-backend cli",
                             hint="install helm or use --helm-backend sdk")
    args = [helm, "template", RELEASE, str(source.path), "--namespace", NAMESPACE]
    args += [arg for path in files for arg in ("-f", str(path))]
    args += [arg for expression in set_values for arg in ("--set", expression)]
    args += ["--kube-version", kube_version] if kube_version else []
    try:
        done = subprocess.run(args, capture_output=True, encoding="utf-8", errors="replace", check=False)
    except OSError as error:
        raise DiscoveryError(f"cannot run {helm}: {error.strerror}", hint="use --helm-backend sdk") from error
    if done.returncode != 0:
        detail = re.sub(r"^.*?Error: |\n*Use --debug flag.*", "", done.stderr, count=2, flags=re.S).strip()
        raise _render_error(source, detail or f"helm exited with status {done.returncode}")
    logged += [line.split(" ", 2)[2] if re.match(r"\d{4}/\d\d/\d\d \d", line) else line
               for line in done.stderr.splitlines() if line.strip()]
    return _records(source.name, _split_helm_output(done.stdout))


def _split_helm_output(stdout: str) -> dict[str, str]:
    """Group ``helm template`` output by its ``# Source:`` comments (one per document)."""
    parts = _SOURCE.split(stdout)
    documents: dict[str, list[str]] = {}
    for template, body in zip(parts[1::2], parts[2::2], strict=True):
        documents.setdefault(template, []).append(body.strip("\r\n"))
    return {template: "\n---\n".join(docs) + "\n" for template, docs in documents.items()}


def _records(chart: str, rendered: Mapping[str, str]) -> list[RenderedTemplate]:
    """Manifests only, sorted by template: not NOTES.txt (Helm drops every ``*NOTES.txt``),
    not partials, not templates that rendered to whitespace."""
    return [
        RenderedTemplate(chart, template, text)
        for template, text in sorted(rendered.items())
        if not template.endswith("NOTES.txt") and not template.rsplit("/", 1)[-1].startswith("_")
        and text.strip()
    ]


# --- Helm's errors, translated ------------------------------------------------------------


def _render_error(source: ChartSource, detail: str) -> DiscoveryError:
    """One line naming chart, template (with line) and the value to set, from Helm's text."""
    name, values_hint = source.name, f"charts/{source.name}.values.yaml"
    if match := _EXEC.search(detail):
        message = _one_line(match["msg"])
        where = f"chart {name}: template {match['tpl']}:{match['line']}"
        path = _required_path(source, match["tpl"], message)
        if path:
            return DiscoveryError(f'{where}: required value missing: {path} ("{message}")', file=source.path,
                                  hint=f"set it in {values_hint} or with --set {name}:{path}=VALUE")
        return DiscoveryError(f"{where}: {message}", file=source.path,
                              hint=f"check the values in {values_hint} or --set {name}:key=value")
    if match := _PARSE.search(detail):
        return DiscoveryError(f"chart {name}: template {match['tpl']}:{match['line']}: template syntax "
                              f"error: {_one_line(match['msg'])}", file=source.path,
                              hint="the chart is broken: fix the template")
    if frames := list(_FRAME.finditer(detail)):
        return _frame_error(source, frames, _one_line(detail[frames[-1].end() :]))
    if "schema" in detail:
        reasons = "; ".join(re.findall(r"^- (.*)$", detail, re.M)) or _one_line(detail)
        return DiscoveryError(f"chart {name}: values do not match the chart's values.schema.json: {reasons}",
                              file=source.path, hint=f"fix them in {values_hint} or with --set")
    return DiscoveryError(f"chart {name}: Helm cannot render it: {_one_line(detail)}", file=source.path)


def _frame_error(source: ChartSource, frames: list[re.Match[str]], message: str) -> DiscoveryError:
    """An evaluation failure (``<.Values.a.b>: nil pointer evaluating interface {}.b``): the
    outer frame is the manifest template, whose chart's values ``.Values`` almost always means
    (a partial is called with its caller's context), the inner one the expression that failed."""
    outer, inner = frames[0], frames[-1]
    where = f"chart {source.name}: template {outer['tpl']}:{outer['line']}"
    if inner is not outer:
        where += f" (in {inner['tpl']}:{inner['line']})"
    expression = inner["expr"]
    values = re.fullmatch(r"\$?\.Values\.([\w.-]+)", expression)
    if values and "nil pointer" in message:
        path = _prefixed(outer["tpl"], values[1])
        return DiscoveryError(f"{where}: value missing: {path} ({message})", file=source.path,
                              hint=f"set {path} in charts/{source.name}.values.yaml or with "
                              f"--set {source.name}:{path}=VALUE")
    return DiscoveryError(f"{where}: cannot evaluate {expression}: {message}", file=source.path,
                          hint=f"check the values in charts/{source.name}.values.yaml")


def _required_path(source: ChartSource, template: str, message: str) -> str | None:
    """The values path a failed ``required "message" .Values.x`` asks for: found by its message
    in the chart's templates (partials too), else read from the message itself."""
    literal = r"(?:\"" + re.escape(message).replace('"', r'\\?"') + r"\"|`" + re.escape(message) + "`)"
    pattern = re.compile(r"required\s+" + literal + r"\s+" + _VALUES_EXPR)
    for text in _template_texts(source.path):
        if match := pattern.search(text):
            return _prefixed(template, match[1])
    words = re.search(r"\.Values\.([\w.-]+\w)", message) or re.search(
        r"([A-Za-z_][\w-]*(?:\.[A-Za-z_][\w-]*)+)[^.]*\brequired\b", message)
    return _prefixed(template, words[1]) if words else None


def _prefixed(template: str, path: str) -> str:
    """A subchart's value as the top chart's values file writes it (``sub.x``; aliases kept,
    because Helm names an aliased subchart's templates by its alias)."""
    parts = template.split("/templates/", 1)[0].split("/")
    subcharts = [parts[i + 1] for i in range(len(parts) - 1) if parts[i] == "charts"]
    return path if path.startswith("global.") else ".".join([*subcharts, path])


def _template_texts(path: Path) -> Iterator[str]:
    """Every template source of a chart folder or archive, subcharts included (error path only)."""
    if path.is_dir():
        for file in sorted(path.rglob("*")):
            if "templates" in file.relative_to(path).parts and file.is_file():
                yield file.read_text(encoding="utf-8", errors="replace")
        return
    try:
        with tarfile.open(path) as archive:
            for member in archive:
                stream = archive.extractfile(member) if "/templates/" in member.name else None
                if stream is not None:
                    yield stream.read().decode("utf-8", errors="replace")
    except (OSError, tarfile.TarError):
        return


def _one_line(text: str) -> str:
    return " ".join(text.split())
