"""Slice augmentation as the paper names it: rotation, scaling and elastic deformation, plus optional intensity
jitter of the whole slice and of each organ.

All geometric changes are composed into one sampling grid and applied once with ``scipy.ndimage.map_coordinates``:
linear for the image, nearest for the labels, so a label voxel is always one of the original classes (the released
code interpolated labels linearly and truncated, inventing classes at boundaries). There is deliberately no mirroring:
a left-right flip would swap the meaning of the left/right kidney labels.

Unlike the released code's mutually exclusive branches, each transform is drawn independently; its strongest
"scaling" (a crop of 20-80% of the slice, i.e. zooming in up to 5×) is replaced by a moderate zoom in both
directions, which keeps whole organs in view on the few slices of a few-shot run.

The organ jitter shifts each labelled organ's intensity by its own random amount. Contrast phase moves organs
apart, not together: in the BTCV cases the median liver lies between 29 and 142 HU and the kidneys reach 262 HU in
the most enhanced scan, so a few training cases of one phase leave a model blind to another. A global
contrast/brightness change cannot imitate that; a per-organ shift can, because the label says where each organ is.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import numpy as np
from scipy.ndimage import gaussian_filter, map_coordinates, zoom


@dataclass(frozen=True)
class AugmentSettings:
    rotate_p: float = 0.5
    max_angle_deg: float = 20.0
    scale_p: float = 0.5
    scale_range: Tuple[float, float] = (0.8, 1.25)
    elastic_p: float = 0.25
    elastic_alpha: float = 2.0  # displacement amplitude, times the slice width (as the released code)
    elastic_sigma: float = 0.08  # smoothing of the displacement field, times the slice width
    intensity_jitter: bool = False
    contrast_range: Tuple[float, float] = (0.9, 1.1)
    brightness_range: Tuple[float, float] = (-0.05, 0.05)
    organ_jitter: float = 0.0  # largest per-organ intensity shift, in normalised units (0.1 = 40 HU for CT); 0: off
    organ_jitter_p: float = 0.5
    organ_edge_sigma: float = 1.0  # pixels: the shift fades in across an organ's edge, as partial volume does
    organ_levels_p: float = 0.0  # chance that each organ's mean moves to a random level in [0, 1]; 0: off
    organ_gain_p: float = 0.0  # chance that each organ's intensities are multiplied by a random gain; 0: off
    organ_gain_range: Tuple[float, float] = (0.25, 2.0)  # drawn log-uniformly: down to a quarter, up to twice
    coarse_p: float = 0.0  # chance that a view is shown at coarser pixels (blurred, as a low-resolution scan); 0: off
    coarse_range: Tuple[float, float] = (1.5, 4.0)  # how many times coarser


def augment_slice(image: np.ndarray, label: np.ndarray, rng: np.random.Generator,
                  settings: AugmentSettings = AugmentSettings()) -> Tuple[np.ndarray, np.ndarray]:
    """(H, W) normalised image and class labels -> augmented copies."""
    h, w = image.shape
    # Draw every random number in a fixed order so one seed always gives the same transform.
    rotate, scale, elastic, jitter = rng.random(4)
    angle = np.deg2rad(rng.uniform(-settings.max_angle_deg, settings.max_angle_deg))
    zoom = float(np.exp(rng.uniform(*np.log(settings.scale_range))))
    noise = rng.uniform(-1.0, 1.0, size=(2, h, w)) if elastic < settings.elastic_p else None
    contrast, brightness = rng.uniform(*settings.contrast_range), rng.uniform(*settings.brightness_range)

    angle = angle if rotate < settings.rotate_p else 0.0
    zoom = zoom if scale < settings.scale_p else 1.0
    if angle or zoom != 1.0 or noise is not None:
        coords = _sampling_grid(h, w, angle, zoom)
        if noise is not None:
            width = max(h, w)
            coords += np.stack([gaussian_filter(n, settings.elastic_sigma * width) for n in noise]) \
                * settings.elastic_alpha * width
        image = map_coordinates(image, coords, order=1, mode="constant", cval=0.0).astype(np.float32)
        label = map_coordinates(label, coords, order=0, mode="constant", cval=0).astype(label.dtype)
    # Drawn after everything above, so views made without the organ jitter stay the same.
    if settings.organ_jitter > 0 and rng.random() < settings.organ_jitter_p:
        image = _shift_organs(image, label, rng, settings)
    if settings.organ_levels_p > 0 and rng.random() < settings.organ_levels_p:
        image = _random_organ_levels(image, label, rng, settings)
    if settings.organ_gain_p > 0 and rng.random() < settings.organ_gain_p:
        image = _random_organ_gains(image, label, rng, settings)
    if settings.intensity_jitter and jitter < 0.5:
        image = np.clip(image * contrast + brightness, 0.0, 1.0).astype(np.float32)
    if settings.coarse_p > 0 and rng.random() < settings.coarse_p:
        image = coarser_pixels(image, float(np.exp(rng.uniform(*np.log(settings.coarse_range)))))
    return image, label


def coarser_pixels(image: np.ndarray, factor: float) -> np.ndarray:
    """The slice as a scan with ``factor`` times larger pixels shows it after ``hsam segment`` resizes it back:
    each coarse pixel averages its area (a Gaussian of that width, then sampling), and the coarse slice is
    interpolated linearly to the original size. A 3 mm CT resized to the model input looks like this."""
    h, w = image.shape
    blurred = gaussian_filter(image, sigma=0.4 * factor, mode="nearest")
    small = zoom(blurred, (max(2, round(h / factor)) / h, max(2, round(w / factor)) / w), order=1, mode="nearest",
                 grid_mode=True)
    return zoom(small, (h / small.shape[0], w / small.shape[1]), order=1, mode="nearest",
                grid_mode=True).astype(np.float32)


def _shift_organs(image: np.ndarray, label: np.ndarray, rng: np.random.Generator, settings: AugmentSettings
                  ) -> np.ndarray:
    """Adds to each organ (label > 0) a shift drawn uniformly in ±organ_jitter; background stays as it is."""
    shifts = np.zeros(int(label.max()) + 1, dtype=np.float32)
    shifts[1:] = rng.uniform(-settings.organ_jitter, settings.organ_jitter, size=len(shifts) - 1)
    return _add_per_organ(image, label, shifts, settings)


def _random_organ_levels(image: np.ndarray, label: np.ndarray, rng: np.random.Generator, settings: AugmentSettings
                         ) -> np.ndarray:
    """Moves each organ's mean intensity to a level drawn uniformly in [0, 1], keeping its texture (domain
    randomisation: a structure is then found by its shape and edges, whatever its brightness in this scan)."""
    classes = int(label.max()) + 1
    counts = np.bincount(label.ravel(), minlength=classes)
    sums = np.bincount(label.ravel(), weights=image.ravel().astype(np.float64), minlength=classes)
    levels = rng.uniform(0.0, 1.0, size=classes)
    shifts = np.where(counts > 0, levels - sums / np.maximum(counts, 1), 0.0).astype(np.float32)
    shifts[0] = 0.0
    return _add_per_organ(image, label, shifts, settings)


def _random_organ_gains(image: np.ndarray, label: np.ndarray, rng: np.random.Generator, settings: AugmentSettings
                        ) -> np.ndarray:
    """Multiplies each organ's intensities by its own gain: an MR signal shortened by iron (a dark liver and
    spleen on T2) or lengthened by oedema scales the organ and its texture together, where an added shift keeps
    the texture's full contrast on a dark organ."""
    gains = np.ones(int(label.max()) + 1, dtype=np.float32)
    gains[1:] = np.exp(rng.uniform(*np.log(settings.organ_gain_range), size=len(gains) - 1))
    return np.clip(image * _per_organ(gains, label, settings), 0.0, 1.0).astype(np.float32)


def _add_per_organ(image: np.ndarray, label: np.ndarray, shifts: np.ndarray, settings: AugmentSettings
                   ) -> np.ndarray:
    return np.clip(image + _per_organ(shifts, label, settings), 0.0, 1.0).astype(np.float32)


def _per_organ(values: np.ndarray, label: np.ndarray, settings: AugmentSettings) -> np.ndarray:
    """Each pixel's value by its class, faded across organ edges as partial volume does."""
    field = values[label]
    return gaussian_filter(field, settings.organ_edge_sigma) if settings.organ_edge_sigma > 0 else field


def _sampling_grid(h: int, w: int, angle: float, zoom: float) -> np.ndarray:
    """(2, H, W) input coordinates of each output pixel for a rotation by ``angle`` and a zoom about the centre."""
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    y, x = np.meshgrid(np.arange(h, dtype=np.float64) - cy, np.arange(w, dtype=np.float64) - cx, indexing="ij")
    cos, sin = np.cos(angle) / zoom, np.sin(angle) / zoom
    return np.stack([cos * y - sin * x + cy, sin * y + cos * x + cx])
