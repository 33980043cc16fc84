"""'Add to training cases': the volume and its (corrected) segmentation saved as a case for ``hsam train``.

Each case is a folder ``<training cases>/<name>/`` with ``image.nrrd`` and ``label.seg.nrrd``; the folder's
``cases.json`` is a ``hsam train --cases`` manifest that lists them all. Segments are matched to model classes by
name when training, so the segmentation is saved as it is."""
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Dict, List

import slicer

CASES_FOLDER = "training_cases"  # in the models folder
MANIFEST = "cases.json"
IMAGE_FILE = "image.nrrd"
LABEL_FILE = "label.seg.nrrd"


def addTrainingCase(volumeNode, segmentationNode, folder: Path) -> Path:
    """Save the pair as a new case in ``folder`` and list it in the manifest; returns the case folder."""
    if volumeNode is None or segmentationNode is None:
        raise ValueError("Select an input volume and its segmentation.")
    if segmentationNode.GetSegmentation().GetNumberOfSegments() == 0:
        raise ValueError(f"{segmentationNode.GetName()} has no segments to train on.")
    folder = Path(folder)
    caseDir = _newCaseFolder(folder, volumeNode.GetName())
    _write(slicer.vtkMRMLVolumeArchetypeStorageNode(), volumeNode, caseDir / IMAGE_FILE)
    _write(slicer.vtkMRMLSegmentationStorageNode(), segmentationNode, caseDir / LABEL_FILE)
    cases = readManifest(folder)
    cases.append({"image": f"{caseDir.name}/{IMAGE_FILE}", "label": f"{caseDir.name}/{LABEL_FILE}"})
    writeJsonAtomic(folder / MANIFEST, {"cases": cases})
    return caseDir


def readManifest(folder: Path) -> List[Dict[str, str]]:
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return []
    return list(json.loads(path.read_text(encoding="utf-8")).get("cases", []))


def _newCaseFolder(folder: Path, name: str) -> Path:
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "case"
    index = 1
    while True:
        candidate = folder / (base if index == 1 else f"{base}_{index}")
        try:
            candidate.mkdir(parents=True)
            return candidate
        except FileExistsError:
            index += 1


def _write(storageNode, node, path: Path) -> None:
    storageNode.SetFileName(str(path))
    storageNode.SetUseCompression(True)
    if not storageNode.WriteData(node):
        raise OSError(f"Could not write {node.GetName()} to {path}.")


def writeJsonAtomic(path: Path, data: dict) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2)
    os.replace(tmp, path)
