"""Shared pieces of the HSAM Segment module tests: a real MRML scene (slicer-core), volumes loaded the way Slicer
loads them, label maps exported the way Slicer exports them, and a tiny deterministic model."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
MODULE_DIR = REPO / "HSAMSegment"
if str(MODULE_DIR) not in sys.path:
    sys.path.insert(0, str(MODULE_DIR))

slicer = pytest.importorskip("slicer", reason="slicer-core is not installed (pip install slicer-core)")


def new_scene():
    scene = slicer.vtkMRMLScene()
    slicer.mrmlScene = scene
    return scene


def load_volume(scene, path: Path, name: str = "ct", class_name: str = "vtkMRMLScalarVolumeNode"):
    storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
    storage.SetFileName(str(path))
    volume = scene.AddNewNodeByClass(class_name, name)
    assert storage.ReadData(volume), path
    return volume


def segment_values_on_grid(scene, segmentation, volume, names):
    """The segmentation as a label array on ``volume``'s grid, segment ``names[i]`` -> value i + 1."""
    import vtk

    logic = slicer.vtkSlicerSegmentationsModuleLogic()
    logic.SetMRMLScene(scene)
    ids = vtk.vtkStringArray()
    for name in names:
        ids.InsertNextValue(segmentation.GetSegmentation().GetSegmentIdBySegmentName(name))
    labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode")
    assert logic.ExportSegmentsToLabelmapNode(segmentation, ids, labelmap, volume,
                                              slicer.vtkSegmentation.EXTENT_REFERENCE_GEOMETRY)
    values = np.array(slicer.util.arrayFromVolume(labelmap))
    scene.RemoveNode(labelmap)
    return values


def segment_terminology(segment) -> str:
    import vtk

    value = vtk.mutable("")
    segment.GetTag(segment.GetTerminologyEntryTagName(), value)
    return str(value)


def terminology_string(label: dict) -> str:
    """Slicer's terminology entry string for a model-card label (the format slicerio writes)."""
    def code(c):
        return f"{c['CodingSchemeDesignator']}^{c['CodeValue']}^{c['CodeMeaning']}" if c else "^^"

    term = label["terminology"]
    return "~".join(["Segmentation category and type - 3D Slicer General Anatomy list", code(term["category"]),
                     code(term["type"]), code(term.get("typeModifier")), "", "^^", "^^"])
