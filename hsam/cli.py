"""``hsam`` command line: one module per subcommand under ``hsam/commands``."""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import List, Optional

from . import __version__
from .progress import EXIT_ERROR
from .stop import EXIT_STOPPED, StopRequested, stop_on_terminate

COMMANDS = ("info", "convert", "segment", "evaluate", "benchmark", "train", "models")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hsam", description="H-SAM medical image segmentation engine")
    parser.add_argument("--version", action="version", version=f"hsam {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(f"hsam.commands.{name}").register(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    try:
        with stop_on_terminate():
            return _run(argv)
    except (KeyboardInterrupt, StopRequested):  # before a command installs its own handlers (e.g. importing torch)
        print("hsam: stopped by request", file=sys.stderr)
        return EXIT_STOPPED


def _run(argv: Optional[List[str]]) -> int:
    from .models.card import ModelCardError
    from .weights import CheckpointError

    args = build_parser().parse_args(argv)
    if args.command in ("segment", "evaluate", "train"):
        from .allocator import keep_freed_memory

        keep_freed_memory()
    try:
        return args.func(args)
    except (CheckpointError, ModelCardError, ValueError, OSError) as exc:
        print(f"hsam: error: {exc}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
