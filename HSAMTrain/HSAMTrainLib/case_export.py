"""Writing the cases for the engine, once per run: each volume as it is (Slicer's own writer, so the file has
exactly the node's geometry) and its segmentation as a label map on that volume's grid whose values are the
model's class values, plus the ``hsam train`` manifest that lists them with their roles."""
import json
from pathlib import Path
from typing import Dict, Iterable, Tuple

import numpy as np
import slicer

from HSAMSegmentLib.volume_export import exportVolume

from .cases import TrainingCase
from .label_mapping import LabelMapping
from .segment_labels import segmentIds, segmentsOnVolumeGrid

IMAGES_FOLDER = "images"
LABELS_FOLDER = "labels"
MANIFEST_FILE = "cases.json"


def classLabels(case: TrainingCase, mapping: LabelMapping) -> Tuple[np.ndarray, object]:
    """(uint8 class-value array on the volume grid, labelmap node with the volume's geometry)."""
    ids = segmentIds(case.segmentationNode)
    segmentation = case.segmentationNode.GetSegmentation()
    values = [mapping.valueOf(segmentation.GetSegment(i).GetName()) for i in ids]
    unmapped = [segmentation.GetSegment(i).GetName() for i, v in zip(ids, values) if v is None]
    if unmapped:
        raise ValueError(f"Case {case.name}: segments {', '.join(unmapped)} are not mapped to a class.")
    kept = [(i, v) for i, v in zip(ids, values) if v]
    exported, labelmapNode = segmentsOnVolumeGrid(case.segmentationNode, case.volumeNode, [i for i, _ in kept])
    lookup = np.array([0] + [v for _, v in kept], dtype=np.uint8)  # export value n + 1 -> class value
    return lookup[exported], labelmapNode


def exportCase(case: TrainingCase, mapping: LabelMapping, folder: Path) -> Dict[str, str]:
    image = Path(IMAGES_FOLDER) / f"{case.name}.nrrd"
    label = Path(LABELS_FOLDER) / f"{case.name}.nrrd"
    for sub in (IMAGES_FOLDER, LABELS_FOLDER):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    exportVolume(case.volumeNode, folder / image)
    labels, labelmapNode = classLabels(case, mapping)
    slicer.util.updateVolumeFromArray(labelmapNode, labels)
    storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
    storage.SetFileName(str(folder / label))
    storage.SetUseCompression(True)  # mostly zeros: compresses to almost nothing
    if not storage.WriteData(labelmapNode):
        raise OSError(f"Could not write the labels of case {case.name} to {folder / label}.")
    return {"image": image.as_posix(), "label": label.as_posix(), "split": case.role}


def exportCases(cases: Iterable[TrainingCase], mapping: LabelMapping, folder: Path) -> Path:
    """Write every case into ``folder`` and the manifest; returns the manifest's path."""
    folder = Path(folder)
    rows = [exportCase(case, mapping, folder) for case in cases]
    manifest = folder / MANIFEST_FILE
    manifest.write_text(json.dumps({"cases": rows, "label_map": mapping.labelMapSpec()}, indent=2),
                        encoding="utf-8")
    return manifest
