"""``hsam train``: fine-tune H-SAM on a few annotated cases (docs/training.md). Its arguments are the options
declared in ``hsam/train/options.py``, in their groups and order."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Callable

from ..stop import EXIT_STOPPED


def settings_from_args(args: argparse.Namespace):
    """The settings the command line gives, the rest from ``--preset`` or the defaults. Arguments not given are
    absent from ``args`` (their argparse default is SUPPRESS), so a flag given with its default value still wins
    over the preset."""
    from ..train import TrainSettings
    from ..train.options import declared, settings_values

    given = {f.name: getattr(args, f.name) for f, _ in declared() if hasattr(args, f.name)}
    given.update({f.name: [tuple(pair) for pair in given[f.name]] for f, option in declared()
                  if option.pairs and f.name in given})
    return TrainSettings(**settings_values(given, getattr(args, "preset", None)))


def run(args: argparse.Namespace) -> int:
    from ..train import TrainingStopped, train

    settings = settings_from_args(args)
    try:
        summary = train(settings)
    except TrainingStopped as stopped:  # the state is saved: --resume continues the run
        print(f"hsam: {stopped}", file=sys.stderr)
        return EXIT_STOPPED
    if settings.progress != "jsonl":
        print(json.dumps(summary, indent=2))
    return 0


def _number(bounds) -> Callable[[str], Any]:
    """An argparse ``type`` that parses a number and refuses it when out of ``bounds`` (exit code 2)."""

    def parse(text: str):
        try:
            value = int(text) if bounds.integer else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {bounds.describe()}, not {text!r}") from None
        problem = bounds.problem(value)
        if problem:
            raise argparse.ArgumentTypeError(problem)
        return value

    parse.__name__ = "integer" if bounds.integer else "number"
    return parse


def register(sub) -> None:
    from dataclasses import MISSING

    from ..train.options import GROUPS, PRESETS, declared, flag, preset_flags

    p = sub.add_parser("train", help="fine-tune a model on a few annotated cases",
                       description="Fine-tune H-SAM on image + label pairs; writes a model directory.")
    groups = {key: p.add_argument_group(title) for key, title in GROUPS.items()}
    for f, option in declared():
        name = flag(f.name)
        # Not given: absent (SUPPRESS), so that --preset can tell given values from defaults; help states the
        # table's default.
        help_text = option.help.replace("%(default)s", str(f.default)) if option.help else None
        arguments = dict(dest=f.name, help=help_text, default=argparse.SUPPRESS)
        if f.default is MISSING and f.default_factory is MISSING:
            arguments.update(required=True)
        elif isinstance(f.default, bool):  # the flag turns the default around
            arguments.update(action="store_false" if f.default else "store_true")
        elif option.pairs:
            arguments.update(nargs=2, action="append")
        else:
            arguments.update(choices=option.choices or None, type=_number(option.bounds) if option.bounds else None)
        if "action" not in arguments or option.pairs:  # as argparse would name it from the flag, or the choices
            arguments.update(metavar=option.metavar or (None if option.choices else name[2:].replace("-", "_").upper()))
        groups[option.group].add_argument(name, **arguments)
    groups["recipe"].add_argument(
        "--preset", choices=tuple(PRESETS),
        help="a named recipe for the settings not given: few-shot (a handful of labelled scans on a CPU) sets "
        + preset_flags("few-shot"))
    p.set_defaults(func=run)
