"""Allowed ranges of numbers: how one is described ("in (0, 1]", "at least 1 (an integer)") and checked, for the
command line (argparse types) and ``TrainSettings.validate`` (the Python API, the Slicer module) alike. Which
training setting has which range is declared in ``options.py``. Standard library only: HSAM Train reads it too.

Every value must also be finite: ``float("inf")`` and ``float("nan")`` parse as numbers, and an infinite learning
rate once trained a model to NaN weights that a run then reported as complete.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Optional


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


def argparse_type(bounds: Bounds) -> Callable[[str], Any]:
    """An argparse ``type`` that parses a value and refuses it when out of ``bounds`` (exit code 2)."""
    import argparse

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
