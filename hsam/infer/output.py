"""Writing results: a label map (.nii.gz, .nrrd, .mha) or a Slicer segmentation (.seg.nrrd) with names, colors and
terminology. Files are written to a temporary name beside the target and renamed, so an interrupted run leaves
no partial output and never half-overwrites an existing file."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Dict, List, Optional, Set, Union

import numpy as np
import SimpleITK as sitk

from ..atomic import write_atomic
from ..models.labels import class_color, terminology_problem

SLICER_CONTEXT = "Segmentation category and type - 3D Slicer General Anatomy list"
LABELMAP_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd")


def output_kind(path: Union[str, Path]) -> str:
    name = str(path).lower()
    if name.endswith(".seg.nrrd"):
        return "segmentation"
    if name.endswith(LABELMAP_SUFFIXES):
        return "labelmap"
    raise ValueError(f"{path}: unsupported output type; use .seg.nrrd (Slicer segmentation), .nii.gz, .nrrd or .mha")


def check_image_output(path: Union[str, Path]) -> None:
    """An image (not a segmentation) output such as the uncertainty map: a volume file suffix."""
    if not str(path).lower().endswith(LABELMAP_SUFFIXES) or str(path).lower().endswith(".seg.nrrd"):
        raise ValueError(f"{path}: unsupported type for an image output; use .nii.gz, .nrrd or .mha")


def written_files(path: Union[str, Path]) -> List[Path]:
    """Every file a write to ``path`` creates or replaces: a MetaImage header also has its compressed data file."""
    path = Path(path)
    if path.name.lower().endswith(".mhd"):
        return [path, path.with_name(path.name[: -len(".mhd")] + ".zraw")]
    return [path]


def check_writable(path: Union[str, Path], probed: Optional[Set[Path]] = None) -> None:
    """Fail now, not after the computation, when ``path`` cannot be written: the nearest existing folder above it
    must be a folder we may create files in (probed with an unnamed temporary file, once per folder in
    ``probed``), and ``path`` no folder."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path}: is a folder; give an output file name")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise ValueError(f"{path}: cannot be written: {folder} is a file, not a folder")
    if probed is not None:
        if folder in probed:
            return
        probed.add(folder)
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise ValueError(f"{path}: cannot be written in {folder} ({exc.strerror or exc}); choose a folder you can "
                         "write to") from None


def _suffix(path: Path) -> str:
    name = path.name.lower()
    for suffix in (".seg.nrrd", ".nii.gz") + LABELMAP_SUFFIXES:
        if name.endswith(suffix):
            return suffix
    return path.suffix


def _write(path: Union[str, Path], writer) -> Path:
    try:
        if Path(path).name.lower().endswith(".mhd"):
            return _write_metaimage_pair(Path(path), writer)
        return write_atomic(path, writer, suffix=_suffix(Path(path)))
    except RuntimeError as exc:  # SimpleITK's writers: one line, not a traceback
        last = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unknown reason"
        raise OSError(f"{path}: cannot be written ({last[:200]})") from None


def _write_metaimage_pair(path: Path, writer) -> Path:
    """A .mhd header names its data file, so both are written under their final names in a temporary folder beside
    the target and then moved: the data file first, the header (which makes the pair visible) last."""
    path.parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}."))
    try:
        writer(str(folder / path.name))
        umask = os.umask(0)
        os.umask(umask)
        for part in sorted(folder.iterdir(), key=lambda p: p.name == path.name):
            os.chmod(part, 0o666 & ~umask)
            os.replace(part, path.parent / part.name)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return path


def ijk_to_lps(image: sitk.Image) -> np.ndarray:
    matrix = np.eye(4)
    direction = np.array(image.GetDirection()).reshape(3, 3)
    matrix[:3, :3] = direction @ np.diag(image.GetSpacing())
    matrix[:3, 3] = image.GetOrigin()
    return matrix


def _slicer_terminology(entry: Dict) -> Dict:
    def code(c: Dict) -> List[str]:
        return [c["CodingSchemeDesignator"], c["CodeValue"], c["CodeMeaning"]]

    out = {"contextName": SLICER_CONTEXT, "category": code(entry["category"]), "type": code(entry["type"])}
    if "typeModifier" in entry:
        out["typeModifier"] = code(entry["typeModifier"])
    return out


def segmentation_dict(labels: sitk.Image, label_specs: List[Dict]) -> Dict:
    """A slicerio segmentation: one layer, one segment per class (also for organs absent from this volume).

    The voxels are a view of the image's own (k, j, i) buffer, transposed to the (i, j, k) index order slicerio
    takes: Fortran-ordered, so writing them is one straight copy, not a transposition of the whole volume."""
    from scipy.ndimage import find_objects

    array = sitk.GetArrayViewFromImage(labels)  # (k, j, i), C order
    boxes = find_objects(array, max_label=max((s["value"] for s in label_specs), default=0))
    segments = []
    for spec in label_specs:
        box = boxes[spec["value"] - 1] if spec["value"] - 1 < len(boxes) else None
        extent = [v for sl in reversed(box) for v in (sl.start, sl.stop - 1)] if box else [0, -1, 0, -1, 0, -1]
        segment = {"id": f"Segment_{spec['value']}", "name": spec["name"], "labelValue": int(spec["value"]),
                   "layer": 0, "color": [c / 255.0 for c in spec.get("color") or class_color(spec["value"])],
                   "extent": extent}
        # A card's terminology is free-form: one Slicer cannot read (no category, say) is left out, not a crash
        # after the whole volume was segmented. Training refuses such a label map before it starts.
        if spec.get("terminology") is not None and terminology_problem(spec["terminology"]) is None:
            segment["terminology"] = _slicer_terminology(spec["terminology"])
        segments.append(segment)
    return {"voxels": array.transpose(2, 1, 0), "ijkToLPS": ijk_to_lps(labels), "segments": segments,
            "containedRepresentationNames": ["Binary labelmap"], "masterRepresentation": "Binary labelmap",
            "referenceImageExtentOffset": [0, 0, 0]}


def write_labels(labels: sitk.Image, path: Union[str, Path], label_specs: List[Dict]) -> Path:
    if output_kind(path) == "segmentation":
        import slicerio

        seg = segmentation_dict(labels, label_specs)
        return _write(path, lambda tmp: slicerio.write_segmentation(tmp, seg))
    return _write(path, lambda tmp: sitk.WriteImage(labels, tmp, True))


def write_image(image: sitk.Image, path: Union[str, Path]) -> Path:
    return _write(path, lambda tmp: sitk.WriteImage(image, tmp, True))
