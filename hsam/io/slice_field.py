"""The in-plane field a slice is shown to the model in: square in millimetres, so organs keep their shape.

Every slice is resized to the model's square input. A field that is not square in millimetres (a 366 x 303 mm CT
crop, a 114 x 88 mm cardiac MR crop) would be stretched by a different factor along each axis, and by a different
one for each scan: organs change shape between scans. The "square" field pads the slice to a square in
millimetres first, with the normalised value 0 (the bottom of the intensity range: air in CT, background in MR),
and the padding is cut off the prediction again.

The model card says which field a model was trained with (``slice_field``). Models written before the card had
that field were trained on stretched slices and keep them; a square field (the BTCV training scans) is the same
in both.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Optional, Sequence

import numpy as np

SQUARE = "square"
STRETCHED = "stretched"
FIELDS = (SQUARE, STRETCHED)


def slice_field_of(card: Optional[Dict[str, Any]]) -> str:
    """The field of a model's card; a new model (no card yet) gets the square one."""
    if card is None:
        return SQUARE
    return card.get("slice_field", STRETCHED)


@dataclass(frozen=True)
class Padding:
    """Rows added above and below, columns before and after, to a (..., j, i) slice."""

    top: int = 0
    bottom: int = 0
    left: int = 0
    right: int = 0

    def __bool__(self) -> bool:
        return any((self.top, self.bottom, self.left, self.right))

    def pad(self, slices: np.ndarray, value: float = 0.0) -> np.ndarray:
        if not self:
            return slices
        widths = [(0, 0)] * (slices.ndim - 2) + [(self.top, self.bottom), (self.left, self.right)]
        return np.pad(slices, widths, mode="constant", constant_values=value)

    def crop(self, padded):
        """The original slice region of a padded (..., j, i) array or tensor."""
        if not self:
            return padded
        j, i = padded.shape[-2:]
        return padded[..., self.top:j - self.bottom, self.left:i - self.right]


def field_padding(shape_ji: Sequence[int], spacing_ij: Sequence[float], field: str) -> Padding:
    """The padding that makes a slice of ``shape_ji`` (rows j, columns i) with pixel size ``spacing_ij`` (i, j in
    mm, SimpleITK's order) square in millimetres; none for the stretched field."""
    if field not in FIELDS:
        raise ValueError(f"unknown slice field {field!r}; expected one of {', '.join(FIELDS)}")
    if field == STRETCHED:
        return Padding()
    rows, cols = int(shape_ji[0]), int(shape_ji[1])
    size_i, size_j = float(spacing_ij[0]), float(spacing_ij[1])
    side = max(rows * size_j, cols * size_i)
    extra_rows = max(0, int(round(side / size_j)) - rows)
    extra_cols = max(0, int(round(side / size_i)) - cols)
    return Padding(extra_rows // 2, extra_rows - extra_rows // 2, extra_cols // 2, extra_cols - extra_cols // 2)
