"""Is an input what it claims to be? Checks that catch the wrong file before it yields confident nonsense.

A CT model given an MR volume, an MR model given a CT, or a volume of a few voxels, runs without error and "finds"
structures; a CT given to ``hsam evaluate`` as the reference labels is scored as if each HU value were an organ. The
image checks warn (the input may be unusual yet right) and say how to go on; the label check is an error, as no
label map looks like that.

Rules, from the project's test data. The share of voxels below -50 HU tells the two apart: every CT, clipped to the
training window (the 15 btcv_synapse volumes, floor -125 HU) or not (totalsegmentator_tests, also a DICOM series),
has 58-79% of its voxels there (air and fat); the 27 MR volumes (chaos_t2: 0 to ~1000; totalsegmentator_tests MR:
lowest -47; la_mri, z-scored: lowest -0.92) have none. (Air alone, below -500 HU, would miss the clipped CTs: 0%
there, 36-65% in the others.) A CT model warns below 2%; an MR model warns from 20%; a margin of 0.58 to 0 either way.
The model's organs span 30 mm (gallbladder, aorta) to 200 mm (liver), so a slice plane narrower than 60 mm, or of
fewer than 32 voxels a side, cannot show them.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict, List, Optional, Union

import numpy as np
import SimpleITK as sitk

from ..io.volume import VolumeError
from ..models.card import modality_of

CT_LOW_HU = -50.0           # fat is about -100 HU, air -1000 HU (or the window's floor when clipped)
MIN_CT_LOW_FRACTION = 0.02  # a CT model's input: measured CT >= 0.58; MR 0
MAX_MR_LOW_FRACTION = 0.20  # an MR model's input: the same measures, the other way round
MIN_PLANE_MM = 60.0
MIN_PLANE_VOXELS = 32
MAX_LABEL_VALUES = 300      # label maps in use have up to ~200 (TotalSegmentator 117); images have 1,000s


def _sample(volume: np.ndarray, limit: int = 2_000_000) -> np.ndarray:
    """A regular subsample for statistics: a whole CT holds up to a few hundred million voxels."""
    step = max(1, int(np.ceil(volume.size / limit)))
    return volume.ravel()[::step]


def intensity_warning(volume: np.ndarray, card: Dict, source: str) -> Optional[str]:
    """A warning when the intensities do not fit the model's modality: a CT model given what is not Hounsfield
    units of a body CT, an MR model given what is."""
    sample = _sample(volume).astype(np.float32)
    low = float(np.mean(sample < CT_LOW_HU))
    is_ct_model = modality_of(card) == "ct"
    fits = low >= MIN_CT_LOW_FRACTION if is_ct_model else low < MAX_MR_LOW_FRACTION
    if fits:
        return None
    p1, p50, p99 = np.percentile(sample, [1, 50, 99])
    found = (f"{100 * low:.1f}% of voxels below {CT_LOW_HU:.0f} HU, where a CT's air and fat put most of its "
             f"voxels; 1st/50th/99th percentiles {p1:.4g}/{p50:.4g}/{p99:.4g}")
    model = card.get("id", "")
    if is_ct_model:
        return (f"warning: {source}: does not look like a CT in Hounsfield units ({found}). The model {model!r} was "
                "trained on CT: an MR volume, or a CT saved without its rescale slope and intercept, gives missing or "
                "wrong organs. Going on; for MR, fine-tune a model on labelled MR cases (hsam train --modality mr), "
                "and re-export a CT in HU")
    return (f"warning: {source}: looks like a CT in Hounsfield units ({found}; MR intensities are hardly ever below "
            f"{CT_LOW_HU:.0f}). The model {model!r} was trained on MR: a CT gives missing or wrong structures. Going "
            "on; for CT, use a CT model (hsam-abdomen-ct) or fine-tune one on labelled CT cases (hsam train "
            "--modality ct)")


def _extent_mm(image: sitk.Image) -> np.ndarray:
    """Physical size of the volume along the patient's x (right-left), y (front-back), z (feet-head) axes."""
    size = np.array(image.GetSize(), float)
    corners = [image.TransformContinuousIndexToPhysicalPoint([c * (s - 0.5) - (1 - c) * 0.5 for c, s in
                                                             zip(bits, size)])
               for bits in np.ndindex(2, 2, 2)]
    corners = np.array(corners)
    return corners.max(0) - corners.min(0)


def size_warning(image: sitk.Image, source: str) -> Optional[str]:
    """A warning when the axial plane is too small to hold the abdominal organs."""
    extent = _extent_mm(image)
    direction = np.abs(np.array(image.GetDirection()).reshape(3, 3))
    # Voxel axes that lie closest to the patient's x and y: the plane the model segments slice by slice.
    plane_axes = [int(np.argmax(direction[row])) for row in (0, 1)]
    voxels = [image.GetSize()[a] for a in plane_axes]
    if min(extent[:2]) >= MIN_PLANE_MM and min(voxels) >= MIN_PLANE_VOXELS:
        return None
    return (f"warning: {source}: a small volume ({' x '.join(str(s) for s in image.GetSize())} voxels, "
            f"{extent[0]:.0f} x {extent[1]:.0f} x {extent[2]:.0f} mm): its axial plane is smaller than the organs "
            f"this model segments ({MIN_PLANE_MM:.0f} mm and {MIN_PLANE_VOXELS} voxels a side at least), so what it "
            "finds there is not an organ. Going on; give the whole scan (or a crop that holds the organs whole)")


def image_warnings(image: sitk.Image, card: Dict, source: str, volume: Optional[np.ndarray] = None) -> List[str]:
    volume = sitk.GetArrayViewFromImage(image) if volume is None else volume
    return [w for w in (intensity_warning(volume, card, source), size_warning(image, source)) if w]


def warn_if_implausible(image: sitk.Image, card: Dict, source: str,
                        log: Optional[Callable[[str], None]] = None) -> List[str]:
    """Log (to stderr when ``log`` is None) and return the warnings for an image about to be segmented."""
    import sys

    warnings = image_warnings(image, card, source)
    for message in warnings:
        log(message) if log is not None else print(message, file=sys.stderr)
    return warnings


def check_label_values(array: np.ndarray, source: Union[str, Path], role: str = "reference") -> None:
    """A VolumeError when a file given as labels (``role`` "reference" or "prediction") holds an image: negative
    values, fractions, or hundreds of distinct values."""
    sample = _sample(array)
    problems = []
    lowest = array.min()
    if lowest < 0:
        problems.append(f"negative values down to {lowest:.6g}")
    if np.issubdtype(array.dtype, np.floating) and np.any(array != np.round(array)):
        problems.append("fractional values")
    if np.issubdtype(array.dtype, np.integer) and int(array.max()) - int(lowest) < 1 << 24:
        distinct = int(np.count_nonzero(np.bincount((array.ravel().astype(np.int64) - int(lowest)))))
    else:
        distinct = len(np.unique(sample))
    if distinct > MAX_LABEL_VALUES:
        problems.append(f"{distinct} distinct values")
    if problems:
        advice = ("give the label file to --labels (the image to segment goes to --images, with a model)"
                  if role == "reference" else "give label maps (hsam segment's output), or a model to run on "
                  "--images")
        raise VolumeError(f"{source}: given as the {role} labels, but it looks like an image (CT/MR), not a label "
                          f"map ({', '.join(problems)}; values {lowest:.6g} to {array.max():.6g}); {advice}")
