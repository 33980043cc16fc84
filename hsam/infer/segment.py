"""Segment one volume file: read -> canonical orientation -> batched slices -> post-process -> undo the
orientation onto the exact input grid -> write."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import SimpleITK as sitk

from ..io.orientation import Grid, from_canonical, to_canonical
from ..io.volume import VolumeError, read_image
from ..progress import Reporter
from ..stop import StopRequest
from .memory import return_freed_memory
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
    lo, hi = volume.min(), volume.max()  # NaN propagates through min: no NaN mask of the whole volume
    if np.issubdtype(volume.dtype, np.floating) and np.isnan(lo):
        raise VolumeError(f"{source}: contains NaN voxels; fix or re-export the volume")
    if lo == hi:
        raise VolumeError(f"{source}: every voxel has the value {lo}: the volume is empty")


def segment_image(predictor: SlicePredictor, image: sitk.Image, organs: Optional[Sequence[str]] = None,
                  postprocess: bool = True, uncertainty: bool = False, reporter: Optional[Reporter] = None,
                  stop: Optional[StopRequest] = None, source: str = "volume"):
    """Returns (label image on the input grid, uncertainty image or None, the label specs that were kept)."""
    return _segment([image], predictor, organs, postprocess, uncertainty, reporter, stop, source)


def _segment(held: List[sitk.Image], predictor: SlicePredictor, organs: Optional[Sequence[str]], postprocess: bool,
             uncertainty: bool, reporter: Optional[Reporter], stop: Optional[StopRequest], source: str):
    """``segment_image`` on the image in ``held``, which is emptied: when nothing else refers to the image, its
    voxels are freed as soon as the slices are predicted, before the labels are post-processed and written."""
    card = predictor.model.card
    specs = select_labels(card["labels"], organs)
    image = held.pop()
    original = Grid.of(image)
    canonical, code = to_canonical(image, card.get("canonical_orientation", "LPS"))
    volume = sitk.GetArrayViewFromImage(canonical)
    check_intensities(volume, source)
    warn_if_implausible(image, card, source, reporter.log if reporter else None)
    del image
    grid = Grid.of(canonical)
    result = predictor.predict(
        volume, uncertainty,
        on_progress=(lambda done, total: reporter.progress(done, total, stage="segmenting", case=source))
        if reporter else None,
        check_stop=stop.check if stop else None, spacing=canonical.GetSpacing()[:2])
    del volume, canonical
    labels, entropy = result
    del result
    keep = [s["value"] for s in specs]
    if organs:
        kept = np.zeros(256, np.uint8)
        kept[keep] = keep
        for k in range(len(labels)):  # slice by slice: no full-size mask
            labels[k] = kept[labels[k]]
    if postprocess:
        keep_largest_components(labels, keep)
    label_image = _on_grid(labels, grid)
    del labels
    uncertainty_image = None
    if entropy is not None:
        uncertainty_image = from_canonical(_on_grid(entropy, grid), original, code)
        del entropy
    return from_canonical(label_image, original, code), uncertainty_image, specs


def _on_grid(array: np.ndarray, grid: Grid) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    grid.apply_to(image)
    return image


def segment_file(predictor: SlicePredictor, input_path: Union[str, Path], output_path: Union[str, Path],
                 organs: Optional[Sequence[str]] = None, postprocess: bool = True,
                 uncertainty_path: Optional[Union[str, Path]] = None, reporter: Optional[Reporter] = None,
                 stop: Optional[StopRequest] = None) -> Path:
    try:
        return _segment_and_write(predictor, input_path, output_path, organs, postprocess, uncertainty_path,
                                  reporter, stop)
    finally:
        return_freed_memory()  # the volume's buffers, all freed once the call above has returned


def _segment_and_write(predictor: SlicePredictor, input_path: Union[str, Path], output_path: Union[str, Path],
                       organs: Optional[Sequence[str]], postprocess: bool,
                       uncertainty_path: Optional[Union[str, Path]], reporter: Optional[Reporter],
                       stop: Optional[StopRequest]) -> Path:
    labels, uncertainty, specs = _segment([read_image(input_path)], predictor, organs, postprocess,
                                          uncertainty_path is not None, reporter, stop, str(input_path))
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
