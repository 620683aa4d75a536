"""The handlers of the ``kubenb`` subcommands: parsed options -> one engine call -> its text.

Each returns the exit status. Results go to stdout, warnings and progress to stderr; errors
are raised (``main`` prints them as one line). The parser imports this module only when a command
runs, and the engine's heavier queries are imported by the handlers that use them, so
``kubenb images`` loads the store and nothing of discovery or the registry client
(tests/test_startup.py).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from kubenb.cli.engine_calls import build_options, engine_for, list_images_of
from kubenb.display import EventPrinter, human_size, image_list_csv, image_list_plain, image_list_table, locations_text
from kubenb.engine import Engine
from kubenb.errors import KubenbError
from kubenb.model import ImageList, Kubefile


def run_list_images(options: argparse.Namespace) -> int:
    images = list_images_of(options)
    for warning in images.warnings:
        print(f"kubenb: warning: {warning}", file=sys.stderr)
    for invalid in images.invalid:
        print(f"kubenb: warning: {invalid.location}: invalid image reference {invalid.written!r}: "
              f"{invalid.reason}", file=sys.stderr)
    if options.why:
        return _print_why(images, options.why)
    print(_RENDERERS[options.output](images), end="")
    return 0


def _print_why(images: ImageList, image: str) -> int:
    from kubenb.engine import why  # noqa: PLC0415  (the queries load the Kubefile parser and registry names)

    locations = why(images, image)
    if not locations:
        raise KubenbError(f"{image} is not in the image list", hint="run kubenb list-images to see the list")
    print(locations_text(locations), end="")
    return 0


_RENDERERS: dict[str, Callable[[ImageList], str]] = {
    "table": image_list_table,
    "json": lambda images: json.dumps(images.to_dict(), indent=2) + "\n",
    "csv": image_list_csv,
    "plain": image_list_plain,
}


def run_save_images(options: argparse.Namespace) -> int:
    with EventPrinter(sys.stderr) as printer:
        result = engine_for(options, printer).save_images(
            options.output, options.images, list_file=options.file, platforms=options.platform,
            skip_missing_platform=options.skip_missing_platform,
        )
    skipped = sum(image.skipped for image in result.images)
    left_out = sum(image.left_out for image in result.images)
    print(f"saved {len(result.images) - left_out} images into {options.output} "
          f"({human_size(result.fetched_bytes)} fetched, {skipped} already complete"
          + (f", {left_out} left out: no requested platform)" if left_out else ")"))
    return 0


def run_login(options: argparse.Namespace) -> int:
    if options.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif options.password is not None:
        password = options.password
    elif sys.stdin.isatty():
        import getpass  # noqa: PLC0415

        password = getpass.getpass(f"Password for {options.username} at {options.registry}: ")
    else:
        raise KubenbError("no password given", hint="use --password-stdin and pipe the password in")
    insecure = [options.registry] if options.insecure_registry else []
    path = Engine(insecure=insecure, ca_files=options.registry_ca).login(options.registry, options.username, password)
    print(f"Login succeeded: credentials for {options.registry} saved in {path}")
    return 0


def run_logout(options: argparse.Namespace) -> int:
    if Engine().logout(options.registry):
        print(f"Removed the credentials for {options.registry}")
        return 0
    raise KubenbError(f"no credentials saved for {options.registry}")


def run_build(options: argparse.Namespace) -> int:
    context = Path(options.context)
    kubefile = Path(options.file) if options.file else context / "Kubefile"
    requested = build_options(options, context=context, kubefile=kubefile, tag=options.tag)
    with EventPrinter(sys.stderr) as printer:
        image = engine_for(options, printer).build(requested, builder=options.builder)
    print(f"built {image.name} ({image.short_id}, {human_size(image.size)})")
    return 0


def run_push(options: argparse.Namespace) -> int:
    destination = options.destination or options.name
    with EventPrinter(sys.stderr) as printer:
        digest = engine_for(options, printer).push(options.name, destination)
    return _done(f"pushed {options.name} to {destination} ({digest})")


def run_pull(options: argparse.Namespace) -> int:
    with EventPrinter(sys.stderr) as printer:
        image = engine_for(options, printer).pull(options.reference, platform=options.platform)
    return _done(f"pulled {image.name} ({image.short_id})")


def run_check(options: argparse.Namespace) -> int:
    result = engine_for(options).check(options.registry_folder)
    for problem in result.problems:
        print(f"kubenb: {problem}", file=sys.stderr)
    if not result.ok:
        print(f"kubenb: {len(result.problems)} problem(s) found ({result.summary()})", file=sys.stderr)
        return 1
    return _done(f"OK: {result.summary()}")


def run_images(options: argparse.Namespace) -> int:
    images = engine_for(options).images()
    if options.output == "json":
        return _print_json([image.to_dict() for image in images])
    rows = [("NAME", "ID", "CREATED", "SIZE")] + [
        (i.name, i.short_id, i.created, human_size(i.size)) for i in images
    ]
    widths = [max(len(row[c]) for row in rows) for c in range(3)]
    for row in rows:
        print(f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]:<{widths[2]}}  {row[3]}")
    return 0


def _print_json(value: object) -> int:
    print(json.dumps(value, indent=2))
    return 0


def _done(message: str) -> int:
    print(message)
    return 0


def run_inspect(options: argparse.Namespace) -> int:
    return _print_json(engine_for(options).inspect(options.name))


def run_tag(options: argparse.Namespace) -> int:
    return _done(f"tagged {engine_for(options).tag(options.source, options.target).name}")


def run_load(options: argparse.Namespace) -> int:
    return _done("loaded " + ", ".join(image.name for image in engine_for(options).load(options.input)))


def run_rmi(options: argparse.Namespace) -> int:
    engine_for(options).rmi(options.name)
    return _done(f"removed {options.name}")


def run_save(options: argparse.Namespace) -> int:
    engine_for(options).save(options.name, options.output)
    return _done(f"saved {options.name} to {options.output}")


def run_export(options: argparse.Namespace) -> int:
    engine_for(options).export(options.name, options.output)
    return _done(f"exported {options.name} to {options.output}")


def _read_kubefile(path: str, stdin: TextIO) -> Kubefile:
    from kubenb.engine import parse_kubefile  # noqa: PLC0415

    if path == "-":
        return parse_kubefile("<stdin>", text=stdin.read())
    return parse_kubefile(path)


def run_parse(options: argparse.Namespace) -> int:
    from kubenb.engine import expand_kubefile, undeclared_arguments  # noqa: PLC0415

    kubefile = _read_kubefile(options.file, sys.stdin)
    build_args = dict(options.build_arg)
    unknown = undeclared_arguments(kubefile, build_args)
    if unknown:
        print(f"kubenb: warning: {kubefile.path}: --build-arg {', '.join(unknown)} "
              "is not declared by any ARG and has no effect", file=sys.stderr)
    expanded = expand_kubefile(kubefile, build_args)
    if options.output == "json":
        print(json.dumps([i.to_dict() for i in expanded.instructions], indent=2))
    else:
        for instruction in expanded.instructions:
            print(f"{instruction.line:>4}  {instruction.to_text()}")
    return 0
