"""Subcommands of ``hsam``: each module has ``register(subparsers)`` that adds its parser and sets ``func``."""
import argparse


def add_slice_options(parser: argparse.ArgumentParser) -> None:
    """The options shared by the commands that segment (hsam/infer/slice_smoothing.py, hsam/infer/box_prompts.py)."""
    parser.add_argument("--slice-smoothing", type=_smoothing_weight, metavar="W",
                        help="mix each slice's class probabilities with the slices above and below, weight W each "
                        "(0 to below 0.5; default: the model card's, else 0: off)")
    parser.add_argument("--box-prompts", type=_box_weight, metavar="W",
                        help="mix in, with weight W, the answer of LiteMedSAM's own box-prompted decoder for the box "
                        "of each organ found on a slice (0 to 1; 1: that decoder alone; LiteMedSAM models only; "
                        "default: the model card's, else 0: off)")


def _weight(text: str, high: float, high_included: bool) -> float:
    try:
        weight = float(text)
    except ValueError:
        weight = float("nan")
    if not (0.0 <= weight <= high if high_included else 0.0 <= weight < high):
        below = "" if high_included else "below "
        raise argparse.ArgumentTypeError(f"must be a number from 0 to {below}{high:g}, not {text!r}")
    return weight


def _smoothing_weight(text: str) -> float:
    return _weight(text, 0.5, high_included=False)


def _box_weight(text: str) -> float:
    return _weight(text, 1.0, high_included=True)
