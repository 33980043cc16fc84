"""Putting the engine's ``.seg.nrrd`` into a segmentation node: one segment per organ of the model (also for
organs not found), with the model's names, colors and SNOMED CT terminology, on the input volume's geometry and
under its parent transform, next to the input volume in the Subject Hierarchy, and with 3D surfaces when asked."""
from pathlib import Path

import slicer


def readSegmentation(path: Path, scene):
    """A segmentation node in ``scene``, read with Slicer's own reader (names, colors, terminology tags and
    empty segments all come from the file)."""
    segmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode")
    storage = slicer.vtkMRMLSegmentationStorageNode()
    storage.SetFileName(str(path))
    if not storage.ReadData(segmentation):
        raise OSError(f"Could not read the segmentation result {path}.")
    return segmentation


def importSegmentation(path: Path, outputSegmentation, inputVolume, show3D: bool = True) -> None:
    """Replace the segments of ``outputSegmentation`` with those of the file."""
    privateScene = slicer.vtkMRMLScene()  # the user's scene only ever sees the final result
    result = readSegmentation(path, privateScene)
    wasModified = outputSegmentation.StartModify()
    try:
        # DeepCopy keeps the file's shared label-map layer: one volume for all organs, not one per organ.
        outputSegmentation.GetSegmentation().DeepCopy(result.GetSegmentation())
        # The result is on the volume's own grid (the engine saw the volume without its parent transform), so the
        # segmentation goes under the same transform. Transform first: the reference geometry is taken relative
        # to the segmentation's parent transform, and set before it, the volume's transform would count twice
        # (Segment Editor would then paint on a moved grid).
        outputSegmentation.SetAndObserveTransformNodeID(inputVolume.GetTransformNodeID())
        outputSegmentation.SetReferenceImageGeometryParameterFromVolumeNode(inputVolume)
    finally:
        outputSegmentation.EndModify(wasModified)
    if outputSegmentation.GetDisplayNode() is None:
        outputSegmentation.CreateDefaultDisplayNodes()
    placeNextTo(outputSegmentation, inputVolume)
    if show3D:
        outputSegmentation.CreateClosedSurfaceRepresentation()


def placeNextTo(node, referenceNode) -> None:
    """Put ``node`` under the same Subject Hierarchy parent (patient/study folder) as ``referenceNode``."""
    scene = node.GetScene()
    if scene is None:
        return
    shNode = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    referenceItem = shNode.GetItemByDataNode(referenceNode)
    parent = shNode.GetItemParent(referenceItem) if referenceItem else shNode.GetSceneItemID()
    item = shNode.GetItemByDataNode(node)
    if item:
        shNode.SetItemParent(item, parent)
    else:  # outside the Slicer application nothing creates items automatically
        shNode.CreateItem(parent, node)
