"""Per-organ clean-up: keep each organ's largest 26-connected component, dropping stray islands.

Each organ is labelled within its own bounding box (one ``find_objects`` pass over the volume finds them all), in
place, with 16-bit component numbers while they fit: on a 512x512x117 CT, labelling every organ over the whole
volume (as SimpleITK's ConnectedComponent and RelabelComponent did here before) took 1.9 s and 550 MB over the
labels: a uint8 mask, its image copy and three 32-bit volumes per organ.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np
from scipy import ndimage

_26_CONNECTED = np.ones((3, 3, 3), dtype=bool)


def keep_largest_components(labels: np.ndarray, classes: Iterable[int]) -> np.ndarray:
    """labels (k, j, i) uint8 -> the same array, changed in place: only the largest 3D component (26-connected)
    of each class in ``classes`` kept, its other voxels set to 0. Of equally large components, the first in
    (k, j, i) order stays."""
    classes = [int(c) for c in classes]
    boxes = ndimage.find_objects(labels, max_label=max(classes, default=0))
    for value in classes:
        box = boxes[value - 1] if 0 < value <= len(boxes) else None
        if box is None:
            continue
        crop = labels[box]  # a view: changes go to ``labels``
        components, count = _label(crop == value)
        if count <= 1:
            continue
        largest = int(np.argmax(np.bincount(components.ravel())[1:])) + 1
        components[components == largest] = 0
        crop[components > 0] = 0
    return labels


def _label(mask: np.ndarray):
    """Component numbers in uint16 (half the memory of the usual int32) unless there are too many for it."""
    try:
        return ndimage.label(mask, _26_CONNECTED, output=np.uint16)
    except RuntimeError:  # more than 65535 components
        return ndimage.label(mask, _26_CONNECTED)
