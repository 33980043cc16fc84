"""Writing the cases for the engine, once per run: each volume as it is (its voxels and its own voxel-to-patient
matrix, the header Slicer's NRRD writer writes) and its segmentation as a label image on that volume's grid whose
values are the model's class values, plus the ``hsam train`` manifest that lists them with their roles.

Only copying the data out of the scene happens on the GUI thread; writing the files (the slow part: hundreds of
MB, compression) needs no MRML and runs in the background."""
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterable, Sequence, Tuple

import numpy as np
import slicer
import vtk
from HSAMSharedLib.training_cases import writeJsonAtomic

from .case_list import TrainingCase
from .nrrd_file import writeNrrd
from .segment_mapping import SegmentMapping
from .segments_on_grid import segmentIds, segmentsOnVolumeGrid

IMAGES_FOLDER = "images"
LABELS_FOLDER = "labels"
MANIFEST_FILE = "cases.json"


def classLabels(case: TrainingCase, mapping: SegmentMapping) -> Tuple[np.ndarray, object]:
    """(uint8 class-value array on the volume grid, label volume node with the volume's geometry)."""
    ids = segmentIds(case.segmentationNode)
    segmentation = case.segmentationNode.GetSegmentation()
    values = [mapping.valueOf(segmentation.GetSegment(i).GetName()) for i in ids]
    unmapped = [segmentation.GetSegment(i).GetName() for i, v in zip(ids, values) if v is None]
    if unmapped:
        raise ValueError(f"Case {case.name}: segments {', '.join(unmapped)} are not mapped to a class.")
    kept = [(i, v) for i, v in zip(ids, values) if v]
    exported, labelVolumeNode = segmentsOnVolumeGrid(case.segmentationNode, case.volumeNode, [i for i, _ in kept])
    lookup = np.array([0] + [v for _, v in kept], dtype=np.uint8)  # export value n + 1 -> class value
    return lookup[exported], labelVolumeNode


@dataclass
class CaseFiles:
    """What one case's files hold, copied out of the scene on the GUI thread so that writing needs no MRML."""
    name: str
    role: str
    voxels: np.ndarray  # (k, j, i), the volume's own voxel type
    labels: np.ndarray  # (k, j, i) uint8 class values on the volume's grid
    ijkToRas: np.ndarray  # 4 x 4, the volume's own (a parent transform is not applied)

    @property
    def row(self) -> Dict[str, str]:
        return {"image": (Path(IMAGES_FOLDER) / f"{self.name}.nrrd").as_posix(),
                "label": (Path(LABELS_FOLDER) / f"{self.name}.nrrd").as_posix(), "split": self.role}


def caseFiles(case: TrainingCase, mapping: SegmentMapping) -> CaseFiles:
    """Copy what the case's files need out of the scene (the part of the export that must touch MRML)."""
    if case.volumeNode.GetImageData() is None or case.volumeNode.GetScene() is None:
        raise ValueError(f"Case {case.name}: its volume is no longer in the scene.")
    labels, labelVolumeNode = classLabels(case, mapping)
    matrix = vtk.vtkMatrix4x4()
    case.volumeNode.GetIJKToRASMatrix(matrix)
    return CaseFiles(case.name, case.role, np.array(slicer.util.arrayFromVolume(case.volumeNode)), labels,
                     slicer.util.arrayFromVTKMatrix(matrix))


def writeCaseFiles(files: Sequence[CaseFiles], mapping: SegmentMapping, folder: Path,
                   checkCancel: Callable[[], None] = lambda: None) -> Path:
    """Write every case and the manifest into ``folder`` (no MRML: safe in a background thread); returns the
    manifest's path. The image is written as it is; the labels, mostly zeros, compressed."""
    folder = Path(folder)
    for sub in (IMAGES_FOLDER, LABELS_FOLDER):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for case in files:
        writeNrrd(folder / case.row["image"], case.voxels, case.ijkToRas, compressed=False, checkCancel=checkCancel)
        writeNrrd(folder / case.row["label"], case.labels, case.ijkToRas, compressed=True, checkCancel=checkCancel)
    manifest = folder / MANIFEST_FILE
    writeJsonAtomic(manifest, {"cases": [case.row for case in files], "label_map": mapping.labelMapSpec()})
    return manifest


def exportCases(cases: Iterable[TrainingCase], mapping: SegmentMapping, folder: Path) -> Path:
    """Write every case into ``folder`` and the manifest, now (scripts); returns the manifest's path. A training
    job does the same in two parts: caseFiles on the GUI thread, writeCaseFiles in the background."""
    return writeCaseFiles([caseFiles(case, mapping) for case in cases], mapping, folder)
