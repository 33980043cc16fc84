"""Segments as a label array on a volume's voxel grid, computed with Slicer's segmentations logic in a private
scene, so the user's scene and nodes are never touched."""
from typing import List, Sequence

import numpy as np
import slicer
import vtk


def segmentIds(segmentationNode) -> List[str]:
    segmentation = segmentationNode.GetSegmentation()
    return [segmentation.GetNthSegmentID(i) for i in range(segmentation.GetNumberOfSegments())]


def segmentsOnVolumeGrid(segmentationNode, volumeNode, ids: Sequence[str]):
    """(labels, labelVolumeNode): labels is the (k, j, i) array on ``volumeNode``'s grid, 0 outside every
    segment and n + 1 inside ``ids[n]`` (later segments win where segments overlap); labelVolumeNode, in a private
    scene, carries exactly the volume's geometry."""
    privateScene = slicer.vtkMRMLScene()
    labelVolumeNode = privateScene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode")
    idArray = vtk.vtkStringArray()
    for segmentId in ids:
        idArray.InsertNextValue(segmentId)
    logic = slicer.vtkSlicerSegmentationsModuleLogic()
    if ids and not logic.ExportSegmentsToLabelmapNode(segmentationNode, idArray, labelVolumeNode, volumeNode,
                                                      slicer.vtkSegmentation.EXTENT_REFERENCE_GEOMETRY):
        raise RuntimeError(f"Could not export the segments of {segmentationNode.GetName()} onto "
                           f"{volumeNode.GetName()}.")
    if not ids:  # nothing to export: an empty label image on the volume's grid
        labelVolumeNode.CopyOrientation(volumeNode)
        dims = volumeNode.GetImageData().GetDimensions()
        slicer.util.updateVolumeFromArray(labelVolumeNode, np.zeros(dims[::-1], dtype=np.uint8))
    return np.array(slicer.util.arrayFromVolume(labelVolumeNode)), labelVolumeNode


def axialAxis(volumeNode) -> int:
    """The axis of the (k, j, i) voxel array that runs closest to the patient's superior direction: the axis
    along which the engine takes its axial slices."""
    ijkToRas = vtk.vtkMatrix4x4()
    volumeNode.GetIJKToRASMatrix(ijkToRas)
    superior = [abs(ijkToRas.GetElement(2, column)) for column in range(3)]
    return 2 - int(np.argmax(superior))
