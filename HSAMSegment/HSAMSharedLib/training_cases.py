"""'Add to training cases': the volume and its (corrected) segmentation saved as a case for ``hsam train``.

Each case is a folder ``<training cases>/<name>/`` with ``image.nrrd`` and ``label.seg.nrrd``; the folder's
``cases.json`` is a ``hsam train --cases`` manifest that lists them all. Segments are matched to model classes by
name when training, so the segmentation is saved as it is.

Saving the same segmentation again updates its case instead of adding a second one (a case that is both a
training and a validation case would make the validation meaningless). The pair is also marked in the scene for
HSAM Train, which takes marked pairs into its list of cases (the modules share the scene, not their widgets)."""
import json
import os
import re
import uuid
from pathlib import Path
from typing import Dict, List, Tuple

import slicer

CASES_FOLDER = "training_cases"  # in the models folder
MANIFEST = "cases.json"
IMAGE_FILE = "image.nrrd"
LABEL_FILE = "label.seg.nrrd"
SAVED_CASE_ATTRIBUTE = "HSAM.TrainingCaseFolder"  # on the segmentation: the case folder it was saved to
PENDING_ATTRIBUTE = "HSAM.TrainingCasePending"  # on the segmentation: "1" until HSAM Train has taken the pair
VOLUME_REFERENCE = "hsamTrainingVolume"  # segmentation -> the volume it segments


def addTrainingCase(volumeNode, segmentationNode, folder: Path) -> Path:
    """Save the pair as a case in ``folder`` and list it in the manifest; returns the case folder. A
    segmentation saved before (to the same folder) updates its case rather than adding a second one."""
    if volumeNode is None or segmentationNode is None:
        raise ValueError("Select an input volume and its segmentation.")
    if segmentationNode.GetSegmentation().GetNumberOfSegments() == 0:
        raise ValueError(f"{segmentationNode.GetName()} has no segments to train on.")
    folder = Path(folder)
    caseDir = savedCaseFolder(segmentationNode, folder)
    if caseDir is None:
        caseDir = _newCaseFolder(folder, volumeNode.GetName())
    _write(slicer.vtkMRMLVolumeArchetypeStorageNode(), volumeNode, caseDir / IMAGE_FILE)
    _write(slicer.vtkMRMLSegmentationStorageNode(), segmentationNode, caseDir / LABEL_FILE)
    row = {"image": f"{caseDir.name}/{IMAGE_FILE}", "label": f"{caseDir.name}/{LABEL_FILE}"}
    cases = [c for c in readManifest(folder) if c.get("image") != row["image"]] + [row]
    writeJsonAtomic(folder / MANIFEST, {"cases": cases})
    segmentationNode.SetAttribute(SAVED_CASE_ATTRIBUTE, str(caseDir))
    markForTraining(volumeNode, segmentationNode)
    return caseDir


def savedCaseFolder(segmentationNode, folder: Path):
    """The case folder in ``folder`` this segmentation was saved to before, or None."""
    saved = segmentationNode.GetAttribute(SAVED_CASE_ATTRIBUTE)
    if saved and Path(saved).parent == Path(folder) and Path(saved).is_dir():
        return Path(saved)
    return None


def markForTraining(volumeNode, segmentationNode) -> None:
    """Offer the pair to HSAM Train (it takes it when its panel is next shown, or at once if it is open)."""
    segmentationNode.SetNodeReferenceID(VOLUME_REFERENCE, volumeNode.GetID())
    segmentationNode.SetAttribute(PENDING_ATTRIBUTE, "1")


def takePendingTrainingCases(scene) -> List[Tuple[object, object]]:
    """The (volume, segmentation) pairs marked for training and not taken yet; they are taken (unmarked) now."""
    pairs = []
    for index in range(scene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode")):
        segmentation = scene.GetNthNodeByClass(index, "vtkMRMLSegmentationNode")
        if segmentation.GetAttribute(PENDING_ATTRIBUTE) != "1":
            continue
        segmentation.RemoveAttribute(PENDING_ATTRIBUTE)
        volume = segmentation.GetNodeReference(VOLUME_REFERENCE)
        if volume is not None:
            pairs.append((volume, segmentation))
    return pairs


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
    """Write-then-rename, as the engine writes its files (the module does not import the engine): a failure leaves
    the old file and no temporary one. A plain open() of a fresh name gives the file the user's usual mode."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "x", encoding="utf-8") as f:
            json.dump(data, f, indent=2, allow_nan=False)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
