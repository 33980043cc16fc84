"""Cases saved on disk loaded into the scene as volume + segmentation nodes: HSAM Segment's training cases
folder ("Add to training cases" lists them in its cases.json), or any ``hsam train`` JSON manifest. Labels are
Slicer segmentations (.seg.nrrd) or label images, whose segments are named by the manifest's label map."""
import json
from pathlib import Path
from typing import Any, Dict, List, Tuple

import slicer
from HSAMSharedLib.training_cases import MANIFEST

_EXTENSIONS = (".seg.nrrd", ".nii.gz", ".nii", ".nrrd", ".mha", ".mhd")


def manifestPath(path) -> Path:
    """A manifest file, or the cases.json of a folder."""
    path = Path(path)
    return path / MANIFEST if path.is_dir() else path


def readManifestCases(path) -> Tuple[List[Dict[str, str]], Dict[str, str]]:
    """(cases with absolute "image" and "label" paths and an optional "split", label value -> segment name)."""
    manifest = manifestPath(path)
    if not manifest.is_file():
        raise ValueError(f"{manifest} not found: choose a training cases folder (with {MANIFEST}) or a manifest.")
    data = json.loads(manifest.read_text(encoding="utf-8"))
    rows = data.get("cases", []) if isinstance(data, dict) else data
    labelMap = data.get("label_map") if isinstance(data, dict) else None
    if isinstance(labelMap, str):
        labelMap = json.loads((manifest.parent / labelMap).read_text(encoding="utf-8"))
    names = {str(k): str(v) for k, v in ((labelMap or {}).get("map") or {}).items() if str(k).isdigit()}
    cases = [dict(row, image=str(manifest.parent / row["image"]), label=str(manifest.parent / row["label"]))
             for row in rows]
    return cases, names


def caseName(path: str) -> str:
    """The file name without its extensions; HSAM Segment's case folders hold image.nrrd: their folder name."""
    p = Path(path)
    name = p.name
    for ext in _EXTENSIONS:
        if name.lower().endswith(ext):
            name = name[: -len(ext)]
            break
    return p.parent.name if name in ("image", "label") else name


def loadCaseFiles(path, scene) -> List[Tuple[Any, Any, str]]:
    """Load every case of the manifest into ``scene``: [(volume node, segmentation node, split or "")]."""
    cases, segmentNames = readManifestCases(path)
    loaded = []
    for row in cases:
        name = caseName(row["image"])
        volume = _readVolume(row["image"], scene, "vtkMRMLScalarVolumeNode", name)
        if row["label"].lower().endswith(".seg.nrrd"):
            segmentation = _readSegmentation(row["label"], scene, name + " segmentation")
        else:
            segmentation = _segmentationFromLabelImage(row["label"], volume, segmentNames, name + " segmentation")
        loaded.append((volume, segmentation, row.get("split") or ""))
    return loaded


def _readVolume(path: str, scene, className: str, name: str):
    storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
    storage.SetFileName(path)
    node = scene.AddNewNodeByClass(className, name)
    if not storage.ReadData(node):
        scene.RemoveNode(node)
        raise OSError(f"Could not read {path}.")
    return node


def _readSegmentation(path: str, scene, name: str):
    segmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
    storage = slicer.vtkMRMLSegmentationStorageNode()
    storage.SetFileName(path)
    if not storage.ReadData(segmentation):
        scene.RemoveNode(segmentation)
        raise OSError(f"Could not read the segmentation {path}.")
    segmentation.CreateDefaultDisplayNodes()
    return segmentation


def _segmentationFromLabelImage(path: str, volume, segmentNames: Dict[str, str], name: str):
    scene = volume.GetScene()
    labelVolume = _readVolume(path, scene, "vtkMRMLLabelMapVolumeNode", name)
    segmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
    segmentation.CreateDefaultDisplayNodes()
    segmentation.SetReferenceImageGeometryParameterFromVolumeNode(volume)
    logic = slicer.vtkSlicerSegmentationsModuleLogic()
    imported = logic.ImportLabelmapToSegmentationNode(labelVolume, segmentation)
    scene.RemoveNode(labelVolume)
    if not imported:
        scene.RemoveNode(segmentation)
        raise OSError(f"Could not import the label file {path}.")
    content = segmentation.GetSegmentation()
    for index in range(content.GetNumberOfSegments()):
        segment = content.GetNthSegment(index)
        segment.SetName(segmentNames.get(str(segment.GetLabelValue()), segment.GetName()))
    return segmentation
