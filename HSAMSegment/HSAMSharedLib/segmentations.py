"""Segmentation nodes need Slicer's representation converters, which only the application registers."""
import slicer


def ensureSegmentationConverters() -> None:
    """Segmentations need their representation converters registered. The Slicer application does it at
    startup (Segmentations module); without it (scripts on slicer-core) setting up that module's logic does it.
    Registering twice would duplicate every rule, hence the check."""
    if not slicer.vtkSegmentationConverterFactory.GetInstance().GetConverterRules():
        slicer.vtkSlicerSegmentationsModuleLogic().SetMRMLScene(slicer.vtkMRMLScene())
