"""Segment one volume file: read -> canonical orientation -> batched slices -> post-process -> undo the
orientation onto the exact input grid -> write."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import SimpleITK as sitk

from ..io.orientation import from_canonical, to_canonical
from ..io.volume import VolumeError, read_image
from ..progress import Reporter
from ..stop import StopRequest
from .output import write_image, write_labels
from .plausibility import warn_if_implausible
from .postprocess import keep_largest_components
from .slice_predictor import SlicePredictor


def _key(name: str) -> str:
    return name.lower().replace("_", " ").replace("-", " ").strip()


def select_labels(label_specs: List[Dict], organs: Optional[Sequence[str]]) -> List[Dict]:
    if not organs:
        return label_specs
    by_name = {_key(s["name"]): s for s in label_specs}
    unknown = [o for o in organs if _key(o) not in by_name]
    if unknown:
        raise ValueError(f"unknown organ(s) {', '.join(unknown)}; this model segments: "
                         f"{', '.join(s['name'] for s in label_specs)}")
    return [by_name[_key(o)] for o in organs]


def check_intensities(volume: np.ndarray, source: Union[str, Path]) -> None:
    if np.issubdtype(volume.dtype, np.floating) and np.isnan(volume).any():
        raise VolumeError(f"{source}: contains NaN voxels; fix or re-export the volume")
    lo, hi = volume.min(), volume.max()
    if lo == hi:
        raise VolumeError(f"{source}: every voxel has the value {lo}: the volume is empty")


def segment_image(predictor: SlicePredictor, image: sitk.Image, organs: Optional[Sequence[str]] = None,
                  postprocess: bool = True, uncertainty: bool = False, reporter: Optional[Reporter] = None,
                  stop: Optional[StopRequest] = None, source: str = "volume"):
    """Returns (label image on the input grid, uncertainty image or None, the label specs that were kept)."""
    card = predictor.model.card
    specs = select_labels(card["labels"], organs)
    canonical, code = to_canonical(image, card.get("canonical_orientation", "LPS"))
    volume = sitk.GetArrayViewFromImage(canonical)
    check_intensities(volume, source)
    warn_if_implausible(image, card, source, reporter.log if reporter else None)
    result = predictor.predict(
        volume, uncertainty,
        on_progress=(lambda done, total: reporter.progress(done, total, stage="segmenting", case=source))
        if reporter else None,
        check_stop=stop.check if stop else None)
    labels = result.labels
    keep = [s["value"] for s in specs]
    if organs:
        labels[~np.isin(labels, keep)] = 0
    if postprocess:
        labels = keep_largest_components(labels, keep)
    label_image = sitk.GetImageFromArray(labels)
    label_image.CopyInformation(canonical)
    uncertainty_image = None
    if result.uncertainty is not None:
        uncertainty_image = sitk.GetImageFromArray(result.uncertainty)
        uncertainty_image.CopyInformation(canonical)
        uncertainty_image = from_canonical(uncertainty_image, image, code)
    return from_canonical(label_image, image, code), uncertainty_image, specs


def segment_file(predictor: SlicePredictor, input_path: Union[str, Path], output_path: Union[str, Path],
                 organs: Optional[Sequence[str]] = None, postprocess: bool = True,
                 uncertainty_path: Optional[Union[str, Path]] = None, reporter: Optional[Reporter] = None,
                 stop: Optional[StopRequest] = None) -> Path:
    image = read_image(input_path)
    labels, uncertainty, specs = segment_image(predictor, image, organs, postprocess, uncertainty_path is not None,
                                               reporter, stop, source=str(input_path))
    if stop:
        stop.check()  # a cancel that arrives after the last batch still writes nothing
    if uncertainty_path is None:
        return write_labels(labels, output_path, specs)
    # The map first: should the label file then fail, the map is taken back, so no half result stays behind.
    written = write_image(uncertainty, uncertainty_path)
    try:
        return write_labels(labels, output_path, specs)
    except BaseException:
        written.unlink(missing_ok=True)
        raise
