"""Dice and HD95 per organ, with the TransUNet / H-SAM conventions so numbers compare with the papers.

HD95 is the larger of the two directed 95th-percentile surface distances (medpy's definition), computed with
SciPy's Euclidean distance transform; "voxel" uses unit spacing on the (slice, row, column) grid as the papers do,
"mm" the volume's real spacing. Empty cases follow TransUNet: prediction and reference both non-empty -> computed;
prediction non-empty but reference empty -> Dice 1, HD95 0; prediction empty -> Dice 0, HD95 0.
"""
from __future__ import annotations

from typing import Dict, NamedTuple, Sequence

import numpy as np
from scipy import ndimage


class OrganScore(NamedTuple):
    dice: float
    hd95_voxel: float
    hd95_mm: float


def dice(pred: np.ndarray, ref: np.ndarray) -> float:
    total = pred.sum() + ref.sum()
    return float(2.0 * np.logical_and(pred, ref).sum() / total) if total else 1.0


def _surface(mask: np.ndarray) -> np.ndarray:
    return mask & ~ndimage.binary_erosion(mask, ndimage.generate_binary_structure(mask.ndim, 1), border_value=0)


def hd95(pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float]) -> float:
    """Symmetric 95th-percentile Hausdorff distance between two non-empty masks, in units of ``spacing``."""
    # Work on the joint bounding box (plus a margin) so large volumes stay cheap.
    box = ndimage.find_objects((pred | ref).astype(np.uint8))[0]
    box = tuple(slice(max(0, s.start - 1), s.stop + 1) for s in box)
    p, r = _surface(pred[box]), _surface(ref[box])
    to_ref = ndimage.distance_transform_edt(~r, sampling=spacing)[p]
    to_pred = ndimage.distance_transform_edt(~p, sampling=spacing)[r]
    return float(max(np.percentile(to_ref, 95), np.percentile(to_pred, 95)))


def score_organs(pred: np.ndarray, ref: np.ndarray, values: Sequence[int],
                 spacing_kji: Sequence[float]) -> Dict[int, OrganScore]:
    """pred/ref: (k, j, i) label arrays on the same grid; spacing in the same (k, j, i) order."""
    if pred.shape != ref.shape:
        raise ValueError(f"prediction {pred.shape[::-1]} and reference {ref.shape[::-1]} are on different grids")
    scores = {}
    for value in values:
        p, r = pred == value, ref == value
        if p.any() and r.any():
            scores[value] = OrganScore(dice(p, r), hd95(p, r, (1.0, 1.0, 1.0)), hd95(p, r, spacing_kji))
        elif p.any():
            scores[value] = OrganScore(1.0, 0.0, 0.0)
        else:
            scores[value] = OrganScore(0.0, 0.0, 0.0)
    return scores
