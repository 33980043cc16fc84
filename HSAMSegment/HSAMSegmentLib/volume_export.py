"""Writing the input volume for the engine with Slicer's own storage node, so the file has exactly the node's
geometry (origin, spacing, axis directions) and voxel type."""
from pathlib import Path

import slicer


def exportVolume(volumeNode, path: Path) -> Path:
    """Write ``volumeNode`` (its own IJK-to-RAS; a parent transform is not applied) as uncompressed NRRD.

    Why not the transformed (hardened) geometry: the engine picks the slice axis from the scan's own axes, and a
    registration transform (any rotation) must not change which slices it segments; a non-linear transform
    would need resampling, which changes the voxels. The result comes back on the same grid and is put under
    the volume's transform (``result_import``), so it lines up wherever the volume is shown."""
    if volumeNode is None or volumeNode.GetImageData() is None:
        raise ValueError("The input volume has no image data.")
    storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
    storage.SetFileName(str(path))
    storage.SetUseCompression(False)  # a temporary file: writing fast matters more than its size
    if not storage.WriteData(volumeNode):
        raise OSError(f"Could not write the input volume to {path}.")
    return Path(path)
