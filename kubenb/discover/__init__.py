"""Image discovery: the image list of a lite build, with where every image was found.

``context_images`` is the one entry point: it takes the rootfs a ``BuildPlan`` describes (or
the context folder as a rootfs), then reads ``manifests/imageList``, every manifest under
``manifests/`` and every chart under ``charts/``. Results are memoised by a hash of the
content that went in, so a notebook that previews on every cell run answers at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from kubenb.discover import persist
from kubenb.discover.ahead import ahead
from kubenb.discover.charts import ChartSource, RenderedTemplate, chart_options, charts_in, render_chart
from kubenb.discover.documents import Document, parse_documents, read_input_file, split_documents
from kubenb.discover.hits import Hit, collect
from kubenb.discover.imagelist import IMAGE_LIST, read_image_list
from kubenb.discover.memo import DiscoveryMemo, content_key
from kubenb.discover.positions import NodeLines
from kubenb.discover.potential import render_names
from kubenb.discover.review import apply_review, save_choice, write_review
from kubenb.discover.rootfs import RootfsView, view_of_folder, view_of_plan
from kubenb.discover.templates import helm_template_line
from kubenb.discover.walk import ObjectContext, may_hold_image_keys, walk_object
from kubenb.errors import DiscoveryError
from kubenb.events import EventSink, Message
from kubenb.kubefile import BuildPlan
from kubenb.model import ImageList

__all__ = ["DiscoveryOptions", "apply_review", "clear_memo", "context_images", "discover", "discovery_options",
           "rootfs_view", "save_choice", "view_of_folder", "write_review"]

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
#: A CustomResourceDefinition is a schema, never a workload, and often most of a manifest's
#: bytes (argo-cd, calico): a top-level ``kind:`` line says so before any parsing.
_CACHE = DiscoveryMemo()


@dataclass(frozen=True)
class DiscoveryOptions:
    """How charts are rendered: per-chart values files and ``--set`` expressions, Helm options.

    Charts are keyed by their Chart.yaml name or their file stem; a key that names no chart is
    an error when discovery runs (``chart_options``), not an option silently dropped."""

    values: Mapping[str, tuple[Path, ...]] = field(default_factory=dict)
    set_values: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    kube_version: str | None = None
    helm_backend: str = "sdk"


def discovery_options(
    values: Mapping[str, str | Path | Sequence[str | Path]] | None = None,
    set: Mapping[str, str | Sequence[str]] | None = None,
    kube_version: str | None = None,
    helm_backend: str = "sdk",
) -> DiscoveryOptions:
    """The options as callers write them: ``values`` maps a chart name (its Chart.yaml ``name``
    or its file stem) to one or more values files, ``set`` a chart name to ``key=value``
    expressions (Helm's ``--set`` syntax)."""
    return DiscoveryOptions(
        values={chart: tuple(Path(str(p)) for p in _as_tuple(files)) for chart, files in (values or {}).items()},
        set_values={chart: tuple(str(e) for e in _as_tuple(exprs)) for chart, exprs in (set or {}).items()},
        kube_version=kube_version,
        helm_backend=helm_backend,
    )


def context_images(plan: BuildPlan, options: DiscoveryOptions | None = None) -> ImageList:
    """The image list of a lite build of ``plan`` (made by ``kubefile.plan_build``).

    The context's review files (``.kubenb/include`` and ``.kubenb/exclude``) are applied, as a
    build applies them.
    """
    return apply_review(discover(rootfs_view(plan), options), plan.context)


def rootfs_view(plan: BuildPlan) -> RootfsView:
    """The rootfs a build of ``plan`` would produce, as far as files can tell before it runs:
    its Kubefile's COPY steps, or the context folder itself when it has no Kubefile."""
    if not plan.context.is_dir():
        raise DiscoveryError(f"the build context {plan.context} is not a folder", file=str(plan.context),
                             hint="give the folder that holds the Kubefile and the files it copies")
    return view_of_plan(plan)


def discover(view: RootfsView, options: DiscoveryOptions | None = None, *,
             memo: Path | None = None, refresh: bool = False, events: EventSink | None = None) -> ImageList:
    """Every image ``view`` needs; memoised on the content of its manifests and charts, in
    this process and, given a ``memo`` folder (the store's), on disk for the next process.
    ``refresh`` (``build --no-cache``) runs discovery again and rewrites the memo; ``events``
    hears whether the disk memo answered."""
    options = options or DiscoveryOptions()
    inputs = [*view.under("manifests"), *view.under("charts"), *_option_files(options)]
    key = content_key(inputs, repr(options))
    if memo is None:
        return _CACHE.get_or_compute(key, lambda: _discover(view, options))
    if refresh:
        _CACHE.clear()
    return _CACHE.get_or_compute(key, lambda: _discover_with_memo(view, options, key, memo, refresh=refresh,
                                                                     events=events))


def _discover_with_memo(view: RootfsView, options: DiscoveryOptions, key: str, memo: Path, *, refresh: bool,
                        events: EventSink | None) -> ImageList:
    """Discovery answered by the disk memo of ``key`` when it has a whole entry, else run and saved."""
    versioned = f"{key}\nkubenb {persist.kubenb_version()}"
    found = None if refresh else persist.load(memo, versioned)
    if found is not None:
        if events is not None:
            events(Message("  discovery: unchanged, answered from the memo"))
        return found
    found = _discover(view, options)
    persist.save(memo, versioned, found)
    return found


def clear_memo() -> None:
    """Forget memoised results (benchmarks measure the first run; tests start clean)."""
    _CACHE.clear()


def _discover(view: RootfsView, options: DiscoveryOptions) -> ImageList:
    warnings: list[str] = []
    hits: list[Hit] = []
    if IMAGE_LIST in view.files:
        hits += read_image_list(read_input_file(view.files[IMAGE_LIST], IMAGE_LIST), IMAGE_LIST)
    hits += _manifest_hits(view, warnings)
    hits += _chart_hits(view, options, warnings)
    warnings += _nested_charts(view)
    return collect(hits, warnings)


def _nested_charts(view: RootfsView) -> list[str]:
    """A chart one folder too deep (``charts/charts/app``, from ``COPY charts charts``) is not
    rendered; say so rather than list no images from it without a word."""
    files = {rel.removeprefix("charts/") for rel, _ in view.under("charts")}
    warnings = []
    for rel in sorted(files):
        parts = rel.split("/")
        if len(parts) == 3 and parts[2] == "Chart.yaml" and f"{parts[0]}/Chart.yaml" not in files:
            folder, chart = parts[0], parts[1]
            warnings.append(f"charts/{folder}/{chart} is not rendered: charts/{folder} is not a chart, and charts "
                            f"must sit right under charts/; copy it there (e.g. COPY {folder}/* charts/)")
    return warnings


def _manifest_hits(view: RootfsView, warnings: list[str]) -> Iterator[Hit]:
    for name, host in view.under("manifests"):
        if not name.endswith(MANIFEST_SUFFIXES):
            continue
        text = read_input_file(host, name)
        template_line = helm_template_line(text)
        if template_line:
            warnings.append(
                f"{name}:{template_line}: skipped: it holds Helm template text ({{{{ ... }}}}); "
                "put charts under charts/ so they are rendered"
            )
            continue
        yield from _document_hits(split_documents(text, name, without_crds=True), "manifest")


def _chart_hits(view: RootfsView, options: DiscoveryOptions, warnings: list[str]) -> Iterator[Hit]:
    sources = charts_in({rel.removeprefix("charts/"): host for rel, host in view.under("charts")})
    per_chart = chart_options(sources, options.values, options.set_values)

    def render(source: ChartSource) -> tuple[list[RenderedTemplate], list[str]]:
        values_files, set_values = per_chart[source.name]
        said: list[str] = []  # Helm's warnings, added in the charts' order by the caller
        rendered = render_chart(source, values_files=values_files, set_values=set_values,
                                kube_version=options.kube_version,
                                backend="cli" if options.helm_backend == "cli" else "sdk", warnings=said)
        return rendered, said

    for rendered, said in ahead(sources, render):  # the next ones render while this is read
        warnings += said
        documents = [d for r in rendered for d in split_documents(r.text, r.template, chart=r.chart, without_crds=True)]
        yield from _document_hits(documents, "chart")


def _document_hits(documents: Sequence[Document], source: str) -> Iterator[Hit]:
    """Hits of each document, each at the line where the parser placed its value."""
    parsed_documents = list(parse_documents(documents))
    names = render_names(parsed.value for parsed in parsed_documents)  # for the noise rules of potential images
    for parsed in parsed_documents:
        document = parsed.document
        context = ObjectContext(source=source, file=document.file, chart=document.chart, render=names,
                                image_keys=may_hold_image_keys(document.text))
        hits = list(walk_object(parsed.value, context))
        if hits:  # only documents with images pay for node positions
            lines = NodeLines(document, parsed.tree)
            for hit in hits:
                yield replace(hit, location=replace(hit.location, line=lines.line_of(hit.steps, hit.value_line)))


def _option_files(options: DiscoveryOptions) -> Iterable[tuple[str, Path]]:
    for chart, files in sorted(options.values.items()):
        for file in files:
            yield f"--values {chart}", file


def _as_tuple(value: object) -> tuple[object, ...]:
    return tuple(value) if isinstance(value, (list, tuple)) else (value,)
