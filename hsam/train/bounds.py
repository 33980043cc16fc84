"""The allowed range of every numeric training setting, in one table that both the command line (argparse types)
and ``TrainSettings.validate`` (the Python API, the Slicer module) check against.

Every value must also be finite: ``float("inf")`` and ``float("nan")`` parse as numbers, and an infinite learning
rate once trained a model to NaN weights that a run then reported as complete.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional


@dataclass(frozen=True)
class Bounds:
    low: float
    high: float = math.inf
    low_open: bool = False  # the low end itself is not allowed
    high_open: bool = False
    integer: bool = False
    hint: str = ""  # what a value means, for the error message

    def describe(self) -> str:
        """'in (0, 1]', 'at least 1 (an integer)': the phrase after 'must be'."""
        if self.high == math.inf:
            text = f"{'greater than' if self.low_open else 'at least'} {self.low:g}"
        else:
            text = f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"
        return text + (" (an integer)" if self.integer else "")

    def problem(self, value: Any) -> Optional[str]:
        """None when ``value`` is allowed, else what is wrong with it."""
        if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                (self.integer and not float(value).is_integer()):
            return f"must be {self.describe()}, not {value!r}"
        ok = math.isfinite(value) and \
            (value > self.low if self.low_open else value >= self.low) and \
            (value < self.high if self.high_open else value <= self.high)
        return None if ok else f"must be {self.describe()}, not {value!r}{self.hint}"


UNIT = Bounds(0, 1)
COUNT = Bounds(1, integer=True)

# Setting -> its bounds. A setting that may be None (meaning "automatic") is checked only when given.
NUMERIC_BOUNDS: Dict[str, Bounds] = {
    "lora_rank": Bounds(0, integer=True, hint=" (0: no LoRA)"),
    "decoder_mlp_dim": COUNT,
    "val_cases": COUNT,
    "slice_fraction": Bounds(0, 1, low_open=True),
    "empty_slice_fraction": UNIT,
    "val_slices": COUNT,
    "organ_jitter": Bounds(0, 0.5, hint=" (0.1 shifts a CT organ by up to 40 HU)"),
    "epochs": COUNT,
    "batch_size": COUNT,
    "accumulate": COUNT,
    "lr": Bounds(0, 1, low_open=True, hint=" (AdamW's rate; the recipe's is 1e-3, and above about 0.01 training "
                "usually diverges)"),
    "weight_decay": Bounds(0, 10, hint=" (AdamW's decoupled decay; the recipe's is 0.1)"),
    "warmup_steps": Bounds(0, integer=True),
    "dice_weight": UNIT,
    "early_stop": COUNT,
    "ema": Bounds(0, 1, high_open=True, hint=": 0.98 by default, 0 turns the weight average off"),
    "cached_views": COUNT,
    "seed": Bounds(0, integer=True),
}


def option_name(setting: str) -> str:
    """The command-line flag of a setting."""
    return {"empty_slice_fraction": "--empty-slices"}.get(setting, "--" + setting.replace("_", "-"))


def argparse_type(setting: str) -> Callable[[str], Any]:
    """An argparse ``type`` that parses a setting's value and refuses it when out of bounds (exit code 2)."""
    import argparse

    bounds = NUMERIC_BOUNDS[setting]

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
