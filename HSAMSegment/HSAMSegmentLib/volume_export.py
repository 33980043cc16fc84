"""Writing the input volume for the engine with Slicer's own storage node, so the file has exactly the node's
geometry (origin, spacing, axis directions) and voxel type."""
from pathlib import Path

import slicer


def exportVolume(volumeNode, path: Path) -> Path:
    """Write ``volumeNode`` (its own IJK-to-RAS; a parent transform is not applied) as uncompressed NRRD."""
    if volumeNode is None or volumeNode.GetImageData() is None:
        raise ValueError("The input volume has no image data.")
    storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
    storage.SetFileName(str(path))
    storage.SetUseCompression(False)  # a temporary file: writing fast matters more than its size
    if not storage.WriteData(volumeNode):
        raise OSError(f"Could not write the input volume to {path}.")
    return Path(path)
