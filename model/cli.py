"""The `im2latex` command: one argparse subcommand per module.

Each module exposes ``add_arguments(parser)`` and ``run(args) -> int``.  A module that is not
part of this installation (ModuleNotFoundError naming exactly it) is left out of the menu; any
other import failure is a real bug and is raised.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from importlib import metadata

SUBCOMMANDS = [
    ("predict", "model.predict", "read the formula in image files and print its LaTeX"),
    ("data", "model.data.cli", "build the formula corpus and render training images"),
    ("train", "model.train", "train a model"),
    ("evaluate", "model.evaluate", "score a model on rendered or real images"),
    ("export", "model.export", "write a training checkpoint as the bundle the app loads"),
    ("average", "model.average", "average the weights of several checkpoints of one model"),
    ("promote", "model.promote", "bundle a run's checkpoint if it reads better than the bundled model"),
]


def _version() -> str:
    try:
        return metadata.version("im2latex-desktop")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="im2latex", description="Formula images to LaTeX, locally.")
    parser.add_argument("--version", action="version", version=f"im2latex {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name, help_text in SUBCOMMANDS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name == module_name:
                continue
            raise
        sub = commands.add_parser(name, help=help_text, description=(module.__doc__ or help_text).strip())
        module.add_arguments(sub)
        sub.set_defaults(handler=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "handler", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        print("im2latex: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
