"""H-SAM engine of the HSAM 3D Slicer extension (torch, segment_anything; never Slicer or Qt)."""
from .model import HSAM, CheckpointError, HSAMConfig, build_hsam
from .models import load_model, save_model

__version__ = "0.1.0"
__all__ = ["HSAM", "HSAMConfig", "CheckpointError", "build_hsam", "load_model", "save_model", "__version__"]
