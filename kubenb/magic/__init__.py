"""The notebook front end: ``%%kubefile`` and ``%kubenb``, registered by ``%load_ext kubenb``.

A cell is the fastest loop there is: write a Kubefile, see at once which images the build
would carry and where each was found, untick what should stay out, build. The default is
therefore a preview whose only side effect is writing the Kubefile into the context (so the
CLI, the build and a colleague see the same file); ``--build`` builds at once.

The magics stay thin: options come from the CLI's own parser pieces, discovery and builds
from the engine, tables from ``display``, widgets from ``widgets``. A kubenb error fails the
cell with its one line (file:line: what; what to do), never a traceback, unless
``%config KubenbMagics.full_traceback = True``.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import getpass
import io
import re
import shlex
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from IPython import get_ipython
from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class, no_var_expand
from IPython.display import display
from traitlets import Bool, Enum, Unicode

from kubenb.cli import (
    add_build_options,
    build_options,
    build_parser,
    engine_for,
    list_images_of,
    run_command,
    run_until_interrupted,
)
from kubenb.display import (
    EventPrinter,
    JsonView,
    cluster_image_html,
    cluster_image_text,
    cluster_images_dataframe,
    image_list_html,
    image_list_table,
    kubefile_html,
    kubefile_text,
)
from kubenb.engine import BuildOptions, Engine, expand_kubefile, parse_kubefile
from kubenb.errors import Cancelled, KubenbError
from kubenb.model import ROW_KINDS, ClusterImage, ImageList, Kubefile

__all__ = ["KubenbMagics", "Plan", "load_ipython_extension"]

PROGRESS = ("auto", "widget", "text", "none")
_MAGIC_LINE = re.compile(r"%%kubefile(?:[ \t]|$)")
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_F = TypeVar("_F", bound=Callable[..., Any])
_T = TypeVar("_T")


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext kubenb``: the magics, and HTML/text reprs for kubenb's results."""
    ipython.register_magics(KubenbMagics)
    cleanup = ipython.input_transformers_cleanup
    if _body_for_help not in cleanup:
        cleanup.append(_body_for_help)
    formatters = ipython.display_formatter.formatters
    renderings: list[tuple[type, Callable[[Any], str], Callable[[Any], str]]] = [
        (ImageList, image_list_html, image_list_table),
        (Kubefile, kubefile_html, kubefile_text),
        (ClusterImage, cluster_image_html, cluster_image_text),
    ]
    for kind, as_html, as_text in renderings:
        formatters["text/html"].for_type(kind, as_html)
        formatters["text/plain"].for_type(kind, _pretty(as_text))


def _body_for_help(lines: list[str]) -> list[str]:
    """Give an empty ``%%kubefile`` cell an empty line for a body.

    IPython refuses a cell magic with an empty body before calling it, so ``%%kubefile --help``
    alone in a cell would fail with "the cell body is empty"; the magic itself then answers
    (the help, or a line saying the Kubefile is missing).
    """
    if lines and _MAGIC_LINE.match(lines[0]) and not "".join(lines[1:]).strip():
        return [lines[0].rstrip("\n") + "\n", "\n"]
    return lines


def _pretty(render: Callable[[Any], str]) -> Callable[[Any, Any, bool], None]:
    """IPython's plain-text printers write through a pretty-printer object."""

    def printer(value: Any, pretty: Any, cycle: bool) -> None:
        pretty.text(render(value))

    return printer


# -- the preview ------------------------------------------------------------------------------


@dataclass
class Plan:
    """What a build of a ``%%kubefile`` cell would do: its instructions and its images.

    ``images`` is a DataFrame of the images the build carries with where each was found;
    ``potential`` and ``test`` hold what is shown apart. ``review()`` gives the widget to
    change the choice, ``build()`` builds.
    """

    kubefile: Kubefile
    image_list: ImageList
    options: BuildOptions
    root: Path | None = None
    builder: str = "lite"
    progress: str = "auto"
    _review: Any = field(default=None, repr=False)

    @property
    def images(self) -> Any:
        return self.image_list.to_dataframe(include=("image",))

    @property
    def potential(self) -> Any:
        return self.image_list.to_dataframe(include=("potential",))

    @property
    def test(self) -> Any:
        return self.image_list.to_dataframe(include=("test",))

    @property
    def warnings(self) -> tuple[str, ...]:
        return self.image_list.warnings

    def review(self) -> Any:
        """The image-list review widget of this plan (one per plan, so its ticks persist)."""
        if self._review is None:
            from kubenb.widgets import ImageListReview  # noqa: PLC0415  (ipywidgets only when asked)

            self._review = ImageListReview(self.image_list, self.options.context, engine=Engine(self.root))
        return self._review

    def panel(self) -> Any:
        """A build panel whose Build saves the review's choice first, so the build honours it."""
        from kubenb.widgets import BuildPanel  # noqa: PLC0415

        review = self.review()
        return BuildPanel(self.options, engine=Engine(self.root), builder=self.builder, before_build=review.save)

    def build(self, *, tag: str | None = None, background: bool = False, progress: str | None = None) -> Any:
        """Build now; returns the ClusterImage, or the running BuildPanel with ``background``."""
        options = replace(self.options, tag=tag) if tag else self.options
        return _run_build(options, self.root, self.builder, progress or self.progress, background)

    def _repr_html_(self) -> str:
        return kubefile_html(self.kubefile) + image_list_html(self.image_list)

    def __repr__(self) -> str:
        return f"{kubefile_text(self.kubefile)}\n\n{image_list_table(self.image_list)}"

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        """Widgets where a kernel draws them; the static tables stay in the saved notebook."""
        bundle: dict[str, Any] = {"text/plain": repr(self), "text/html": self._repr_html_()}
        if _widget_progress(self.progress):
            import ipywidgets  # noqa: PLC0415

            view = ipywidgets.VBox([ipywidgets.HTML(kubefile_html(self.kubefile)), self.review(), self.panel()])
            bundle.update(view._repr_mimebundle_(include=include, exclude=exclude) or {})
            bundle["text/html"] = self._repr_html_()
        return bundle


def _run_build(options: BuildOptions, root: Path | None, builder: str, progress: str, background: bool) -> Any:
    """A build with the progress asked for; Ctrl-C cancels it and leaves the store as it was.

    In the background the running panel is returned, not displayed: the cell's result shows it,
    once (a variable keeps it unseen, as any widget)."""
    if background or _widget_progress(progress):
        from kubenb.widgets import BuildPanel  # noqa: PLC0415

        panel = BuildPanel(options, engine=Engine(root), builder=builder)
        try:
            if progress != "none" and not background:  # a background panel is the cell's value
                display(panel)  # type: ignore[no-untyped-call]
            panel.start()
            if background:
                return panel
            image = panel.wait()
        except KeyboardInterrupt:
            panel.cancel()  # unconditionally: whatever the interrupt broke, the token is set
            _wait_out(panel.wait, lambda: not panel.running)
            if panel.result is None:
                raise _interrupted() from None
            return panel.result  # named before the interrupt took effect: say so by returning it
        if panel.error is not None:
            raise panel.error
        return image
    if progress == "none":
        return _until_interrupted(Engine(root), options, builder)
    with EventPrinter(sys.stdout) as printer:
        return _until_interrupted(Engine(root, events=printer), options, builder)


def _until_interrupted(engine: Engine, options: BuildOptions, builder: str) -> ClusterImage:
    """Build in a thread while this one waits for it; Ctrl-C (KeyboardInterrupt, which reaches
    only this thread) cancels the engine, and the build stops where it is and undoes itself.

    The wait is on an event, not ``Thread.join``: a join that KeyboardInterrupt breaks marks the
    thread as ended while it still runs (Python 3.11), and the build's clean-up would be missed.
    """
    done = threading.Event()
    outcome: list[ClusterImage | BaseException] = []

    def run() -> None:
        try:
            outcome.append(engine.build(options, builder=builder))
        except BaseException as error:  # handed to the waiting thread, which raises it
            outcome.append(error)
        finally:
            done.set()

    threading.Thread(target=run, name="kubenb build", daemon=True).start()
    try:
        while not done.wait(0.1):  # short waits: a simulated Ctrl-C (interrupt_main) is seen between them
            pass
    except KeyboardInterrupt:
        engine.cancel()
        _wait_out(done.wait, done.is_set)
        if not isinstance(outcome[0], ClusterImage):
            raise _interrupted() from None
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return outcome[0]


def _wait_out(wait: Callable[[float], object], ended: Callable[[], bool]) -> None:
    """Wait for a cancelled build to undo itself (a second or so: the cancel cut its downloads).

    Further interrupts meanwhile are let pass: leaving now would leave a build thread behind
    the cell, writing into whatever cell runs next, and maybe naming the image after all.
    """
    while not ended():
        with contextlib.suppress(KeyboardInterrupt):
            wait(0.1)


def _interrupted() -> Cancelled:
    return Cancelled("the build was interrupted", hint="nothing was named; the store is as it was")


def _widget_progress(progress: str) -> bool:
    """Widgets for ``widget``, and for ``auto`` inside a kernel that can show them."""
    if progress == "widget":
        return True
    if progress != "auto":
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


# -- the magics -------------------------------------------------------------------------------


class _CellParser(argparse.ArgumentParser):
    """Option errors fail the cell with one line, as every kubenb error does."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if message:
            raise UsageError(message.strip())
        raise _HelpShown


class _HelpShown(Exception):
    """``--help`` printed the usage; the magic ends quietly."""


def _kubefile_parser() -> _CellParser:
    parser = _CellParser(prog="%%kubefile", add_help=True,
                         description="Write the cell's Kubefile into the context, preview its images, or build.")
    parser.add_argument("--out", metavar="VAR", help="store the plan (or the built image) in VAR instead of showing it")
    parser.add_argument("-o", "--output", default=None, help=argparse.SUPPRESS)  # the old form: a clear error
    parser.add_argument("--context", default=None, metavar="DIR", help="the build context (default: this folder)")
    parser.add_argument("-f", "--file", default="Kubefile", metavar="NAME", help="the Kubefile's name in the context")
    parser.add_argument("--build", action="store_true", help="build now instead of previewing")
    parser.add_argument("--progress", choices=PROGRESS, default=None)
    parser.add_argument("--background", action="store_true", help="build in a thread; the kernel stays free")
    parser.add_argument("--root", default=None, metavar="DIR", help="the image store")
    add_build_options(parser, tag_required=False)
    return parser


def _friendly(method: _F) -> _F:
    """kubenb errors become one-line cell failures unless the full traceback is asked for."""

    @functools.wraps(method)
    def wrapper(self: KubenbMagics, *args: Any) -> Any:
        try:
            return method(self, *args)
        except _HelpShown:
            return None
        except KubenbError as error:
            if self.full_traceback:
                raise
            raise UsageError(str(error)) from None

    return wrapper  # type: ignore[return-value]


@magics_class
class KubenbMagics(Magics):
    """``%%kubefile`` and ``%kubenb``; settings through ``%config KubenbMagics.<name> = ...``."""

    full_traceback = Bool(False, help="show the full traceback of kubenb errors").tag(config=True)
    root = Unicode("", help="the image store when --root is not given (else $KUBENB_ROOT)").tag(config=True)
    progress = Enum(PROGRESS, "auto", help="build progress when --progress is not given").tag(config=True)

    @no_var_expand
    @cell_magic
    @_friendly
    def kubefile(self, line: str, cell: str) -> Any:
        """Write the Kubefile of this cell into the context, then preview its images or build."""
        namespace = self.shell.user_ns if self.shell is not None else {}
        options = _kubefile_parser().parse_args(shlex.split(_fill(line, namespace, "the magic line")))
        if options.output is not None:
            raise UsageError(f"%%kubefile: -o {options.output}: -o is an output format or file, as on the CLI, "
                             f"and %%kubefile has none; keep the result in a variable with --out {options.output}")
        if not cell.strip():
            raise UsageError("%%kubefile: the cell has no Kubefile; write its instructions below the magic line")
        context = Path(options.context).expanduser() if options.context else Path.cwd()
        if not context.is_dir():
            raise UsageError(f"--context {context}: no such folder; create it or name another")
        path = context / options.file
        path.write_text(_fill(cell, namespace, str(path)), encoding="utf-8")
        engine = Engine(options.root or self.root or None)
        plan = engine.plan(context, kubefile=path, build_args=dict(options.build_arg))  # the one read of it
        root = engine.root
        progress = options.progress or self.progress
        tag = options.tag or f"{context.resolve().name or 'cluster'}:latest".lower()
        requested = replace(build_options(options, context=context, kubefile=path, tag=tag), plan=plan)
        if options.build or options.background:
            result = _run_build(requested, root, options.builder, progress, options.background)
        else:
            result = Plan(kubefile=plan.require_kubefile(), options=requested, root=root, builder=options.builder,
                          progress=progress, image_list=engine.list_plan_images(
                              plan, values={c: list(f) for c, f in requested.values.items()},
                              set={c: list(e) for c, e in requested.set_values.items()},
                              kube_version=options.kube_version))
        if options.out:
            namespace[options.out] = result
            if options.background:
                display(result)  # type: ignore[no-untyped-call]  # a running build stays in sight
            return None
        return result

    @no_var_expand
    @line_magic
    @_friendly
    def kubenb(self, line: str) -> Any:
        """The CLI's commands with the CLI's own parser, returning data as ``%sql`` does:
        ``x = %kubenb images`` is a DataFrame (see :func:`_value`); ``-o`` means what it means on
        the CLI, and with an output format the CLI's text is printed instead. ``--out VAR``
        stores the value in VAR. A password never goes on the line."""
        namespace = self.shell.user_ns if self.shell is not None else {}
        argv, variable = _take_out(shlex.split(_fill(line, namespace, "the magic line")))
        options = _parse_cli(argv)
        if options is None:
            return None
        if "root" not in options and self.root:
            options.root = self.root
        if options.command == "login":
            return _login(options)
        value = _value(options, _asks_for_text(options, argv), self.progress)
        if variable:
            namespace[variable] = value
            return None
        return value


# -- what %kubenb returns ---------------------------------------------------------------------

#: Commands whose ``-o`` is an output format: given, the magic prints the CLI's text.
_FORMATTED = ("images", "list-images", "parse")
#: Commands the engine's cancel token stops (``build`` stops through ``_run_build``).
_CANCELLABLE_VALUES = ("save-images", "pull", "push")


def _take_out(argv: list[str]) -> tuple[list[str], str | None]:
    """``--out VAR`` (or ``--out=VAR``) taken off the line: the CLI has no such option."""
    for index, arg in enumerate(argv):
        if arg.startswith("--out="):
            return [*argv[:index], *argv[index + 1:]], arg.removeprefix("--out=")
        if arg == "--out":
            if index + 1 == len(argv) or argv[index + 1].startswith("-"):
                raise UsageError("%kubenb: --out needs a variable name: --out VAR")
            return [*argv[:index], *argv[index + 2:]], argv[index + 1]
    return argv, None


def _asks_for_text(options: argparse.Namespace, argv: list[str]) -> bool:
    """An output format named on the line (``-o json``), or ``--why``: the user asked for text."""
    named = any(arg in ("-o", "--output") or arg.startswith(("-o", "--output=")) for arg in argv[1:])
    return (named and options.command in _FORMATTED) or bool(getattr(options, "why", None))


def _value(options: argparse.Namespace, text: bool, progress: str) -> Any:
    """Run the command; its value (data for code, with a rich display), or None once the CLI's
    own text is printed: for an asked-for format and for commands that only report."""
    make = None if text else _VALUES.get(options.command)
    if make is not None and options.command in _CANCELLABLE_VALUES:  # Ctrl-C stops them at once
        return run_until_interrupted(options, lambda parsed: make(parsed, progress))
    if make is not None:
        return make(options, progress)
    status = run_command(options)  # Ctrl-C stops save-images, pull, push at once
    if status:
        raise UsageError(f"kubenb {options.command} failed with status {status}")
    return None


def _list_images(options: argparse.Namespace, progress: str) -> Any:
    found = list_images_of(options)
    for warning in found.warnings:
        print(f"kubenb: warning: {warning}", file=sys.stderr)
    frame = found.to_dataframe(include=ROW_KINDS)
    frame.attrs["warnings"] = list(found.warnings)
    return frame


def _build(options: argparse.Namespace, progress: str) -> ClusterImage:
    context = Path(options.context)
    kubefile = Path(options.file) if options.file else context / "Kubefile"
    requested = build_options(options, context=context, kubefile=kubefile, tag=options.tag)
    image: ClusterImage = _run_build(requested, getattr(options, "root", None), options.builder, progress, False)
    return image


def _with_progress(options: argparse.Namespace, call: Callable[[Engine], _T]) -> _T:
    """An engine call whose progress lines go to the cell's output."""
    with EventPrinter(sys.stdout) as printer:
        return call(engine_for(options, printer))


_VALUES: dict[str, Callable[[argparse.Namespace, str], Any]] = {
    "images": lambda o, _: cluster_images_dataframe(engine_for(o).images()),
    "list-images": _list_images,
    "inspect": lambda o, _: JsonView(engine_for(o).inspect(o.name), title=o.name),
    "parse": lambda o, _: expand_kubefile(parse_kubefile(o.file), dict(o.build_arg)),
    "build": _build,
    "tag": lambda o, _: engine_for(o).tag(o.source, o.target),
    "load": lambda o, _: engine_for(o).load(o.input),
    "check": lambda o, _: engine_for(o).check(o.registry_folder),
    "save-images": lambda o, _: _with_progress(o, lambda engine: engine.save_images(
        o.output, o.images, list_file=o.file, platforms=o.platform, skip_missing_platform=o.skip_missing_platform)),
    "pull": lambda o, _: _with_progress(o, lambda engine: engine.pull(o.reference, platform=o.platform)),
    "push": lambda o, _: _with_progress(o, lambda engine: engine.push(o.name, o.destination or o.name)),
}


def _parse_cli(argv: list[str]) -> argparse.Namespace | None:
    """The CLI's parser, its errors (printed, then SystemExit) turned into a cell failure."""
    if argv[:1] == ["login"] and any(_names_password(arg) for arg in argv[1:]):
        raise UsageError("a password never goes on the magic line: %kubenb login REGISTRY [-u USER] asks for it")
    if argv[:1] == ["login"] and not any(arg in ("-u", "--username") or arg.startswith(("-u", "--username="))
                                         for arg in argv[1:]):
        argv = [*argv, "--username", "-"]  # the login form asks for the user
    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors):
            return build_parser().parse_args(argv)
    except SystemExit as stop:
        if stop.code in (0, None):
            return None  # --help or --version printed
        raise UsageError(errors.getvalue().strip().replace("kubenb:", "%kubenb:", 1) or "bad arguments") from None


def _names_password(arg: str) -> bool:
    return arg in ("-p", "--password", "--password-stdin") or arg.startswith(("--password=", "-p"))


def _login(options: argparse.Namespace) -> Any:
    """getpass when the user is named; the login form otherwise (in a kernel that draws it)."""
    if options.username != "-":
        password = getpass.getpass(f"Password for {options.username} at {options.registry}: ")
        insecure = [options.registry] if options.insecure_registry else []
        try:
            path = Engine(insecure=insecure, ca_files=options.registry_ca).login(
                options.registry, options.username, password)
        finally:
            del password
        print(f"Login succeeded: credentials for {options.registry} saved in {path}")
        return None
    from kubenb.widgets import LoginForm  # noqa: PLC0415

    return LoginForm(options.registry, insecure=options.insecure_registry, ca_files=options.registry_ca)


def _fill(text: str, namespace: Mapping[str, Any], where: str) -> str:
    """``{{name}}`` from the notebook's variables; an unknown name fails with its line."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in namespace:
            line = text.count("\n", 0, match.start()) + 1
            raise UsageError(f"{where}:{line}: {{{{{name}}}}} names no variable of the notebook; "
                             f"define {name} in a cell above, then run this one again")
        return str(namespace[name])

    return _PLACEHOLDER.sub(value, text)
